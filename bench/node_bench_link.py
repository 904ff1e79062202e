"""`sen bench node`'s link options: the node's SF and delivery mode, the bench world's loss
and distance, a gateway in the loop, and the SF sweep.

Without a gateway (the default, and the baseline figures) nothing in the bench world
listens, so loss and distance change nothing a node pays for: an unconfirmed node sends and
sleeps. With --confirmed (or --gateway) the real gateway service runs in the process on the
bench world's medium at the world's [[gateway]] site (host_tools/emulated_gateway.py, as the
city-day demo runs it): it stores and ACKs the frames, and applies whatever link settings
(ADR) it sends; the clock is held while it has frames to process, so its ACKs go out at the
same virtual instant whatever the host's speed.
"""
import math

from sen.errors import SenError

SFS = tuple(range(7, 13))
ADR_MARGIN_DB = 10.0   # LoRaWAN's customary ADR installation margin


def parse_options(sf=None, loss=None, distance_m=None):
    """Check the link options as text (the CLI's) -> (sf int|None, loss float|None,
    distance float|None). A bad value is one SenError line (exit code 2 from `sen`)."""
    out = []
    for name, text, conv, ok, hint in (
            ("--sf", sf, int, lambda v: v in SFS, "a spreading factor 7..12"),
            ("--loss", loss, float, lambda v: 0 <= v <= 100, "a loss percentage 0..100"),
            ("--distance-m", distance_m, float, lambda v: 1 <= v <= 50_000, "a distance in metres, 1..50000")):
        if text is None:
            out.append(None)
            continue
        try:
            v = conv(str(text).strip())
        except ValueError:
            raise SenError(f"{name} {text!r} is not a number", f"give {hint}") from None
        if isinstance(v, float) and not math.isfinite(v) or not ok(v):
            raise SenError(f"{name} {text!r} is out of range", f"give {hint}")
        out.append(v)
    return tuple(out)


def shape_world(world, station_id, loss=None, distance_m=None):
    """The bench world with the given loss (percent, every link) and the station moved along
    its bearing from the gateway to distance_m."""
    if loss is not None:
        world.radio["loss_percent"] = float(loss)
    if distance_m is not None:
        gx, gy = world.gateways[0]["xy"]
        st = world.station(station_id)
        dx, dy = st.xy[0] - gx, st.xy[1] - gy
        d = math.hypot(dx, dy) or 1.0
        st.xy = (gx + dx / d * distance_m, gy + dy / d * distance_m)
    return world


def node_config(sf=None, confirmed=False, batch=None):
    """node.json keys for the options (merged into build_flash's config)."""
    extra = {}
    if batch is not None:
        extra["batch"] = int(batch)
    if sf is not None:
        extra["radio"] = {"sf": int(sf)}
    if confirmed:
        extra["confirmed"] = True
    return extra


def gateway_in_loop(world, clock, workdir, node_id, key_hex, sf=None):
    """Start the real gateway service on the world's medium; returns (hold, stop). Its one
    radio listens at sf (the node's, so a node at SF7 is heard; default SF9)."""
    from sen.gateway.key_store import KeyStore  # lazy: only with a gateway in the loop
    from sen.host_tools import emulated_gateway  # lazy: only with a gateway in the loop
    gw_dir = workdir / "gateway"
    (gw_dir / "records").mkdir(parents=True, exist_ok=True)
    KeyStore(gw_dir / "keys.json", create=True).add(node_id, bytes.fromhex(key_hex))
    g = world.gateways[0]
    toml = gw_dir / "gateway.toml"
    toml.write_text("\n".join([
        "[gateway]", f'id = "{g["id"]}"', f'data_dir = "{gw_dir / "data"}"', "[keys]", f'file = "{gw_dir / "keys.json"}"',
        "[calibration]", f'records_dir = "{gw_dir / "records"}"', "[[radio]]", 'backend = "emulated"', 'name = "emu0"',
        f'frequency_hz = {int(round(world.radio["frequency_mhz"] * 1e6))}', f"sf = {int(sf or 9)}"]) + "\n")
    service, thread = emulated_gateway.start_gateway(toml, world, clock)
    service.started_evt.wait(30)

    def stop():
        emulated_gateway.stop_gateway(service, thread)
    return service.pending, stop


def adr_sf_at(world, station_id, distance_m, power_dbm=14.0, margin_db=ADR_MARGIN_DB, bw_hz=125_000):
    """The emulator's mean link from the station at distance_m to the gateway (no shadowing,
    no fading; the firmware's default 14 dBm) and the lowest SF whose demodulation floor
    (emulator/path_loss.py SNR_LIMIT_DB) plus margin_db it clears: what an ADR keeping
    margin_db of SNR margin would choose there. (snr_db, sf or None)."""
    budget = world.link_budget()
    gain = world.gateways[0].get("antenna_gain_dbi", 0.0) + world.station(station_id).antenna_gain_dbi
    rssi = budget.rssi_dbm(power_dbm, distance_m, world.radio["frequency_mhz"] * 1e6, gain, 0.0)
    snr = rssi - budget.noise_floor_dbm(bw_hz)
    sf = next((s for s in SFS if snr >= budget.snr_limit_db(s) + margin_db), None)
    return snr, sf
