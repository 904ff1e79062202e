"""ACK content through the running gateway service (docs/frame-format.md sections 5, 9):
TIME, the RANGE bitmap from the counter state, and ADR's link setting; and the operator's
--sf pin, --ack-every and [adr] table from the command line and gateway.toml."""
import time

import pytest

from sen.errors import SenError
from sen.gateway import config
from sen.gateway.downlink_decode import decode_downlink
from sen.gateway.rx_meta import RxMeta
from sen.firmware_modules import load
from sen.testkit.synthetic import Fleet

from .conftest import LiveGateway
from .test_config_cli import BASE, RADIO, sen, write

frame = load("frame")
T0 = 1767225600.4


def _send(gw, node, counter, flags, t, snr=5.0, n_sent=None):
    f = gw.fleet.framers[node]
    gw.inject_all([(f.encode(counter, flags, [(0, [(5, 33 + counter, 0)])]),
                    RxMeta("gw-test", t, sf=9, snr=snr, rssi=-90.0, radio="r0"))])
    if n_sent is not None:
        deadline = time.monotonic() + 10
        while len(gw.radio.sent) < n_sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(gw.radio.sent) == n_sent
        return decode_downlink(gw.radio.sent[-1], node, gw.fleet.keys[node], counter)


@pytest.fixture
def gw(tmp_path):
    fleet = Fleet(2, seed=21)
    g = LiveGateway(tmp_path, fleet, [])
    g.fleet = fleet
    g.start()
    yield g
    g.stop()


def test_ack_carries_time_range_and_link_setting(gw):
    # frames 10, 11, 13 stored (12 lost), then 14 asks for an ACK
    _send(gw, 1, 10, frame.UP_BOOT, T0)
    _send(gw, 1, 11, 0, T0 + 60)
    _send(gw, 1, 13, 0, T0 + 180)
    dn = _send(gw, 1, 14, frame.UP_CONFIRMED, T0 + 240, n_sent=1)
    assert dn.flags & frame.DN_ACK and dn.flags & frame.DN_TIME and dn.flags & frame.DN_RANGE
    assert dn.time_s == int(T0 + 240)
    assert dn.range_bits == 0b1101 and dn.stored_before() == [13, 11, 10]
    # four frames of history: ADR states the link; the one radio hears SF9 only, so SF9
    assert dn.config["sf"] == 9 and 0 <= dn.config["tx_backoff_db"] <= 20
    # and the firmware parser reads the same ACK
    extra = [None, None]
    flags, cfg = frame.parse_downlink(gw.radio.sent[-1], 1, gw.fleet.framers[1].mic, 14, extra)
    assert extra == [int(T0 + 240), 0b1101] and cfg == dn.config


def test_single_sf_gateway_never_commands_another_sf(gw):
    # a node far away (SNR near SF9's limit) and one next to the gateway (SNR +10)
    acks = []
    for c in range(12):
        for node, snr in ((1, -9.0), (2, 10.0)):
            acks.append(_send(gw, node, c, frame.UP_CONFIRMED | (frame.UP_BOOT if c == 0 else 0), T0 + 60 * c,
                              snr=snr, n_sent=len(acks) + 1))
    with_link = [d for d in acks if "sf" in d.config]
    assert len(with_link) >= 16 and {d.config["sf"] for d in with_link} == {9}
    near = [d.config["tx_backoff_db"] for d in with_link if d.config["tx_backoff_db"] > 0]
    assert near, "the near node's power comes down"


def test_adr_disabled_sends_no_link_setting(tmp_path):
    fleet = Fleet(1, seed=3)
    g = LiveGateway(tmp_path, fleet, [])
    g.fleet = fleet
    g.cfg.adr_enabled = False
    g.svc.acks.enabled = False
    g.start()
    try:
        for c in range(6):
            dn = _send(g, 1, c, frame.UP_CONFIRMED | (frame.UP_BOOT if c == 0 else 0), T0 + c, n_sent=c + 1)
        assert dn.config == {} and dn.flags & frame.DN_TIME
    finally:
        g.stop()


def test_sf_pin_and_ack_every_from_the_cli(tmp_path):
    p = write(tmp_path, BASE + RADIO)
    r = sen("gateway", "node-config", "7", "--sf", "11", "--ack-every", "4", "-c", str(p))
    assert r.returncode == 0, r.stderr
    from sen.gateway.link_history import LinkHistory
    from sen.gateway.store import Store
    s = Store(tmp_path / "data" / "gateway.db")
    assert LinkHistory(s.con).pinned_sf(7) == 11 and s.pending_config(7) == {"ack_every": 4}
    s.close()
    assert sen("gateway", "node-config", "7", "--sf", "auto", "-c", str(p)).returncode == 0
    s = Store(tmp_path / "data" / "gateway.db")
    assert LinkHistory(s.con).pinned_sf(7) is None
    s.close()
    for args, msg in ((("--sf", "13"), "--sf '13' is not a spreading factor"), (("--sf", "fast"), "not a spreading"),
                      (("--ack-every", "17"), "ack_every must be an integer 1..16"),
                      (("--ack-every", "0"), "ack_every must be an integer 1..16")):
        r = sen("gateway", "node-config", "7", *args, "-c", str(p))
        assert r.returncode == 2 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize("table, needle", [
    ('[adr]\nmargin_db = -1.0\n', "margin_db"),
    ('[adr]\nhysteresis_db = "one"\n', "hysteresis_db"),
    ('[adr]\nenabled = "yes"\n', "enabled"),
    ('[adr]\nmargin = 5.0\n', "margin"),
    ('[adr]\ncentral = "yes"\n', "central"),
    ('[adr]\ncentral_max_age_s = 10\n', "central_max_age_s"),
])
def test_adr_table_refuses_bad_values_in_one_line(tmp_path, table, needle):
    p = write(tmp_path, BASE + RADIO + table)
    with pytest.raises(SenError) as err:
        config.load(p)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_adr_table_defaults_and_values(tmp_path):
    cfg = config.load(write(tmp_path, BASE + RADIO))
    assert (cfg.adr_enabled, cfg.adr_margin_db, cfg.adr_hysteresis_db) == (True, 5.0, 1.0)
    assert (cfg.adr_central, cfg.adr_central_max_age_s) == (True, 3600.0)
    cfg = config.load(write(tmp_path, BASE + RADIO + "[adr]\nenabled = false\nmargin_db = 8\nhysteresis_db = 1.5\n"
                                                     "central = false\ncentral_max_age_s = 900\n"))
    assert (cfg.adr_enabled, cfg.adr_margin_db, cfg.adr_hysteresis_db) == (False, 8.0, 1.5)
    assert (cfg.adr_central, cfg.adr_central_max_age_s) == (False, 900.0)
