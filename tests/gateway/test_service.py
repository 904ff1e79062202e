"""The running service: Prometheus metrics endpoint, ACKs for confirmed uplinks with pending
config, key rotation picked up while running, SIGTERM-style drain of queued frames."""
import time
import urllib.request

from sen.firmware_modules import load
from sen.gateway.rx_meta import RxMeta
from sen.testkit.synthetic import Fleet

from .conftest import LiveGateway

frame = load("frame")


def test_metrics_acks_rotation_and_drain(tmp_path):
    fleet = Fleet(3, seed=12)
    gw = LiveGateway(tmp_path, fleet, [])
    gw.cfg.metrics = {"bind": "127.0.0.1", "port": 0}
    gw.svc.store.set_pending_config(2, {"interval_s": 300})
    gw.start()
    items = list(fleet.frames(30))
    f2 = fleet.framers[2]
    confirmed = f2.encode(10, frame.UP_CONFIRMED, [(0, [(5, 33, 0)])])
    gw.inject_all(items + [(confirmed, RxMeta("gw-test", time.time(), radio="r0"))])
    gw.wait_stored(31)
    # the ACK went out on the radio that heard the frame, naming its counter, with the config
    deadline = time.monotonic() + 5
    while not gw.radio.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(gw.radio.sent) == 1
    flags, cfg = frame.parse_downlink(gw.radio.sent[0], 2, f2.mic, 10)
    # TIME and RANGE ride on every ACK, and node 2's ten frames are history enough for ADR,
    # which on this single-SF radio (SF9) changes the power only
    assert flags == frame.DN_ACK | frame.DN_CONFIG | frame.DN_TIME | frame.DN_RANGE
    assert cfg["interval_s"] == 300 and cfg["sf"] == 9 and set(cfg) == {"interval_s", "sf", "tx_backoff_db"}
    body = urllib.request.urlopen(f"http://127.0.0.1:{gw.svc.metrics_port}/metrics", timeout=5).read().decode()
    assert 'sen_gateway_frames_total{outcome="accepted",reason=""} 31.0' in body
    assert 'sen_gateway_node_battery_volts{node="1"}' in body
    assert "sen_gateway_ingest_latency_seconds_count 31.0" in body
    assert 'sen_gateway_radio_received_total{radio="r0"}' in body
    # node 3 is re-provisioned: new key, counters from 0 again; the running gateway follows
    new = bytes(range(100, 116))
    from sen.gateway.key_store import KeyStore
    KeyStore(gw.cfg.key_file).rotate(3, new)  # what `sen gateway keys rotate` does from another process
    fresh = frame.Framer(3, new)
    deadline = time.monotonic() + 10
    while gw.svc.pipeline.states[3].known and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not gw.svc.pipeline.states[3].known and gw.svc.pipeline.states[3].epoch >= 1
    gw.inject_all([(fresh.encode(0, frame.UP_BOOT, [(0, [(5, 40, 0)])]),
                    RxMeta("gw-test", time.time(), radio="r0"))])
    gw.wait_stored(32)
    # drain: frames queued at stop are all logged and stored before the service exits
    burst = [(f, m) for f, m in fleet.frames(60)][30:]
    with gw.svc.intake_lock:  # none of the burst can be logged before the stop: the drain must take it all
        gw.inject_all(burst)  # (injecting after the stop raced the drain: radios stop before it, injections do not)
        gw.svc.stopping.set()
    gw.thread.join(30)
    from sen.gateway.store import connect
    con = connect(gw.cfg.store_path, readonly=True)
    n = con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    rej = dict(con.execute("SELECT reason, count FROM rejections").fetchall())
    assert n + sum(rej.values()) == 32 + len(burst)
    # the re-provisioned node's counter 0 is stored apart from its first life's counter 0
    epoch = con.execute("SELECT epoch FROM nodes WHERE node_id=3").fetchone()[0]
    assert epoch >= 1 and con.execute("SELECT COUNT(*) FROM frames WHERE node_id=3 AND counter=?",
                                      ((epoch << 32) | 0,)).fetchone()[0] == 1
    assert con.execute("SELECT COUNT(*) FROM frames WHERE node_id=3 AND counter=0").fetchone()[0] == 1


