"""Class 8: one gateway per data directory. A second `sen gateway run` on the same data
directory, and a replay or rebuild into the store a running gateway holds, are refused with
one line; after kill -9 the lock is gone with the process and the gateway starts again."""
import signal

from sen.gateway.key_store import KeyStore
from sen.testkit.synthetic import Fleet
from tests.faults.helpers import board_and_gateway, one_line_error, sen, wait_frames


def test_second_gateway_replay_and_rebuild_are_refused_while_one_runs(tmp_path):
    fleet = Fleet(2, seed=8)
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    board, gw = board_and_gateway(tmp_path)
    try:
        frame, _ = next(fleet.frames(1))
        board.send(board.senrx(frame))
        assert wait_frames(tmp_path / "data" / "gateway.db", [(1, 0)]), gw.log()
        pid = gw.proc.pid
        cfg = tmp_path / "gateway.toml"
        for args in (("run",), ("replay", tmp_path / "data"), ("rebuild",)):
            r = sen("gateway", *args, "-c", cfg, cwd=tmp_path, timeout=60)
            assert one_line_error(r), (args, r.stderr)
            assert f"pid {pid}" in r.stderr and "is running on" in r.stderr, r.stderr
        assert gw.proc.poll() is None, "the running gateway is untouched"
    finally:
        gw.stop(signal.SIGKILL)
        board.close()
    board, gw = board_and_gateway(tmp_path)  # kill -9 left no lock behind
    try:
        frame = list(fleet.frames(1))[0][0]
        board.send(board.senrx(frame))
        assert wait_frames(tmp_path / "data" / "gateway.db", [(1, 1)]), gw.log()
    finally:
        assert gw.stop() == 0
        board.close()
