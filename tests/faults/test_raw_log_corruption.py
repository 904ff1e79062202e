"""Class 1: a corrupt raw log. One flipped byte anywhere in raw.log, then a restart: the
corrupt record is quarantined with one line naming its offset, no stored reading is lost,
and every frame received afterwards is stored."""
import random

from sen.testkit.synthetic import Fleet
from tests.faults.helpers import Gateway, Lines, readings


def test_100_random_byte_flips_each_followed_by_a_restart(tmp_path):
    rng = random.Random(16)
    fleet = Fleet(20, seed=4)
    sent = []

    def send(gw, n):
        was = dict(fleet.counters)
        items = list(fleet.frames(n))
        keys = [(node, c) for node in fleet.nodes for c in range(was[node], fleet.counters[node])]
        for f, m in items:
            gw.radio.deliver(f, m.rssi, m.snr, m.time)
        sent.extend(keys)
        return keys

    gw = Gateway(tmp_path, fleet)
    assert gw.wait_stored(send(gw, 200))
    gw.stop()
    raw = tmp_path / "data" / "raw.log"
    failures = []
    for run in range(100):
        before = readings(gw.cfg.store_path)
        data = bytearray(raw.read_bytes())
        at = rng.randrange(len(data))
        data[at] ^= rng.randrange(1, 256)
        raw.write_bytes(bytes(data))
        with Lines("sen.gateway.raw_log") as lines:
            gw = Gateway(tmp_path, fleet)
            new = send(gw, 10)
            ok = gw.wait_stored(new, timeout=10)
            gw.stop()
        q = [msg for level, msg in lines.lines if "quarantined" in msg]
        after = readings(gw.cfg.store_path)
        if not ok or not before <= after or len(q) != 1 or f"offset {at}" not in q[0] and not _covers(q[0], at):
            failures.append((run, at, ok, len(before - after), q))
            break
    assert not failures, failures
    assert gw.stored(sent) == len(sent)


def _covers(line, at):
    """Does the quarantine line's region [offset, offset + n bytes) hold byte `at`?"""
    import re
    m = re.search(r"offset (\d+), (\d+) bytes", line)
    return bool(m) and int(m[1]) <= at < int(m[1]) + int(m[2])


def test_byte_flips_with_the_real_gateway_process(tmp_path):
    """The same through `sen gateway run` (serial backend over a socket URL), restarted after
    each flip: the quarantine line is in its log, and new frames are stored."""
    from sen.gateway.key_store import KeyStore
    from tests.faults.helpers import board_and_gateway, frames_in, wait_frames

    rng = random.Random(61)
    fleet = Fleet(5, seed=6)
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    db, raw = tmp_path / "data" / "gateway.db", tmp_path / "data" / "raw.log"
    stored_before = set()
    for run in range(6):
        if run:
            data = bytearray(raw.read_bytes())
            at = rng.randrange(len(data))
            data[at] ^= rng.randrange(1, 256)
            raw.write_bytes(bytes(data))
        board, gw = board_and_gateway(tmp_path)
        try:
            was = dict(fleet.counters)
            items = list(fleet.frames(20))
            board.send(b"".join(board.senrx(f) for f, _ in items))
            new = [(n, c) for n in fleet.nodes for c in range(was[n], fleet.counters[n])]
            assert wait_frames(db, new), gw.log()[-3000:]
        finally:
            assert gw.stop() == 0
            board.close()
        log = gw.log()
        if run:
            assert log.count("quarantined to") == 1, log
            assert _covers(next(x for x in log.splitlines() if "quarantined to" in x), at), (at, log)
        after = frames_in(db)
        assert stored_before <= after
        stored_before = after
