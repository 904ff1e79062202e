"""The uplink wire format, ingest.toml validation, and the CLI's one-line errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sen.errors import SenError
from sen.gateway.rx_meta import RxMeta
from sen.host_tools.cli import cli
from sen.gateway import uplink_wire as wire
from sen.ingest import config
from sen.gateway.uplink_publisher import read_records


def test_wire_round_trip_and_refusals():
    meta = RxMeta("gw-07", 1_795_000_000.25, 921_600_000, 9, 125_000, -112.5, -3.25, "r1")
    frame = bytes(range(30))
    payload = wire.encode(frame, meta)
    f, m = wire.decode("sen/uplink/gw-07/1", payload)
    assert f == frame and m == meta
    with pytest.raises(wire.BadUplink) as e:
        wire.decode("sen/uplink/gw-08/1", payload)
    assert e.value.reason == wire.GATEWAY_MISMATCH
    broken = bytearray(payload)
    broken[-1] ^= 1
    for bad in (bytes(broken), payload[:-1], payload[:5], b""):
        with pytest.raises(wire.BadUplink) as e:
            wire.decode("sen/uplink/gw-07/1", bad)
        assert e.value.reason == wire.BAD_UPLINK
    with pytest.raises(wire.BadUplink):
        wire.decode("sen/gw-07", payload)
    assert wire.decode_gateway(payload) == "gw-07"
    for gid in ("a/b", "x+", "#", ""):
        with pytest.raises(ValueError):
            wire.check_gateway_id(gid)


def test_read_records_stops_at_a_torn_tail(tmp_path):
    from sen.gateway.raw_log import encode_record

    recs = [encode_record(bytes([i]) * 12, RxMeta("gw", float(i))) for i in range(5)]
    p = tmp_path / "raw.log"
    p.write_bytes(b"".join(recs) + recs[0][:7])
    got = read_records(p, 0, 100)
    assert [f for _, _, f, _ in got] == [bytes([i]) * 12 for i in range(5)]
    assert got[-1][1] == sum(map(len, recs))
    assert [f for _, _, f, _ in read_records(p, got[1][0], 2)] == [bytes([1]) * 12, bytes([2]) * 12]


def _toml(tmp_path, body: str) -> Path:
    (tmp_path / "keys.json").write_text(json.dumps({"nodes": {}}))
    p = tmp_path / "ingest.toml"
    p.write_text(body)
    return p


GOOD = """
[ingest]
worker_id = "ingest-1"
[broker]
host = "127.0.0.1"
[postgres]
dsn = "host=127.0.0.1 dbname=sen"
[keys]
file = "keys.json"
"""


def test_config_good_and_defaults(tmp_path):
    cfg = config.load(_toml(tmp_path, GOOD))
    assert cfg.worker_id == "ingest-1" and cfg.broker.port == 1883 and cfg.window_ms == 200
    assert cfg.broker.group == "sen-ingest" and cfg.defer_s == 3600.0
    assert (cfg.adr_publish, cfg.adr_interval_s, cfg.adr_refresh_s) == (True, 60.0, 600.0)
    assert (cfg.adr_params.margin_db, cfg.adr_params.hysteresis_db) == (5.0, 1.0)
    cfg = config.load(_toml(tmp_path, GOOD + "[adr]\npublish = false\ninterval_s = 30\nrefresh_s = 900\n"
                                                 "margin_db = 8\nhysteresis_db = 1.5\n"))
    assert (cfg.adr_publish, cfg.adr_interval_s, cfg.adr_refresh_s) == (False, 30.0, 900.0)
    assert (cfg.adr_params.margin_db, cfg.adr_params.hysteresis_db) == (8.0, 1.5)


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.replace('[broker]\nhost = "127.0.0.1"\n', ""), "[broker] is missing"),
    (lambda s: s.replace('worker_id = "ingest-1"', 'worker_id = "a/b"'), "ingest.worker_id"),
    (lambda s: s + '\n[forwarders.kafka]\nhost = "x"\n', "[forwarders.kafka] is not a known forwarder"),
    (lambda s: s.replace('host = "127.0.0.1"', 'host = "mqtt.city.vn"\nusername = "i"\npassword = "p"'),
     "broker.tls is off while a password goes to a remote broker"),
    (lambda s: s.replace('file = "keys.json"', 'file = "nope.json"'), "keys.file"),
    (lambda s: s.replace("[ingest]", "[ingest]\nwindow = 3"), "[ingest] window is not a known key"),
    (lambda s: s.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\nport = "1883"'), "broker.port must be a int"),
    (lambda s: s + "\n[broker2]\n", "broker2 is not a known key"),
    (lambda s: s + "\n[adr]\ninterval_s = 0\n", "adr.interval_s"),
    (lambda s: s + "\n[adr]\nrefresh_s = 1\n", "adr.refresh_s"),
    (lambda s: s + '\n[adr]\npublish = "yes"\n', "adr.publish"),
    (lambda s: s + "\n[adr]\nmargin_db = 40\n", "adr.margin_db"),
    (lambda s: s + "\n[adr]\ncentral = true\n", "[adr] central is not a known key"),
])
def test_config_errors_name_the_key(tmp_path, edit, words):
    with pytest.raises(SenError) as e:
        config.load(_toml(tmp_path, edit(GOOD)))
    assert words in str(e.value) and "—" in str(e.value) and "\n" not in str(e.value)


def _sen(*args):
    r = subprocess.run([str(Path(sys.executable).with_name("sen")), *args], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_cli_errors_are_one_line(tmp_path):
    code, out = _sen("ingest", "run", "-c", str(tmp_path / "none.toml"))
    assert code == 2 and out.count("\n") == 1 and out.startswith("sen: error: config file") and "—" in out
    p = _toml(tmp_path, GOOD.replace("dbname=sen", "port=1 dbname=sen connect_timeout=2"))
    code, out = _sen("ingest", "status", "-c", str(p))
    assert code == 2 and "cannot connect to PostgreSQL" in out and out.count("\n") == 1
    code, out = _sen("ingest", "uplink", "--raw-log", str(tmp_path / "x.log"), "--gateway-id", "g", "--host", "h")
    assert code == 2 and "raw log" in out and out.count("\n") == 1


def test_status_reports_a_store(tmp_path, pg_dsn):
    from sen.testkit.synthetic import Fleet
    from sen.gateway.pipeline import Pipeline
    from sen.ingest.postgres_store import PgStore

    fleet = Fleet(3, seed=5)
    store = PgStore(pg_dsn, "ingest-9")
    store.register_worker()
    pipe = Pipeline(store, dict(fleet.keys))
    items = list(fleet.frames(6))
    store.refresh(pipe.states, [1, 2, 3])
    pipe.process([(i, i + 1, f, m) for i, (f, m) in enumerate(items)])
    p = _toml(tmp_path, GOOD.replace('dsn = "host=127.0.0.1 dbname=sen"', f'dsn = "{pg_dsn}"'))
    r = CliRunner().invoke(cli, ["ingest", "status", "-c", str(p), "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert st["frames"] == 6 and st["readings"] == 36 and st["nodes"] == 3
    assert st["workers"][0]["worker"] == "ingest-9" and st["workers"][0]["frames"] == 6
    assert st["gateways"][0]["gateway"] == "gw-test" and st["gateways"][0]["copies"] == 6
    r = CliRunner().invoke(cli, ["ingest", "status", "-c", str(p)])
    assert r.exit_code == 0 and "ingest-9" in r.output


def test_status_reports_adr_over_the_best_copy_across_gateways(tmp_path, pg_dsn):
    """Two gateways hear node 1: one weakly, one well. ADR takes the best copy of each frame."""
    import time as _time

    from sen.gateway.pipeline import Pipeline
    from sen.gateway.rx_meta import RxMeta
    from sen.ingest.postgres_store import PgStore
    from sen.firmware_modules import load
    from sen.testkit.synthetic import Fleet

    frame = load("frame")
    fleet = Fleet(1, seed=8)
    store = PgStore(pg_dsn, "ingest-adr")
    store.register_worker()
    pipe = Pipeline(store, dict(fleet.keys))
    store.refresh(pipe.states, [1])
    f1, t0, recs = fleet.framers[1], _time.time(), []
    for c in [0, 1, 2, 3, 5, 6, 7, 8]:  # counter 4 lost
        raw = f1.encode(c, frame.UP_BOOT if c == 0 else 0, [(0, [(5, 30 + c, 0)])])
        recs.append((raw, RxMeta("gw-far", t0 + c, sf=10, snr=-12.0, rssi=-125.0, radio="r0")))
        recs.append((raw, RxMeta("gw-near", t0 + c, sf=10, snr=3.0 + (c % 2), rssi=-100.0, radio="r0")))
    pipe.process([(i, i + 1, f, m) for i, (f, m) in enumerate(recs)])
    p = _toml(tmp_path, GOOD.replace('dsn = "host=127.0.0.1 dbname=sen"', f'dsn = "{pg_dsn}"'))
    r = CliRunner().invoke(cli, ["ingest", "status", "-c", str(p), "--json"])
    assert r.exit_code == 0, r.output
    link = json.loads(r.output)["links"][0]
    assert link["node"] == 1 and link["frames"] == 8 and link["snr_max"] == 4.0
    assert link["loss_pct"] == round(100 / 9, 1)
    # 4 dB best-copy SNR: SF7 needs -7.5 + 5, so ADR goes to SF7 with power to spare
    assert link["adr_sf"] == 7 and link["adr_tx_backoff_db"] >= 2
    r = CliRunner().invoke(cli, ["ingest", "status", "-c", str(p)])
    assert r.exit_code == 0 and "ADR SF" in r.output
    # ingest.toml's [adr] margin is the one shown (and published to the gateways)
    p.write_text(p.read_text() + "[adr]\nmargin_db = 20\n")
    r = CliRunner().invoke(cli, ["ingest", "status", "-c", str(p), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["links"][0]["adr_sf"] > 10  # 4 dB at SF10 is short of a 20 dB margin
