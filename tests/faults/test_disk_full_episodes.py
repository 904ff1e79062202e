"""Class 10 (disk): each full-disk episode is logged when it starts — a second one within a
minute too — and its end is logged ("writable again"); nothing accepted is lost. A real
2 MiB tmpfs is filled and freed twice."""
import logging
import os
import subprocess

import pytest

from sen.gateway.config import GatewayConfig, RadioConfig
from sen.gateway.key_store import KeyStore
from sen.gateway.radio.base import InjectBackend
from sen.testkit.synthetic import Fleet
from tests.faults.helpers import Lines


def _fill(d):
    filler = d / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    os.close(fd)
    os.truncate(filler, max(0, os.path.getsize(filler) - 16384))
    return filler


def test_two_full_disk_episodes_each_start_and_end_logged(tmp_path):
    from sen.gateway.service import GatewayService
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.fail(f"this test mounts a 2 MiB tmpfs to fill a real disk (needs root): {r.stderr}")
    svc = None
    try:
        fleet = Fleet(4, seed=9)
        fleet.write_keys(KeyStore(tmp_path / "keys.json", create=True))
        cfg = GatewayConfig(path=tmp_path / "gateway.toml", gateway_id="gw-test", data_dir=d,
                            key_file=tmp_path / "keys.json", fsync=True)
        radio = InjectBackend(RadioConfig("emulated", "r0"), "gw-test", None)
        svc = GatewayService(cfg, backends=[radio], forwarders=[])
        svc.start()
        sent = []
        with Lines("sen.gateway") as lines:
            for episode in range(2):
                filler = _fill(d)
                batch = list(fleet.frames(400))
                sent += batch
                for i in range(0, len(batch), 50):
                    svc.ingest(batch[i:i + 50])
                filler.unlink()
                svc.retry_at = 0
                svc.ingest([])
                if svc.store_behind:
                    svc._catch_up()
        msgs = [m for _, m in lines.lines]
        starts = [m for m in msgs if "cannot be written" in m]
        ends = [m for m in msgs if "writable again" in m]
        assert len(starts) == 2 and len(ends) >= 2, msgs
        n = svc.store.con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        assert n == len(sent)
    finally:
        if svc is not None:
            svc.shutdown(0.1)
        subprocess.run(["umount", "-l", str(d)])
