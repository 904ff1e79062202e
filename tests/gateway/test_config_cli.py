"""gateway.toml validation and the `sen gateway` commands, through the real CLI."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from sen.errors import SenError
from sen.gateway import config
from sen.testkit.synthetic import Fleet
from sen.paths import DOCS

def sen(*args, cwd=None):
    """The installed `sen` console script, as an operator runs it."""
    return subprocess.run([Path(sys.executable).parent / "sen", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def write(tmp, text, keys=True):
    if keys:
        (tmp / "keys.json").write_text('{"nodes": {}}')
    p = tmp / "gateway.toml"
    p.write_text(text)
    return p


BASE = """[gateway]\nid = "gw1"\n[keys]\nfile = "keys.json"\n"""
RADIO = """[[radio]]\nbackend = "serial"\nport = "socket://127.0.0.1:9"\n"""


def test_example_config_is_valid(tmp_path):
    text = (DOCS / "gateway.example.toml").read_text()
    (tmp_path / "keys.json").write_text('{"nodes": {}}')
    cfg = config.from_dict(__import__("tomllib").loads(text), tmp_path / "gateway.toml")
    assert cfg.radios[0].backend == "sx127x" and cfg.forwarders["mqtt"]["port"] == 1883
    assert cfg.nodes[17]["station"] == "HAICHAU"


@pytest.mark.parametrize("body, key, fix", [
    (BASE + '[[radio]]\nbackend = "lora9000"\n', "radio[0].backend 'lora9000' is unknown", "use one of: sx127x, serial, emulated"),
    (BASE + '[[radio]]\nbackend = "sx127x"\nfrequency_hz = 868100000\n', "radio[0].frequency_hz", "921400000"),
    (BASE + '[[radio]]\nbackend = "serial"\n', "radio[0].port is missing", "/dev/ttyACM0"),
    (BASE + RADIO + '[forwarders.kafka]\nhost = "x"\n', "[forwarders.kafka] is not a known forwarder", "mqtt"),
    (BASE + RADIO + '[forwarders.mqtt]\nport = 1883\n', "forwarders.mqtt.host is missing", "host = "),
    (BASE + RADIO + '[forwarders.ngsi_ld]\nurl = "orion:1026"\n', "not an http(s) URL", "url ="),
    ('[gateway]\nid = "g"\n' + RADIO, "keys.file is missing", "[keys]"),
    (BASE + RADIO + '[gateway]\n', "not valid TOML", "fix the syntax"),
    (BASE, "[[radio]] is missing", "backend"),
])
def test_bad_config_one_line_error(tmp_path, body, key, fix):
    p = write(tmp_path, body)
    r = sen("gateway", "run", "-c", str(p))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sen: error: "), r.stderr
    assert key in lines[0] and fix in lines[0] and "Traceback" not in r.stderr


def test_missing_key_file(tmp_path):
    p = write(tmp_path, BASE + RADIO, keys=False)
    r = sen("gateway", "run", "-c", str(p))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"sen: error: {p}: keys.file '{tmp_path / 'keys.json'}' does not exist — create it with "
        "`sen gateway keys add NODE -c gateway.toml` or correct the path"]


def test_unreachable_broker_at_startup_warns_once_and_keeps_receiving(tmp_path, caplog):
    from sen.bench.gateway_receivers import free_port
    from sen.gateway.service import build_forwarders
    port = free_port()
    p = write(tmp_path, BASE + RADIO + f'[forwarders.mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    cfg = config.load(p)
    with caplog.at_level(logging.WARNING):
        fws = build_forwarders(cfg)
    msgs = [r.getMessage() for r in caplog.records]
    assert any(f"127.0.0.1:{port} is unreachable at start-up" in m and "keeps receiving and queues" in m
               and "[forwarders.mqtt] host/port" in m for m in msgs)
    for f in fws:
        f.close()


def test_keys_export_status_replay_cli(tmp_path):
    fleet = Fleet(3, seed=11)
    p = write(tmp_path, BASE + RADIO, keys=False)
    r = sen("gateway", "keys", "add", "1", "--key", fleet.keys[1].hex(), "-c", str(p))
    assert r.returncode == 0 and fleet.keys[1].hex() in r.stdout
    (tmp_path / "more.txt").write_text(f"2 {fleet.keys[2].hex()}\n# comment\n3,{fleet.keys[3].hex()}\n")
    (tmp_path / "more.txt").chmod(0o600)  # key files readable by others are refused
    assert "imported 2 keys" in sen("gateway", "keys", "import", str(tmp_path / "more.txt"), "-c", str(p)).stdout
    r = sen("gateway", "keys", "add", "1", "-c", str(p))
    assert r.returncode == 2 and "already has a key" in r.stderr and "keys rotate" in r.stderr
    r = sen("gateway", "keys", "add", "70000", "-c", str(p))
    assert r.returncode == 2 and "out of range" in r.stderr
    listing = sen("gateway", "keys", "list", "-c", str(p)).stdout.splitlines()
    assert [l.split("\t")[:2] for l in listing] == [["1", "active"], ["2", "active"], ["3", "active"]]
    assert fleet.keys[1].hex() not in "".join(listing)
    # a raw log recorded by a gateway, replayed through the CLI
    from sen.gateway.raw_log import RawLog
    log = RawLog(tmp_path / "recorded.log")
    log.append(list(fleet.frames(30)))
    log.close()
    r = sen("gateway", "replay", str(tmp_path / "recorded.log"), "-c", str(p))
    assert r.returncode == 0, r.stderr
    assert "replayed 30 frames" in r.stdout and "accepted 30" in r.stdout
    r = sen("gateway", "replay", str(tmp_path / "recorded.log"), "-c", str(p))
    assert "replayed 0 frames" in r.stdout  # its cursor is remembered: nothing doubled
    st = json.loads(sen("gateway", "status", "-c", str(p), "--json").stdout)
    assert st["frames"] == 30 and st["readings"] == 180 and [n["node"] for n in st["nodes"]] == [1, 2, 3]
    assert st["nodes"][0]["counter"] == 9 and st["nodes"][0]["reboots"] == 1 and st["nodes"][0]["battery"] > 3
    assert st["nodes"][0]["resent_samples"] == 0
    human = sen("gateway", "status", "-c", str(p))
    assert human.returncode == 0 and "RSSI" in human.stdout
    out = tmp_path / "export.csv"
    r = sen("gateway", "export", "-c", str(p), "-o", str(out), "--node", "2", "--channel", "pm25")
    assert r.returncode == 0, r.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "time,node,channel,value,flags" and len(lines) == 11
    t, node, ch, value, flags = lines[1].split(",")
    assert t.endswith("Z") and node == "2" and ch == "pm25" and float(value) >= 0 and flags == "0"
    r = sen("gateway", "export", "-c", str(p), "--channel", "pm2.5")
    assert r.returncode == 2 and "--channel pm2.5 is unknown" in r.stderr
    # revoke: frames from node 3 are now refused; rotate clears the counter state
    assert sen("gateway", "keys", "revoke", "3", "-c", str(p)).returncode == 0
    r = sen("gateway", "keys", "rotate", "2", "-c", str(p))
    assert r.returncode == 0 and "counter state cleared" in r.stdout
    from sen.gateway.store import connect
    con = connect(tmp_path / "data" / "gateway.db")
    assert con.execute("SELECT last FROM nodes WHERE node_id=2").fetchone() == (None,)
    assert con.execute("SELECT last FROM nodes WHERE node_id=1").fetchone() == (9,)
    r = sen("gateway", "recalibrate", "-c", str(p))
    assert r.returncode == 0 and "recalibrated 0 of 180 readings with identity: no value changed" in r.stdout
    r = sen("gateway", "replay", str(tmp_path / "nope.log"), "-c", str(p))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_uplink_mode_needs_a_broker(tmp_path):
    p = write(tmp_path, BASE.replace('id = "gw1"', 'id = "gw1"\nmode = "uplink"') + RADIO)
    r = sen("gateway", "run", "-c", str(p))
    assert r.returncode == 2 and "[uplink] is missing" in r.stderr and "host" in r.stderr
    p = write(tmp_path, BASE.replace('id = "gw1"', 'id = "gw1"\nmode = "uplink"') + RADIO
              + '[uplink]\nhost = "127.0.0.1"\nport = 18830\n')
    cfg = config.load(p)
    assert cfg.mode == "uplink" and cfg.uplink == {"host": "127.0.0.1", "port": 18830}


def test_node_config_queues_a_change(tmp_path):
    p = write(tmp_path, BASE + RADIO)
    r = sen("gateway", "node-config", "7", "--interval-s", "300", "--confirmed", "-c", str(p))
    assert r.returncode == 0, r.stderr
    from sen.gateway.store import Store
    s = Store(tmp_path / "data" / "gateway.db")
    assert s.pending_config(7) == {"interval_s": 300, "confirmed": True}
    s.close()
    r = sen("gateway", "node-config", "7", "--interval-s", "5", "-c", str(p))
    assert r.returncode == 2 and "interval_s must be an integer 60..86400" in r.stderr
