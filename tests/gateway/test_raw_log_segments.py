"""Raw-log rotation and retention: global offsets across segments, every crash point of a
rotation, retention that never deletes what is not yet processed, replay of a directory,
and a full disk (a real 2 MiB tmpfs) that loses nothing the gateway accepted."""
import os
import subprocess
import time

import pytest

from sen.gateway.raw_log import RawLog, base_file, iter_log, read_batch, sealed_name, sealed_segments, segments
from sen.gateway.rx_meta import RxMeta


def recs(n, start=0):
    return [(bytes([(start + i) % 256]) * 40, RxMeta("gw", 1.0 + start + i, rssi=-80, radio="r")) for i in range(n)]


def frames_of(path, start=0):
    return [f for _, _, f, _ in iter_log(path, start)]


def test_rotation_by_size_keeps_global_offsets(tmp_path):
    log = RawLog(tmp_path / "raw.log", fsync=False, rotate_bytes=1000)
    spans = []
    for i in range(10):
        spans += log.append(recs(5, 5 * i))
    log.close()
    sealed = sealed_segments(tmp_path / "raw.log")
    assert len(sealed) == 3  # 1170 B per segment: three 390 B appends reach 1000 B
    # offsets are contiguous across segments and each segment is named by its first byte's offset
    assert all(a == b for (_, a), (b, _) in zip(spans, spans[1:]))
    for (base, p), (nxt, _) in zip(sealed, sealed[1:]):
        assert base + p.stat().st_size == nxt
    got = list(iter_log(tmp_path / "raw.log"))
    assert [(a, b) for a, b, _, _ in got] == spans
    assert frames_of(tmp_path) == [f for f, _ in recs(50)]  # the directory reads the same
    # reading from the middle of any segment, and reopening, agree
    mid = spans[23][0]
    assert frames_of(tmp_path / "raw.log", mid) == [f for f, _ in recs(27, 23)]
    log = RawLog(tmp_path / "raw.log", fsync=False, rotate_bytes=1000)
    assert log.end == spans[-1][1]
    assert log.append(recs(1, 50))[0][0] == spans[-1][1]
    log.close()
    # the tailing reader moves from one segment into the next
    out, cur = [], 0
    while True:
        batch = read_batch(tmp_path / "raw.log", cur, 7)
        if not batch:
            break
        out += [f for _, _, f, _ in batch]
        cur = batch[-1][1]
    assert out == [f for f, _ in recs(51)]


def test_every_crash_point_of_a_rotation_reopens_at_the_same_offsets(tmp_path):
    log = RawLog(tmp_path / "raw.log", fsync=False)
    first = log.append(recs(5))
    log.close()
    size = os.path.getsize(tmp_path / "raw.log")
    # crash right after the rename: no active file, no base file yet
    os.rename(tmp_path / "raw.log", sealed_name(tmp_path / "raw.log", 0))
    log = RawLog(tmp_path / "raw.log", fsync=False)
    assert (log.base, log.end) == (size, size)
    nxt = log.append(recs(3, 5))
    assert nxt[0][0] == size
    log.rotate()
    log.close()
    # retention removed every sealed segment: the base file still places the active one
    for _, p in sealed_segments(tmp_path / "raw.log"):
        p.unlink()
    assert int(base_file(tmp_path / "raw.log").read_text()) == nxt[-1][1]
    log = RawLog(tmp_path / "raw.log", fsync=False)
    assert log.end == nxt[-1][1]
    log.close()
    # a torn tail in the active segment is cut; the global end follows
    log = RawLog(tmp_path / "raw.log", fsync=False)
    spans = log.append(recs(2, 8))
    log.close()
    with open(tmp_path / "raw.log", "ab") as f:
        f.write(b"SR\x40\x00\x00")
    log = RawLog(tmp_path / "raw.log", fsync=False)
    assert log.end == spans[-1][1] and first[0][0] == 0
    log.close()


