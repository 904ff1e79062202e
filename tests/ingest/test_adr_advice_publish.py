"""The central ingest publishes its ADR choice (docs/frame-format.md section 9): a real
`sen ingest run` worker, real mosquitto and PostgreSQL, two gateways in uplink mode hearing
one node (one strongly, one weakly). The retained advice on <prefix>/adr/<node> carries the
setting ADR computes from the best copy of each frame, faster than the weak gateway's copies
alone would give, and the gateway's subscription holds it. Only changes are re-published;
one worker at a time publishes (advisory lock), and another takes over when it stops."""
import json
import threading
import time
from dataclasses import replace

import paho.mqtt.client as mqtt
import psycopg

from sen import adr_advice
from sen.adr import AdrParams, LinkFrame, NodeLink
from sen.gateway.central_adr import CentralAdvice
from sen.gateway.pipeline import Pipeline
from sen.gateway.uplink_publisher import mqtt5_client
from sen.gateway import uplink_wire as wire
from sen.ingest.adr_publisher import LOCK_KEY, AdvicePublisher, due
from sen.ingest.link_report import link_report
from sen.ingest.postgres_store import PgStore
from sen.testkit.city_sim import EmulatedGateway
from sen.testkit.loopback import WorkerProcess, write_ingest_toml
from sen.testkit.synthetic import Fleet

STRONG, WEAK = 2.0, -8.0  # SNR dB of each gateway's copies; the node sends at SF9


def replay(snrs, sf=9):
    """What ADR chooses from these frames, fed one by one as link_report does."""
    link, setting = NodeLink(), None
    for snr in snrs:
        link.observe(LinkFrame(snr, -100.0, sf))
        setting = link.decide(AdrParams())
    return setting.sf, setting.tx_backoff_db


class Listener:
    """A plain MQTT 5 subscriber to <prefix>/adr/+."""

    def __init__(self, port, name):
        self.msgs: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(adr_advice.subscription("sen"), qos=1)
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_message(self, c, u, msg):
        with self.lock:
            self.msgs.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def latest(self) -> dict[int, adr_advice.Advice]:
        with self.lock:
            msgs = list(self.msgs)
        return {adr_advice.node_of_topic(t): adr_advice.decode(t, p) for t, p, _ in msgs if p}

    def count(self, node) -> int:
        with self.lock:
            return sum(1 for t, p, _ in self.msgs if t == adr_advice.topic("sen", node) and p)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def _wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _subscribed(dsn):
    try:
        with psycopg.connect(dsn, autocommit=True) as con:
            return con.execute("SELECT count(*) FROM workers WHERE subscribed IS NOT NULL").fetchone()[0] > 0
    except psycopg.Error:
        return False


def test_worker_publishes_the_best_copies_choice_retained(tmp_path, pg_dsn, broker):
    fleet = Fleet(2, seed=11)
    key_file = tmp_path / "keys.json"
    key_file.write_text(json.dumps({"nodes": {str(n): {"key": k.hex(), "status": "active"}
                                              for n, k in fleet.keys.items()}}))
    toml = write_ingest_toml(tmp_path / "ingest.toml", "ingest-a", broker.port, pg_dsn, key_file,
                             "\n[adr]\ninterval_s = 1\nrefresh_s = 3600\n", log_level="INFO")
    worker = WorkerProcess(toml, tmp_path / "ingest.log").start()
    live = late = None
    book = CentralAdvice()
    gws = []
    try:
        assert _wait(lambda: _subscribed(pg_dsn), 60), (tmp_path / "ingest.log").read_text()
        live = Listener(broker.port, "live")
        gws = [EmulatedGateway(g, tmp_path / "gw", "127.0.0.1", broker.port, fsync=False,
                               **({"advice": book} if g == "gw-strong" else {})).start()
               for g in ("gw-strong", "gw-weak")]
        strong, weak = [], []
        for f, m in fleet.frames(20):  # 10 frames each from nodes 1 and 2
            m = replace(m, sf=9, rssi=-110.0)
            if wire.node_of(f) == 1:  # heard by both gateways
                strong.append((f, replace(m, gateway_id="gw-strong", snr=STRONG, rssi=-95.0)))
            weak.append((f, replace(m, gateway_id="gw-weak", snr=WEAK)))  # node 2: the weak gateway only
        gws[0].receive(strong)
        gws[1].receive(weak)

        want = {1: replay([STRONG] * 10), 2: replay([WEAK] * 10)}
        assert want[1][0] < want[2][0]  # the best copies allow a faster SF than the weak ones alone

        def settled():
            got = live.latest()
            return all(n in got and (got[n].sf, got[n].tx_backoff_db) == want[n] for n in want)
        assert _wait(settled, 60), (live.msgs, (tmp_path / "ingest.log").read_text()[-3000:])
        got = live.latest()
        assert got[1].frames == 10 and got[2].frames == 10 and abs(got[1].computed - time.time()) < 30
        with psycopg.connect(pg_dsn, autocommit=True) as con:
            report = {r["node"]: (r["adr_sf"], r["adr_tx_backoff_db"]) for r in link_report(con)}
            assert report == want
            assert con.execute("SELECT count(*) FROM rx WHERE node_id = 1").fetchone()[0] == 20
            # the worker holding the ADR lock is the one publishing
            held = con.execute("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                               " WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s",
                               (LOCK_KEY,)).fetchall()
            assert held == [("sen-ingest:ingest-a:adr",)]

        # unchanged choices are not published again (rounds every second, refresh_s 3600)
        sent = {n: live.count(n) for n in want}
        time.sleep(3.5)
        assert {n: live.count(n) for n in want} == sent

        # retained: a gateway connecting now gets it at once
        late = Listener(broker.port, "late")
        assert _wait(lambda: len(late.latest()) == 2, 10)
        assert all(r for t, p, r in late.msgs if p), late.msgs
        assert late.latest() == got
        # and a gateway's own subscription (gateway/central_adr.py) holds what the ingest chose
        assert _wait(lambda: book.get(1) == got[1] and book.get(2) == got[2], 10)
    finally:
        code = worker.stop()
        for gw in gws:
            gw.stop()
        for listener in (live, late):
            if listener is not None:
                listener.stop()
    assert code == 0


