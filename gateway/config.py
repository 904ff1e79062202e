"""gateway.toml: load and validate. Every mistake is one SenError naming the key and the fix.

See docs/gateway.example.toml for every key with its default.
"""
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sen.errors import SenError

BACKENDS = ("sx127x", "serial", "emulated", "semtech_udp")
FORWARDERS = ("mqtt", "ngsi_ld", "sensorthings", "circular10")
MODES = ("local", "uplink")


@dataclass
class RadioConfig:
    backend: str
    name: str
    frequency_hz: int = 921_400_000
    sf: int = 9  # firmware/config.py RADIO_DEFAULTS: nodes send at SF9 by default
    bw_hz: int = 125_000
    sync_word: int = 0x12
    watchdog_s: float = 600.0
    options: dict = field(default_factory=dict)  # backend-specific keys (port, baud, board, medium...)


@dataclass
class GatewayConfig:
    path: Path
    gateway_id: str
    data_dir: Path
    key_file: Path
    mode: str = "local"
    location: tuple | None = None
    batch_max: int = 500
    fsync: bool = True
    radios: list[RadioConfig] = field(default_factory=list)
    forwarders: dict[str, dict] = field(default_factory=dict)
    max_pending: int = 5_000_000
    calibration_dir: Path | None = None
    metrics: dict | None = None
    status: dict | None = None
    nodes: dict[int, dict] = field(default_factory=dict)
    log_level: str = "INFO"
    uplink: dict | None = None  # [uplink]: broker for mode = "uplink" (city-scale ingest, sen.ingest)
    raw_log_rotate_mb: float = 64.0  # [raw_log]: seal the active segment at this size (0: no size limit)
    raw_log_rotate_daily: bool = True  # and at local midnight, so a segment holds one day
    raw_log_retain_days: float = 60.0  # delete sealed, fully processed segments older than this (0: keep all)

    @property
    def store_path(self) -> Path:
        return self.data_dir / "gateway.db"

    @property
    def raw_log_path(self) -> Path:
        return self.data_dir / "raw.log"


def _err(path, key, problem, fix):
    return SenError(f"{path}: {key} {problem}", fix)


def _get(table: dict, key: str, typ, default, path, where, required=False, choices=None):
    name = f"{where}.{key}" if where else key
    if key not in table:
        if required:
            raise _err(path, name, "is missing", f"add `{key} = …` under [{where}]")
        return default
    value = table[key]
    ok = isinstance(value, typ) and not (typ in (int, float, (int, float)) and isinstance(value, bool))
    if not ok:
        tname = typ.__name__ if isinstance(typ, type) else "number"
        raise _err(path, name, f"must be a {tname}, not {value!r}", f"fix `{key}` under [{where}]")
    if choices is not None and value not in choices:
        raise _err(path, name, f"'{value}' is unknown", f"use one of: {', '.join(choices)}")
    return value


def _check_keys(table: dict, allowed: set, path, where):
    for k in table:
        if k not in allowed:
            raise _err(path, f"[{where}] {k}", "is not a known key", f"remove it or use one of: {', '.join(sorted(allowed))}")


SEMTECH_KEYS = {"bind", "gateways", "lorawan_upstream", "offline_after_s", "ack_delay_ms", "lead_ms", "gather_ms",
                "tx_power_dbm", "duty_cycle"}


def _check_semtech(o: dict, path, where):
    """[[radio]] backend = "semtech_udp" (gateway/radio/semtech_udp.py)."""
    from sen.gateway.radio.semtech_udp import parse_address
    _check_keys(o, SEMTECH_KEYS, path, where)
    bind = _get(o, "bind", str, None, path, where, required=True)
    up = o.get("lorawan_upstream")
    if up is not None:
        if not isinstance(up, dict):
            raise _err(path, f"{where}.lorawan_upstream", "must be a table", "write [radio.lorawan_upstream]")
        _check_keys(up, {"address"}, path, f"{where}.lorawan_upstream")
        _get(up, "address", str, None, path, f"{where}.lorawan_upstream", required=True)
    try:
        parse_address(bind, f"{where}.bind")
        if up is not None:
            parse_address(up["address"], f"{where}.lorawan_upstream.address")
    except SenError as exc:
        raise SenError(f"{path}: {exc.problem}", exc.fix) from None
    gws = o.get("gateways")
    if gws is not None and (not isinstance(gws, list) or not all(
            isinstance(g, str) and len(g.replace("-", "").replace(":", "")) == 16 for g in gws)):
        raise _err(path, f"{where}.gateways", "must be a list of 16-hex-digit gateway EUIs",
                   'e.g. gateways = ["aa555a0000000000"], or remove it to accept any gateway')
    for key in ("offline_after_s", "ack_delay_ms", "lead_ms", "gather_ms", "duty_cycle"):
        v = _get(o, key, (int, float), 0, path, where)
        if v < 0:
            raise _err(path, f"{where}.{key}", f"{v} is negative", "use a positive number or remove the key")
    if not 0 < float(o.get("duty_cycle", 0.1)) <= 1:
        raise _err(path, f"{where}.duty_cycle", "must lie in (0, 1]", "Vietnam allows gateways 0.1 (10 %)")
    if float(o.get("ack_delay_ms", 100)) > 350:
        raise _err(path, f"{where}.ack_delay_ms", "is past the node's 400 ms window", "use 100 (the default)")