def test_retention_deletes_only_old_and_processed_segments(tmp_path):
    log = RawLog(tmp_path / "raw.log", fsync=False, rotate_bytes=500)
    spans = []
    for i in range(8):
        spans += log.append(recs(4, 4 * i))
    sealed = sealed_segments(tmp_path / "raw.log")
    assert len(sealed) >= 4
    old = time.time() - 61 * 86400
    for _, p in sealed:
        os.utime(p, (old, old))
    # processed up to the middle of the third segment: the first two may go, nothing after
    third_base, third = sealed[2]
    keep_from = third_base + 10
    gone = log.prune(keep_from, 60)
    assert gone == [sealed[0][1], sealed[1][1]]
    assert [p for _, p in sealed_segments(tmp_path / "raw.log")] == [p for _, p in sealed[2:]]
    # young segments stay even when processed; retain_days = 0 keeps everything
    os.utime(sealed[3][1], None)
    assert log.prune(spans[-1][1], 60) == [third]
    assert log.prune(spans[-1][1], 0) == []
    assert sealed[3][1].exists()
    # what is left still reads with the same global offsets
    got = list(iter_log(tmp_path / "raw.log", sealed[3][0]))
    assert got[0][0] == sealed[3][0] and got[-1][1] == spans[-1][1]
    log.close()


def test_replay_cli_takes_a_directory_or_segments_in_order(tmp_path):
    from sen.gateway.key_store import KeyStore
    from sen.testkit.synthetic import Fleet

    fleet = Fleet(3, seed=4)
    fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
    (tmp_path / "gateway.toml").write_text('[gateway]\nid = "gw"\n[keys]\nfile = "keys.json"\n'
                                           '[[radio]]\nbackend = "emulated"\n')
    log = RawLog(tmp_path / "data" / "raw.log", fsync=False, rotate_bytes=2000)
    for i in range(6):
        log.append(list(fleet.frames(20)))
    log.close()
    segs = segments(tmp_path / "data")
    assert len(segs) >= 3

    def sen(*args):
        return subprocess.run([".venv/bin/sen", "gateway", "replay", *map(str, args), "-c", tmp_path / "gateway.toml",
                               "--db", tmp_path / "replay.db"], capture_output=True, text=True, check=True).stdout

    # a sealed segment alone, then the directory: the second run continues after the first
    out = sen(segs[0][1])
    assert "accepted" in out
    out = sen(tmp_path / "data")
    import sqlite3
    con = sqlite3.connect(tmp_path / "replay.db")
    assert con.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 120
    assert "duplicates 0" in out
    # segments listed out of order are replayed in log order; nothing is doubled
    sen(*[p for _, p in reversed(segs)])
    assert con.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == 120
    r = subprocess.run([".venv/bin/sen", "gateway", "replay", str(tmp_path / "nothing"), "-c",
                        str(tmp_path / "gateway.toml")], capture_output=True, text=True)
    assert r.returncode != 0 and "does not exist" in r.stderr and len(r.stderr.strip().splitlines()) <= 2


@pytest.fixture
def tiny_disk(tmp_path):
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("needs permission to mount a small tmpfs (root) to fill a real disk")
    yield d
    subprocess.run(["umount", "-l", str(d)])


def test_full_disk_logs_one_line_keeps_running_and_loses_nothing(tiny_disk, tmp_path, caplog):
    from sen.gateway.config import GatewayConfig, RadioConfig
    from sen.gateway.key_store import KeyStore
    from sen.gateway.radio.base import InjectBackend
    from sen.gateway.service import GatewayService
    from sen.testkit.synthetic import Fleet

    fleet = Fleet(4, seed=9)
    keys = KeyStore(tmp_path / "keys.json", create=True)
    fleet.write_keys(keys)
    cfg = GatewayConfig(path=tmp_path / "gateway.toml", gateway_id="gw-test", data_dir=tiny_disk,
                        key_file=tmp_path / "keys.json", fsync=True)
    radio = InjectBackend(RadioConfig("emulated", "r0"), "gw-test", None)
    svc = GatewayService(cfg, backends=[radio], forwarders=[])
    radio.on_frame = svc.on_frame
    svc.start()
    filler = tiny_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:  # fill the disk, then leave a little room
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    os.close(fd)
    os.truncate(filler, max(0, os.path.getsize(filler) - 16384))
    sent = list(fleet.frames(600))
    import logging
    with caplog.at_level(logging.ERROR, logger="sen.gateway"):
        for i in range(0, len(sent), 50):
            svc.ingest(sent[i:i + 50])
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name == "sen.gateway"]
    assert len(errors) == 1  # one line, not one per batch
    assert "cannot be written" in errors[0] and "full" in errors[0] and "free space" in errors[0]
    assert "\n" not in errors[0]
    assert svc.held or svc.store_behind  # not everything fitted, and the service is still up
    filler.unlink()  # the operator frees space
    svc.retry_at = 0
    svc.ingest([])
    if svc.store_behind:
        svc._catch_up()
    assert not svc.held and not svc.store_behind
    n = svc.store.con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    svc.shutdown(0.1)
    assert n == 600
    assert len(list(iter_log(tiny_disk))) == 600