def test_ack_starts_a_fixed_delay_after_the_uplink_ends(tmp_path):
    # the node switches to receive a few ms after its TxDone; an ACK sent the instant the
    # frame is stored could be half over before it listens
    from sen.gateway.downlinks import ACK_DELAY_S
    fleet = Fleet(2, seed=5)
    gw = LiveGateway(tmp_path, fleet, [])
    gw.cfg.metrics = {"bind": "127.0.0.1", "port": 0}
    stamps = []
    real = gw.radio.transmit
    gw.radio.transmit = lambda f: (stamps.append(time.time()), real(f))
    gw.start()
    try:
        t_rx = time.time()
        up = fleet.framers[1].encode(0, frame.UP_CONFIRMED | frame.UP_BOOT, [(0, [(5, 33, 0)])])
        gw.inject_all([(up, RxMeta("gw-test", t_rx, radio="r0"))])
        deadline = time.monotonic() + 5
        while not stamps and time.monotonic() < deadline:
            time.sleep(0.005)
        assert stamps, "no ACK"
        assert ACK_DELAY_S - 0.005 <= stamps[0] - t_rx < ACK_DELAY_S + 0.3, stamps[0] - t_rx
        # a frame whose processing took longer than the delay is ACKed at once, while the
        # node still listens (nodes flashed to listen 2 s late, node_rx_late_ms)
        gw.radio.rc.options["node_rx_late_ms"] = 2000
        gw.radio.applies_window = True  # as a real radio's frames: stamped when heard
        stamps.clear()
        late = time.time() - 1.0
        up = fleet.framers[1].encode(1, frame.UP_CONFIRMED, [(0, [(5, 34, 0)])])
        gw.inject_all([(up, RxMeta("gw-test", late, radio="r0"))])
        deadline = time.monotonic() + 5
        while not stamps and time.monotonic() < deadline:
            time.sleep(0.005)
        assert stamps and stamps[0] - late < 1.0 + 0.3
        # and not at all once the node's window (100 ms + 2000) is over: it listens no more
        stamps.clear()
        up = fleet.framers[1].encode(2, frame.UP_CONFIRMED, [(0, [(5, 35, 0)])])
        gw.inject_all([(up, RxMeta("gw-test", time.time() - 5.0, radio="r0"))])
        gw.wait_stored(3)
        deadline = time.monotonic() + 5
        while gw.radio.ack_window_missed == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.3)
        assert gw.radio.ack_window_missed == 1 and not stamps
        body = urllib.request.urlopen(f"http://127.0.0.1:{gw.svc.metrics_port}/metrics", timeout=5).read().decode()
        assert 'sen_gateway_radio_ack_window_missed_total{radio="r0"} 1.0' in body
    finally:
        gw.svc.stopping.set()
        gw.thread.join(10)


def test_frames_still_queued_at_the_stop_are_logged_and_stored(tmp_path):
    # frames a radio handed over that no thread has touched yet when the stop comes: the
    # stop must log and store them, not leave them in memory (deterministic: the service
    # is told to stop before its threads ever run)
    fleet = Fleet(2, seed=13)
    gw = LiveGateway(tmp_path, fleet, [])
    burst = list(fleet.frames(25))
    gw.inject_all(burst)
    gw.svc.stopping.set()
    gw.start()
    gw.thread.join(30)
    assert not gw.thread.is_alive()
    from sen.gateway.raw_log import iter_log
    from sen.gateway.store import connect
    con = connect(gw.cfg.store_path, readonly=True)
    assert con.execute("SELECT COUNT(*) FROM frames").fetchone()[0] == len(burst)
    assert len(list(iter_log(tmp_path / "data"))) == len(burst)
