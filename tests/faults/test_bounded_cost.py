"""Class 4 and 5: bounded cost. An over-long line on the serial link is counted and dropped
(never held and re-split), and a frame using CBOR features outside the spec (value-sharing
tags 28/29) is refused before cbor2 expands it; the frames around both are stored. Against
the real `sen gateway run` process fed over its serial protocol. CPU figures:
`sen bench gateway --cost`."""
import json

from sen.bench.gateway_receivers import free_port
from sen.gateway.frame_decode import compute_mic, parse_header
from sen.gateway.key_store import KeyStore
from sen.testkit.synthetic import Fleet
from tests.faults.helpers import board_and_gateway, http_get, wait_frames


def sharing_bomb(levels=20) -> bytes:
    """[L0, L1, …]: L0 = shareable [0, 0], Lk = shareable [ref L(k-1), ref L(k-1)]; expanded,
    the last level alone holds 2**levels integers."""
    items = [bytes([0xD8, 28, 0x82, 0, 0])]
    for k in range(1, levels):
        items.append(bytes([0xD8, 28, 0x82, 0xD8, 29, k - 1, 0xD8, 29, k - 1]))
    return bytes([0xA1, 0x01, 0x80 + levels]) + b"".join(items)


def with_body(frame: bytes, body: bytes, key: bytes) -> bytes:
    h = parse_header(frame)
    head = frame[:len(frame) - len(h.body) - 4]
    c32 = h.counter_field  # small counters: the 16-bit field is the whole counter
    return head + body + compute_mic(key, c32, head + body)


def test_overlong_line_and_cbor_bomb_are_dropped_and_the_next_frames_stored(tmp_path):
    fleet = Fleet(3, seed=2)
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    frames = [f for f, _ in fleet.frames(6)]  # node 1..3 counters 0, 1
    port = free_port()
    board, gw = board_and_gateway(tmp_path, f"\n[metrics]\nport = {port}\n")
    try:
        bomb = with_body(frames[3], sharing_bomb(), fleet.keys[1])
        assert len(bomb) <= 222
        board.send(board.senrx(frames[0]) + b"SENRX -80 7 " + b"ab" * (1 << 19) + b"\n" + board.senrx(frames[1]))
        board.send(board.senrx(bomb) + board.senrx(frames[2]))
        db = tmp_path / "data" / "gateway.db"
        assert wait_frames(db, [(1, 0), (2, 0), (3, 0)]), gw.log()[-2000:]
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")
        assert 'sen_gateway_radio_overlong_lines_total{radio="r0"} 1' in metrics, metrics
        assert 'sen_gateway_rejections_total{reason="bad_type"} 1' in metrics, metrics
        assert 'reason="not_deterministic"' not in metrics
    finally:
        code = gw.stop()
        board.close()
    assert code == 0, gw.log()[-2000:]
    lines = [json.loads(x) for x in gw.log().splitlines() if x.startswith("{")]
    assert not any("exc" in x for x in lines)
