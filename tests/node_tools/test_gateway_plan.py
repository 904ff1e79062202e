"""`sen node flash --gateway gateway.toml` gives the node the channel plan of the gateway it
is provisioned for: AS923-2 for a concentrator gateway, the radio's one frequency for a
single-channel one; a --set of radio.channels or radio.freq_hz wins."""
import pytest

from sen.gateway.key_store import KeyStore
from sen.host_tools.node_config import gateway_plan, with_gateway_plan
from sen.host_tools.provision import check_overrides

HEAD = '[gateway]\nid = "gw"\ndata_dir = "data"\n[keys]\nfile = "keys.json"\n'
UDP = '[[radio]]\nbackend = "semtech_udp"\nname = "udp"\nbind = "0.0.0.0:1700"\n'
HAT = '[[radio]]\nbackend = "sx127x"\nname = "hat"\nfrequency_hz = 922000000\n'
EMU = '[[radio]]\nbackend = "emulated"\nname = "emu0"\n'
SERIAL = '[[radio]]\nbackend = "serial"\nname = "rx"\nport = "/dev/ttyACM0"\nfrequency_hz = 921600000\n'


@pytest.fixture
def gateway(tmp_path):
    KeyStore(tmp_path / "keys.json", create=True)

    def write(radios):
        (tmp_path / "gateway.toml").write_text(HEAD + radios)
        return tmp_path / "gateway.toml"
    return write


@pytest.mark.parametrize("radios, plan", [
    (UDP, {"channels": "as923-2"}),
    (HAT, {"freq_hz": 922_000_000, "channels": [922_000_000]}),
    (EMU, {"freq_hz": 921_400_000, "channels": [921_400_000]}),
    (SERIAL, {"freq_hz": 921_600_000, "channels": [921_600_000]}),
    (UDP + HAT, {"freq_hz": 922_000_000, "channels": [922_000_000]}),  # the hat hears one frequency only
])
def test_the_plan_follows_the_gateways_radios(gateway, radios, plan):
    path = gateway(radios)
    assert gateway_plan(path) == plan
    cfg = check_overrides("air", with_gateway_plan({"interval_s": 600}, path))
    assert cfg["radio"] == plan and cfg["interval_s"] == 600


def test_the_operators_set_wins_and_no_gateway_changes_nothing(gateway):
    path = gateway(UDP)
    mine = {"radio": {"channels": [921_400_000, 921_600_000], "sf": 10}}
    assert with_gateway_plan(mine, path) == mine
    assert with_gateway_plan({"radio": {"freq_hz": 922_200_000}}, path) == {"radio": {"freq_hz": 922_200_000}}
    assert with_gateway_plan({"radio": {"sf": 8}}, path) == {"radio": {"sf": 8, "channels": "as923-2"}}
    assert with_gateway_plan({"confirmed": True}, None) == {"confirmed": True}
    # a re-flash keeps the node's config; the gateway's plan replaces its old plan
    kept = {"radio": {"channels": [921_400_000], "freq_hz": 921_400_000, "sf": 9}}
    assert check_overrides("air", with_gateway_plan({}, path), kept)["radio"]["channels"] == "as923-2"


def test_a_far_concentrator_gateway_lengthens_the_nodes_receive_window(gateway):
    # the gateway starts ACKs later (a server far out on the network): its nodes listen longer
    path = gateway(UDP + "node_rx_late_ms = 240\nlead_ms = 200\nack_delay_ms = 300\n")
    assert gateway_plan(path) == {"channels": "as923-2", "rx_late_ms": 240}
    cfg = check_overrides("water", with_gateway_plan({}, path))
    assert cfg["radio"]["rx_late_ms"] == 240
    # the technician's --set wins
    assert with_gateway_plan({"radio": {"rx_late_ms": 90}}, path) == {"radio": {"rx_late_ms": 90, "channels": "as923-2"}}


def test_a_single_channel_gateway_passes_its_nodes_window_too(gateway):
    # a serial receiver behind a slow host: its ACKs start later, so its nodes listen longer
    path = gateway(SERIAL + "node_rx_late_ms = 150\n")
    assert gateway_plan(path) == {"freq_hz": 921_600_000, "channels": [921_600_000], "rx_late_ms": 150}


def test_an_ack_delay_past_the_nodes_window_is_refused(gateway, tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    path = gateway(UDP + "ack_delay_ms = 300\n")
    sen = str(Path(sys.executable).with_name("sen"))
    res = subprocess.run([sen, "gateway", "status", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "ack_delay_ms" in lines[0] and "160 ms" in lines[0], res.stderr
