"""The central ingest's SensorThings forwarder keeps the ids the server assigned in PostgreSQL
(upstream_ids), next to its outbox: a new leader (another worker, a restart) reuses them and
creates nothing twice. Real django-ogc-sensorthings server, real PostgreSQL."""
from dataclasses import replace

from sen.gateway.forwarders.sensorthings import SensorThingsForwarder
from sen.gateway.pipeline import Pipeline
from sen.testkit.synthetic import Fleet
from sen.gateway import uplink_wire as wire
from sen.ingest.pg_outbox import LeaderForwarderRunner
from sen.ingest.postgres_store import PgStore

from tests.gateway.sta_server import StaServer


def lead_until_sent(dsn, fw, n_readings, sta, timeout=60):
    runner = LeaderForwarderRunner(fw, dsn, name="sensorthings", standby_s=0.2).start()
    try:
        assert sta.wait_count(n_readings, timeout) == n_readings
    finally:
        runner.stop()


def test_ids_survive_a_new_leader(pg_dsn, tmp_path):
    sta = StaServer(tmp_path).start()
    try:
        fleet = Fleet(3, seed=31)
        store = PgStore(pg_dsn, "w1")
        pipe = Pipeline(store, dict(fleet.keys))
        items = [(f, replace(m, gateway_id="gw-a")) for f, m in fleet.frames(30)]
        store.refresh(pipe.states, {wire.node_of(f) for f, _ in items[:15]})
        pipe.process([(i, i + 1, f, m) for i, (f, m) in enumerate(items[:15])])
        lead_until_sent(pg_dsn, SensorThingsForwarder(sta.url, gateway_location=(108.2, 16.0)), 15 * 6, sta)
        datastreams = {d["@iot.id"] for d in sta.all("Datastreams?$select=id")}
        assert len(datastreams) == 3 * 6
        mapped = store.con.execute("SELECT count(*) FROM upstream_ids WHERE forwarder='sensorthings'"
                                   " AND key LIKE '%|ds|%'").fetchone()[0]
        assert mapped == 18

        store.refresh(pipe.states, {wire.node_of(f) for f, _ in items[15:]})
        pipe.process([(i, i + 1, f, m) for i, (f, m) in enumerate(items[15:], 15)])
        fw2 = SensorThingsForwarder(sta.url, gateway_location=(108.2, 16.0))  # a new leader: empty memory
        lead_until_sent(pg_dsn, fw2, 30 * 6, sta)
        assert {d["@iot.id"] for d in sta.all("Datastreams?$select=id")} == datastreams
        assert len(sta.all("Things?$select=id")) == 3
        ids = {o["parameters"]["senId"] for o in sta.all("Observations?$select=parameters&$top=1000")}
        assert len(ids) == 30 * 6 and sta.get("Observations?$count=true&$top=0")["@iot.count"] == 180
        store.close()
    finally:
        sta.stop()