def load(path) -> GatewayConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SenError(f"config file {path} does not exist", "pass -c with the path of your gateway.toml") from None
    except OSError as exc:
        raise SenError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise SenError(f"{path} is not valid TOML ({exc})", "fix the syntax at the position shown") from None
    return from_dict(raw, path)


def from_dict(raw: dict, path: Path) -> GatewayConfig:
    base = path.parent
    _check_keys(raw, {"gateway", "keys", "radio", "forwarders", "outbox", "calibration", "metrics", "status",
                      "nodes", "log", "uplink", "raw_log"}, path, "top level")
    gw = raw.get("gateway", {})
    _check_keys(gw, {"id", "data_dir", "mode", "location", "batch_max", "fsync"}, path, "gateway")
    gateway_id = _get(gw, "id", str, None, path, "gateway", required=True)
    data_dir = base / _get(gw, "data_dir", str, "data", path, "gateway")
    mode = _get(gw, "mode", str, "local", path, "gateway", choices=MODES)
    location = gw.get("location")
    if location is not None and (not isinstance(location, list) or len(location) != 2):
        raise _err(path, "gateway.location", "must be [longitude, latitude]", "e.g. location = [108.22, 16.07]")
    keys = raw.get("keys", {})
    _check_keys(keys, {"file"}, path, "keys")
    key_file = base / _get(keys, "file", str, None, path, "keys", required=True)
    if not key_file.is_file():
        raise _err(path, "keys.file", f"'{key_file}' does not exist",
                   "create it with `sen gateway keys add NODE -c gateway.toml` or correct the path")
    cfg = GatewayConfig(path=path, gateway_id=gateway_id, data_dir=data_dir, key_file=key_file, mode=mode,
                        location=tuple(location) if location else None,
                        batch_max=_get(gw, "batch_max", int, 500, path, "gateway"),
                        fsync=_get(gw, "fsync", bool, True, path, "gateway"))
    radios = raw.get("radio", [])
    if isinstance(radios, dict):
        radios = [radios]
    if not radios:
        raise _err(path, "[[radio]]", "is missing", "add at least one [[radio]] table with backend = \"sx127x\", \"serial\", \"emulated\" or \"semtech_udp\"")
    names = set()
    for i, r in enumerate(radios):
        where = f"radio[{i}]"
        backend = _get(r, "backend", str, None, path, where, required=True, choices=BACKENDS)
        name = _get(r, "name", str, f"{backend}{i}", path, where)
        if name in names:
            raise _err(path, f"{where}.name", f"'{name}' is used twice", "give each [[radio]] its own name")
        names.add(name)
        rc = RadioConfig(backend, name,
                         frequency_hz=_get(r, "frequency_hz", int, 921_400_000, path, where),
                         sf=_get(r, "sf", int, 9, path, where),
                         bw_hz=_get(r, "bw_hz", int, 125_000, path, where),
                         sync_word=_get(r, "sync_word", int, 0x12, path, where),
                         watchdog_s=float(_get(r, "watchdog_s", (int, float), 600.0, path, where)))
        if not 920_000_000 <= rc.frequency_hz <= 923_000_000:
            raise _err(path, f"{where}.frequency_hz", f"{rc.frequency_hz} is outside Vietnam's 920–923 MHz band",
                       "use an AS923-2 channel, e.g. 921400000")
        if not 6 <= rc.sf <= 12:
            raise _err(path, f"{where}.sf", f"{rc.sf} is not a LoRa spreading factor", "use 7..12")
        if rc.bw_hz not in (125_000, 250_000, 500_000):
            raise _err(path, f"{where}.bw_hz", f"{rc.bw_hz} is not supported", "use 125000, 250000 or 500000")
        rc.options = {k: v for k, v in r.items() if k not in
                      {"backend", "name", "frequency_hz", "sf", "bw_hz", "sync_word", "watchdog_s"}}
        if backend == "serial" and "port" not in rc.options:
            raise _err(path, f"{where}.port", "is missing for the serial backend",
                       "set port = \"/dev/ttyACM0\" (or the receiver board's port)")
        if backend == "semtech_udp":
            _check_semtech(rc.options, path, where)
        cfg.radios.append(rc)
    fws = raw.get("forwarders", {})
    for name, table in fws.items():
        if name not in FORWARDERS:
            raise _err(path, f"[forwarders.{name}]", "is not a known forwarder", f"use one of: {', '.join(FORWARDERS)}")
        if table.get("enabled", True) is False:
            continue
        if name in ("ngsi_ld", "sensorthings"):
            url = _get(table, "url", str, None, path, f"forwarders.{name}", required=True)
            if not url.startswith(("http://", "https://")):
                raise _err(path, f"forwarders.{name}.url", f"'{url}' is not an http(s) URL", "e.g. url = \"http://broker:1026\"")
        if name == "sensorthings" and table.get("version", "v1.1") not in ("v1.0", "v1.1"):
            raise _err(path, "forwarders.sensorthings.version", f"{table['version']!r} is not a SensorThings version",
                       "use \"v1.1\" or \"v1.0\" (or end url with /v1.0 or /v1.1)")
        if name in ("mqtt", "circular10"):
            _get(table, "host", str, None, path, f"forwarders.{name}", required=True)
            _get(table, "port", int, 0, path, f"forwarders.{name}")
        cfg.forwarders[name] = dict(table)
    rl = raw.get("raw_log", {})
    _check_keys(rl, {"rotate_mb", "rotate_daily", "retain_days"}, path, "raw_log")
    cfg.raw_log_rotate_mb = float(_get(rl, "rotate_mb", (int, float), 64, path, "raw_log"))
    cfg.raw_log_rotate_daily = _get(rl, "rotate_daily", bool, True, path, "raw_log")
    cfg.raw_log_retain_days = float(_get(rl, "retain_days", (int, float), 60, path, "raw_log"))
    if cfg.raw_log_rotate_mb < 0 or 0 < cfg.raw_log_rotate_mb < 1:
        raise _err(path, "raw_log.rotate_mb", f"{cfg.raw_log_rotate_mb} is out of range",
                   "use 0 (no size limit) or at least 1 (MB); 64 is the default")
    if cfg.raw_log_retain_days < 0:
        raise _err(path, "raw_log.retain_days", f"{cfg.raw_log_retain_days} is negative",
                   "use a number of days (60 by default; Circular 10 dataloggers keep at least 60) or 0 to keep all")
    outbox = raw.get("outbox", {})
    cfg.max_pending = _get(outbox, "max_pending", int, 5_000_000, path, "outbox")
    cal = raw.get("calibration", {})
    if "records_dir" in cal:
        cfg.calibration_dir = base / _get(cal, "records_dir", str, None, path, "calibration")
        if not cfg.calibration_dir.is_dir():
            raise _err(path, "calibration.records_dir", f"'{cfg.calibration_dir}' is not a directory",
                       "point it at the calibration records, or remove the key for identity calibration")
    cfg.metrics = raw.get("metrics")
    cfg.status = raw.get("status")
    if cfg.status is not None:
        from sen.gateway.status_page.settings import from_table  # checks [status] key by key
        from_table(cfg.status, base)
    for key, table in raw.get("nodes", {}).items():
        try:
            node = int(key)
            assert 0 < node < 65536
        except (ValueError, AssertionError):
            raise _err(path, f"[nodes.{key}]", "is not a node id", "use [nodes.<1..65535>]") from None
        cfg.nodes[node] = dict(table)
    cfg.log_level = raw.get("log", {}).get("level", "INFO")
    up = raw.get("uplink")
    if mode == "uplink":
        if up is None:
            raise _err(path, "[uplink]", "is missing for gateway.mode = \"uplink\"",
                       "add [uplink] host = \"broker\" (and port, username, password, tls)")
        _check_keys(up, {"host", "port", "topic_prefix", "username", "password", "tls", "ca_file"}, path, "uplink")
        _get(up, "host", str, None, path, "uplink", required=True)
        _get(up, "port", int, 1883, path, "uplink")
        cfg.uplink = dict(up)
    return cfg
