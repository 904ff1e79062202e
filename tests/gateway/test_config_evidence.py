"""Pending node config is cleared once an uplink shows it applied (docs/frame-format.md §5):
the evidence rules on their own, read from a real store, and through the running service."""
import time

import pytest

from sen.firmware_modules import load
from sen.gateway.config_evidence import Uplink, evidence, interval_tolerance, observe
from sen.gateway.rx_meta import RxMeta
from sen.testkit.synthetic import Fleet

from .conftest import LiveGateway

frame = load("frame")
T0 = 1_795_000_000.0
PLAIN = [(1, 301, 0), (2, 130, 0), (5, 33, 0), (7, 198, 0)]
CALIB = [(1, 301, 16), (2, 130, 16), (5, 33, 16), (7, 198, 16), (39, 41, 16)]  # flagged + pm25_cf1


def test_tolerance_is_floor_or_fraction():
    assert interval_tolerance(60) == 10 and interval_tolerance(900) == 45 and interval_tolerance(86400) == 4320


@pytest.mark.parametrize("gap,ok", [(300, True), (314, True), (286, True), (284, False), (315.5, False),
                                    (600, False), (900, False), (60, False)])
def test_interval_needs_one_gap_of_the_new_interval(gap, ok):
    up = Uplink(True, T0 + gap, T0, False)
    assert evidence({"interval_s": 300}, up) == {"interval_s": ok}


def test_each_key_and_missing_observations():
    assert evidence({"confirmed": False}, Uplink(False)) == {"confirmed": True}
    assert evidence({"confirmed": True}, Uplink(False)) == {"confirmed": False}
    assert evidence({"calibration_mode": True}, Uplink(True, T0, None, True)) == {"calibration_mode": True}
    assert evidence({"calibration_mode": False}, Uplink(True, T0, None, True)) == {"calibration_mode": False}
    assert evidence({"calibration_mode": False}, Uplink(True)) == {"calibration_mode": False}  # no readings
    assert evidence({"interval_s": 300}, Uplink(True, T0, None, False)) == {"interval_s": False}  # no previous
    assert evidence({"antenna": 1}, Uplink(True)) == {"antenna": False}


def test_observe_reads_the_store_single_and_batch(rig):
    f = rig.fleet.framers[1]
    rig.feed([(f.encode(0, frame.UP_BOOT, [(0, PLAIN)]), RxMeta("gw", T0))])
    up = observe(rig.store.con, 1, 0, False)
    assert up == Uplink(False, T0, None, False)
    rig.feed([(f.encode(1, frame.UP_CONFIRMED, [(0, CALIB)]), RxMeta("gw", T0 + 300))])
    assert observe(rig.store.con, 1, 1, True) == Uplink(True, T0 + 300, T0, True)
    # a batch: two samples 120 s apart (the node's clock), newest last
    rig.feed([(f.encode(2, frame.UP_BATCH, [(120, PLAIN), (0, PLAIN)]), RxMeta("gw", T0 + 720))])
    assert observe(rig.store.con, 1, 2, False) == Uplink(False, T0 + 720, T0 + 600, False, since_ask=1)


def test_service_clears_pending_config_once_applied_and_status_shows_it(tmp_path):
    from sen.gateway.status_data import status_data

    fleet = Fleet(2, seed=5)
    gw = LiveGateway(tmp_path, fleet, [])
    gw.svc.store.set_pending_config(2, {"interval_s": 300, "calibration_mode": True})
    gw.svc.pending_config = gw.svc.store.pending_configs()
    gw.start()
    f2 = fleet.framers[2]
    uplinks = [(0, frame.UP_BOOT | frame.UP_CONFIRMED, T0, PLAIN),
               (1, frame.UP_CONFIRMED, T0 + 60, PLAIN),  # old schedule: not applied yet
               (2, frame.UP_CONFIRMED, T0 + 360, PLAIN),  # new interval but not calibrating: one key short
               (3, frame.UP_CONFIRMED, T0 + 660, CALIB),  # both shown: cleared before this ACK
               (4, frame.UP_CONFIRMED, T0 + 960, CALIB)]
    configs = []
    for i, (c, flags, t, readings) in enumerate(uplinks):
        gw.inject_all([(f2.encode(c, flags, [(0, readings)]), RxMeta("gw-test", t, radio="r0"))])
        deadline = time.monotonic() + 10
        while len(gw.radio.sent) <= i and time.monotonic() < deadline:
            time.sleep(0.01)
        dflags, cfg = frame.parse_downlink(gw.radio.sent[i], 2, f2.mic, c)
        assert dflags & frame.DN_ACK and bool(dflags & frame.DN_CONFIG) == bool(cfg)
        # from the 4th frame on ADR states the link setting too; only the operator keys count here
        configs.append({k: v for k, v in cfg.items() if k not in ("sf", "tx_backoff_db")})
    pending = {"interval_s": 300, "calibration_mode": True}
    assert configs == [pending, pending, pending, {}, {}]
    st = status_data(gw.cfg)
    gw.stop()
    node2 = [n for n in st["node_config"] if n["node"] == 2][0]
    assert node2["pending"] is None and node2["confirmed"] == pending and node2["confirmed_counter"] == 3
    assert node2["evidence"] == {"calibrating": True, "interval_s": 300.0}


def test_ack_every_evidenced_by_the_gap_between_ack_requests(rig):
    f = rig.fleet.framers[1]
    rig.feed([(f.encode(0, frame.UP_BOOT | frame.UP_CONFIRMED, [(0, PLAIN)]), RxMeta("gw", T0))])
    for c in (1, 2, 3):
        rig.feed([(f.encode(c, 0, [(0, PLAIN)]), RxMeta("gw", T0 + 60 * c))])
    rig.feed([(f.encode(4, frame.UP_CONFIRMED, [(0, PLAIN)]), RxMeta("gw", T0 + 240))])
    up = observe(rig.store.con, 1, 4, True)
    assert up.ack_gap == 4
    assert evidence({"ack_every": 4}, up) == {"ack_every": True}
    assert evidence({"ack_every": 8}, up) == {"ack_every": False}
    # an uplink that does not ask for an ACK shows nothing of ack_every
    assert evidence({"ack_every": 4}, observe(rig.store.con, 1, 3, False)) == {"ack_every": False}


def test_confirmed_false_needs_a_skipped_ack_request_not_just_a_frame_without_the_flag():
    # a confirmed node asks on one frame in ack_every (4): the three between carry no flag
    # whether or not it took the change; a fourth or later one without it shows it did
    for since, ok in ((1, False), (3, False), (4, False), (5, True), (16, True)):
        assert evidence({"confirmed": False}, Uplink(False, since_ask=since)) == {"confirmed": ok}, since
    assert evidence({"confirmed": False, "ack_every": 8}, Uplink(False, since_ask=6))["confirmed"] is False
    assert evidence({"confirmed": False}, Uplink(True, ack_gap=4)) == {"confirmed": False}
