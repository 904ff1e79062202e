"""PostgreSQL goes away under a running `sen ingest run` worker (immediate shutdown, as a
crash) and comes back: the worker keeps its records unacknowledged, retries, and in the
end every reading is stored exactly once."""
import json
import time

import psycopg

from sen.testkit.synthetic import Fleet
from sen.testkit.city_sim import EmulatedGateway
from sen.testkit.loopback import PostgresCluster, WorkerProcess, write_ingest_toml


def _count(dsn):
    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as con:
        return con.execute("SELECT count(*), count(DISTINCT (node_id, counter, sample, channel)) FROM readings").fetchone()


def test_worker_survives_a_database_crash(tmp_path, broker):
    pg = PostgresCluster(fsync=True).start()  # committed means durable: the worker acks after commit
    worker = gw = None
    try:
        fleet = Fleet(100, seed=8, gateway_id="gw-01")
        key_file = tmp_path / "keys.json"
        key_file.write_text(json.dumps({"nodes": {str(n): {"key": k.hex(), "status": "active"}
                                                  for n, k in fleet.keys.items()}}))
        worker = WorkerProcess(write_ingest_toml(tmp_path / "ingest.toml", "ingest-pg", broker.port, pg.dsn, key_file),
                               tmp_path / "ingest.log").start()
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(pg.dsn, autocommit=True) as con:
                    if con.execute("SELECT count(*) FROM workers WHERE subscribed IS NOT NULL").fetchone()[0]:
                        break
            except psycopg.Error:
                pass
            assert time.monotonic() < deadline, "worker did not subscribe"
            time.sleep(0.2)
        gw = EmulatedGateway("gw-01", tmp_path / "gw", "127.0.0.1", broker.port, fsync=False).start()
        frames = list(fleet.frames(3000))
        gw.receive(frames[:1500])
        deadline = time.monotonic() + 60
        while _count(pg.dsn)[0] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pg.stop()  # immediate: like a crash; the worker's next transaction fails
        gw.receive(frames[1500:])
        time.sleep(3.0)
        assert worker.proc.poll() is None, "the worker must not exit when PostgreSQL is down"
        pg.start()
        expected = 3000 * 6
        deadline = time.monotonic() + 90
        got = (0, 0)
        while time.monotonic() < deadline:
            try:
                got = _count(pg.dsn)
            except psycopg.Error:
                got = (0, 0)
            if got[0] >= expected:
                break
            time.sleep(0.5)
        time.sleep(1.0)
        assert _count(pg.dsn) == (expected, expected), (tmp_path / "ingest.log").read_text()[-3000:]
        log = (tmp_path / "ingest.log").read_text()
        assert "store failed" in log  # it did hit the outage, and retried
    finally:
        if gw:
            gw.stop()
        if worker:
            assert worker.stop() == 0
        pg.cleanup()