def test_due_publishes_changes_refreshes_and_withdraws():
    rows = [{"node": 1, "adr_sf": 7, "adr_tx_backoff_db": 4, "frames": 20},
            {"node": 2, "adr_sf": None, "adr_tx_backoff_db": None, "frames": 2}]
    nodes = lambda todo: [(r["node"], s) for r, s in todo]  # noqa: E731
    assert nodes(due(rows, {}, 1000.0, 600)) == [(1, (7, 4)), (2, None)]  # a new leader sends all once
    sent = {1: ((7, 4), 1000.0), 2: (None, 1000.0)}
    assert due(rows, sent, 1599.0, 600) == []                              # unchanged, fresh
    assert nodes(due(rows, sent, 1600.0, 600)) == [(1, (7, 4))]            # refresh; a withdrawal is not repeated
    rows[0]["adr_tx_backoff_db"] = 6
    assert nodes(due(rows, sent, 1001.0, 600)) == [(1, (7, 6))]            # changed
    rows[0]["adr_sf"] = None
    assert nodes(due(rows, sent, 1001.0, 600)) == [(1, None)]              # reset: the old advice must go


def test_one_publisher_at_a_time_and_take_over(pg_dsn, broker):
    # two frames' worth of history for nothing, ten for node 1: stored as a worker would
    fleet = Fleet(1, seed=4)
    store = PgStore(pg_dsn, "seed")
    pipe = Pipeline(store, dict(fleet.keys))
    items = [(f, replace(m, gateway_id="gw-1", sf=9, snr=-3.0)) for f, m in fleet.frames(10)]
    store.refresh(pipe.states, {1})
    pipe.process([(i, i + 1, f, m) for i, (f, m) in enumerate(items)])
    store.close()

    listener = Listener(broker.port, "listener")
    pubs = []
    try:
        for name in ("w1", "w2"):
            c = mqtt5_client(f"adr-{name}")
            connected = threading.Event()
            c.on_connect = lambda cl, u, f, rc, p=None, ev=connected: ev.set()
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            pubs.append((AdvicePublisher(pg_dsn, c, connected, interval_s=0.2, standby_s=0.3,
                                         app=f"sen-ingest:{name}").start(), c))
        assert _wait(lambda: listener.count(1) >= 1, 20)
        time.sleep(1.5)
        leaders = [p for p, _ in pubs if p.leader]
        assert len(leaders) == 1 and listener.count(1) == 1  # the other stood by; the leader sent one
        assert (listener.latest()[1].sf, listener.latest()[1].tx_backoff_db) == replay([-3.0] * 10)
        leader = leaders[0]
        leader.stop()  # its connection closes: the lock is free
        other = next(p for p, _ in pubs if p is not leader)
        assert _wait(lambda: other.leader, 10)
        assert _wait(lambda: listener.count(1) == 2, 10)  # the new leader publishes what is due once
    finally:
        for p, c in pubs:
            p.stop()
            c.loop_stop()
            c.disconnect()
        listener.stop()
