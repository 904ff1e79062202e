"""Class 7 (radio part): a radio that cannot run is shown down in /metrics and the log (one
line, not one per retry), is retried, and says when it has recovered; frames then flow."""
import time

from sen.bench.gateway_receivers import free_port
from sen.gateway.key_store import KeyStore
from sen.testkit.synthetic import Fleet
from tests.faults.helpers import Board, GatewayProcess, http_get, wait_frames, write_toml


def _metric(port, name):
    for line in http_get(f"http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])  # prometheus_client writes gauges as floats
    return None


def test_a_radio_that_cannot_open_is_down_then_recovers(tmp_path):
    fleet = Fleet(2, seed=6)
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    board_port, metrics_port = free_port(), free_port()
    write_toml(tmp_path, f"socket://127.0.0.1:{board_port}")
    gw = GatewayProcess(tmp_path, f"\n[metrics]\nport = {metrics_port}\n")
    board = None
    try:
        assert gw.wait_log("is down", 60), gw.log()
        deadline = time.monotonic() + 30
        while _metric(metrics_port, 'sen_gateway_radio_up{radio="r0"}') is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _metric(metrics_port, 'sen_gateway_radio_up{radio="r0"}') == 0
        time.sleep(2)  # several retries: still one line
        assert gw.log().count("is down") == 1, gw.log()
        board = Board(board_port)
        assert gw.wait_log("recovered", 60), gw.log()
        assert _metric(metrics_port, 'sen_gateway_radio_up{radio="r0"}') == 1
        frame, _ = next(fleet.frames(1))
        board.send(board.senrx(frame))
        assert wait_frames(tmp_path / "data" / "gateway.db", [(1, 0)])
    finally:
        code = gw.stop()
        if board:
            board.close()
    assert code == 0, gw.log()
