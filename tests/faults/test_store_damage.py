"""Class 2: a damaged SQLite store is named at start with the fix (`sen gateway rebuild`),
never found later by a traceback; rebuild restores every frame from the raw log. A full
disk at start is named as a full disk."""
import os
import random
import subprocess

import pytest

from sen.testkit.synthetic import Fleet
from sen.gateway.store import connect
from tests.faults.helpers import Gateway, one_line_error, sen, write_toml


def _filled(tmp_path, n=300):
    fleet = Fleet(10, seed=5)
    gw = Gateway(tmp_path, fleet)
    for f, m in fleet.frames(n):
        gw.radio.deliver(f, m.rssi, m.snr, m.time)
    keys = [(node, c) for node in fleet.nodes for c in range(fleet.counters[node])]
    assert gw.wait_stored(keys)
    gw.stop()
    c = connect(gw.cfg.store_path, readonly=True)
    frames = set(c.execute("SELECT node_id, counter, frame FROM frames").fetchall())
    readings = set(c.execute("SELECT node_id, counter, sample, channel, raw FROM readings").fetchall())
    c.close()
    write_toml(tmp_path)
    return gw.cfg.store_path, frames, readings


def _damage_pages(db, rng):
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    for p in range(2, len(data) // page):
        at = p * page + rng.randrange(page - 64)
        data[at:at + 64] = rng.randbytes(64)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["pages", "header"])
def test_damaged_store_is_named_at_start_and_rebuilt_from_the_raw_log(tmp_path, how):
    db, frames, readings = _filled(tmp_path)
    assert not db.with_name("gateway.db-wal").exists() or db.with_name("gateway.db-wal").stat().st_size == 0
    if how == "pages":
        _damage_pages(db, random.Random(7))
    else:
        with open(db, "r+b") as f:
            f.write(b"\0" * 100)  # the 100-byte header: "file is not a database"
    r = sen("gateway", "run", "-c", tmp_path / "gateway.toml", cwd=tmp_path, timeout=60)
    assert one_line_error(r), r.stderr
    assert "damaged" in r.stderr and "sen gateway rebuild" in r.stderr and "data_dir" not in r.stderr
    r = sen("gateway", "export", "-c", tmp_path / "gateway.toml", cwd=tmp_path)
    assert one_line_error(r), r.stderr
    assert "sen gateway rebuild" in r.stderr
    r = sen("gateway", "rebuild", "-c", tmp_path / "gateway.toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert list(tmp_path.glob("data/gateway.db.damaged-*")), "the damaged store is kept aside"
    c = connect(db, readonly=True)
    assert set(c.execute("SELECT node_id, counter, frame FROM frames").fetchall()) == frames
    assert set(c.execute("SELECT node_id, counter, sample, channel, raw FROM readings").fetchall()) == readings
    c.close()


def test_start_on_a_full_disk_says_the_disk_is_full(tmp_path):
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.fail(f"this test mounts a 1 MiB tmpfs to fill a real disk (needs root): {r.stderr}")
    try:
        Fleet(3, seed=1).write_keys(__import__("sen.gateway.key_store", fromlist=["KeyStore"]).KeyStore(
            d / "keys.json", create=True))
        write_toml(d)
        with open(d / "filler", "wb") as f:
            try:
                while True:
                    f.write(os.urandom(65536))
                    f.flush()
            except OSError:
                pass
        r = sen("gateway", "run", "-c", d / "gateway.toml", cwd=d, timeout=60)
        assert one_line_error(r), r.stderr
        assert "disk is full" in r.stderr and "free space" in r.stderr, r.stderr
    finally:
        subprocess.run(["umount", "-l", str(d)])
