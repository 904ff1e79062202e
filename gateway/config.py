"""gateway.toml: load and validate. Every mistake is one SenError naming the key and the fix.

See docs/gateway.example.toml for every key with its default.
"""
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sen.errors import SenError

MODES = ("local", "uplink")
NUM = (int, float)
# Every table's known keys with their types: a key not listed is refused, a value of another
# type is refused, both with the key's path. A new radio backend adds its own keys here.
RADIO_KEYS = {"backend": str, "name": str, "frequency_hz": int, "sf": int, "bw_hz": int, "sync_word": int,
              "watchdog_s": NUM}
BACKEND_OPTIONS = {
    "sx127x": {"board": str, "low_band": bool, "tx_dbm": int},
    "serial": {"port": str, "baud": int},
    "emulated": {"position": list, "antenna_gain_dbi": NUM, "site": str},  # site: a scenario [[gateway]] id
    # gateway/radio/semtech_udp.py; its values are checked by _check_semtech
    "semtech_udp": {"bind": str, "gateways": list, "lorawan_upstream": dict, "offline_after_s": NUM,
                    "ack_delay_ms": NUM, "lead_ms": NUM, "gather_ms": NUM, "tx_power_dbm": NUM, "duty_cycle": NUM},
}
BACKENDS = tuple(BACKEND_OPTIONS)
FORWARDER_KEYS = {
    "mqtt": {"enabled": bool, "host": str, "port": int, "topic_prefix": str, "username": str, "password": str,
             "tls": bool},
    "ngsi_ld": {"enabled": bool, "url": str, "tenant": str},
    "sensorthings": {"enabled": bool, "url": str, "version": str, "sensor_metadata": str},
    "circular10": {"enabled": bool, "host": str, "port": int, "user": str, "password": str, "province": str,
                   "facility": str},
}
FORWARDERS = tuple(FORWARDER_KEYS)
NODE_KEYS = {"name": str, "station": str, "location": list, "kind": str, "interval_s": NUM}
TABLES = {"gateway": {"id": str, "data_dir": str, "mode": str, "location": list, "batch_max": int, "fsync": bool},
          "keys": {"file": str}, "outbox": {"max_pending": int}, "calibration": {"records_dir": str},
          "metrics": {"bind": str, "port": int}, "log": {"level": str},
          "raw_log": {"rotate_mb": NUM, "rotate_daily": bool, "retain_days": NUM},
          "uplink": {"host": str, "port": int, "topic_prefix": str, "username": str, "password": str, "tls": bool,
                     "ca_file": str}}
TOP = set(TABLES) | {"radio", "forwarders", "status", "nodes"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
        raise _err(path, name, f"must be a {tname}, not {_short(value)}", f"fix `{key}` under [{where}]")
    if choices is not None and value not in choices:
        raise _err(path, name, f"'{value}' is unknown", f"use one of: {', '.join(choices)}")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_keys(table: dict, allowed, path, where):
    for k in table:
        if k not in allowed:
            name = f"{where}.{k}" if where != "top level" else k
            raise _err(path, name, "is not a known key", f"remove it or use one of: {', '.join(sorted(allowed))}")


def _table(parent: dict, key: str, path, where: str, default=None):
    """parent[key] as a table (a scalar there is refused, naming the key)."""
    value = parent.get(key, {} if default is None else default)
    if not isinstance(value, dict):
        raise _err(path, where, f"must be a table, not {_short(value)}", f"write it as [{where}] with its keys below")
    return value


def _typed(table: dict, schema: dict, path, where: str):
    """Unknown keys and wrong types, for every key of a table."""
    _check_keys(table, schema, path, where)
    for k in table:
        _get(table, k, schema[k], None, path, where)


def _range(value, lo, hi, path, key, fix):
    if value is not None and not lo <= value <= hi:
        raise _err(path, key, f"{value!r} is out of range", fix)
    return value


def _port(table, key, path, where, default, lo=1):
    return _range(_get(table, key, int, default, path, where), lo, 65535, path, f"{where}.{key}",
                  f"use a TCP port {lo}..65535")


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
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SenError(f"config file {path} does not exist", "pass -c with the path of your gateway.toml") from None
    except OSError as exc:
        raise SenError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None
    except UnicodeDecodeError as exc:
        raise SenError(f"{path} is not a UTF-8 text file (byte {exc.start} is {exc.object[exc.start]:#04x})",
                       "give the gateway.toml text file (see docs/gateway.example.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SenError(f"{path} is not valid TOML ({' '.join(str(exc).split())})",
                       "fix the syntax at the position shown") from None
    return from_dict(raw, path)


def from_dict(raw: dict, path: Path) -> GatewayConfig:
    base = path.parent
    _check_keys(raw, TOP, path, "top level")
    for name, schema in TABLES.items():
        _typed(_table(raw, name, path, name), schema, path, name)
    gw = _table(raw, "gateway", path, "gateway")
    gateway_id = _get(gw, "id", str, None, path, "gateway", required=True)
    if not gateway_id.strip() or len(gateway_id) > 64:
        raise _err(path, "gateway.id", f"{gateway_id!r} is not a usable id", 'use 1-64 characters, e.g. "gw-danang-01"')
    data_dir = base / _get(gw, "data_dir", str, "data", path, "gateway")
    mode = _get(gw, "mode", str, "local", path, "gateway", choices=MODES)
    location = gw.get("location")
    if location is not None and (len(location) != 2 or not all(isinstance(v, NUM) and not isinstance(v, bool)
                                                                 for v in location)
                                 or not (-180 <= location[0] <= 180 and -90 <= location[1] <= 90)):
        raise _err(path, "gateway.location", "must be [longitude, latitude]", "e.g. location = [108.22, 16.07]")
    keys = _table(raw, "keys", path, "keys")
    key_file = base / _get(keys, "file", str, None, path, "keys", required=True)
    if not key_file.is_file():
        raise _err(path, "keys.file", f"'{key_file}' does not exist",
                   "create it with `sen gateway keys add NODE -c gateway.toml` or correct the path")
    cfg = GatewayConfig(path=path, gateway_id=gateway_id, data_dir=data_dir, key_file=key_file, mode=mode,
                        location=tuple(location) if location else None,
                        batch_max=_range(_get(gw, "batch_max", int, 500, path, "gateway"), 1, 100_000, path,
                                         "gateway.batch_max", "use 1..100000 frames per store transaction (500)"),
                        fsync=_get(gw, "fsync", bool, True, path, "gateway"))
    cfg.radios = _radios(raw, path)
    fws = _table(raw, "forwarders", path, "forwarders")
    for name in fws:
        if name not in FORWARDERS:
            raise _err(path, f"[forwarders.{name}]", "is not a known forwarder", f"use one of: {', '.join(FORWARDERS)}")
        table = _table(fws, name, path, f"forwarders.{name}")
        _typed(table, FORWARDER_KEYS[name], path, f"forwarders.{name}")
        if table.get("enabled", True) is False:
            continue
        if name in ("ngsi_ld", "sensorthings"):
            url = _get(table, "url", str, None, path, f"forwarders.{name}", required=True)
            if not url.startswith(("http://", "https://")):
                raise _err(path, f"forwarders.{name}.url", f"'{url}' is not an http(s) URL", "e.g. url = \"http://broker:1026\"")
        if name == "sensorthings" and table.get("version", "v1.1") not in ("v1.0", "v1.1"):
            raise _err(path, "forwarders.sensorthings.version", f"{table['version']!r} is not a SensorThings version",
                       "use \"v1.1\" or \"v1.0\" (or end url with /v1.0 or /v1.1)")
        if name == "sensorthings" and table.get("version", "v1.1") not in ("v1.0", "v1.1"):
            raise _err(path, "forwarders.sensorthings.version", f"{table['version']!r} is not a SensorThings version",
                       "use \"v1.1\" or \"v1.0\" (or end url with /v1.0 or /v1.1)")
        if name in ("mqtt", "circular10"):
            _get(table, "host", str, None, path, f"forwarders.{name}", required=True)
            _port(table, "port", path, f"forwarders.{name}", None)
        cfg.forwarders[name] = dict(table)
    rl = raw.get("raw_log", {})
    cfg.raw_log_rotate_mb = float(_get(rl, "rotate_mb", NUM, 64, path, "raw_log"))
    cfg.raw_log_rotate_daily = _get(rl, "rotate_daily", bool, True, path, "raw_log")
    cfg.raw_log_retain_days = float(_get(rl, "retain_days", NUM, 60, path, "raw_log"))
    if not 0 <= cfg.raw_log_rotate_mb <= 1 << 20 or 0 < cfg.raw_log_rotate_mb < 1:
        raise _err(path, "raw_log.rotate_mb", f"{cfg.raw_log_rotate_mb} is out of range",
                   "use 0 (no size limit) or at least 1 (MB); 64 is the default")
    if not 0 <= cfg.raw_log_retain_days <= 36500:
        raise _err(path, "raw_log.retain_days", f"{cfg.raw_log_retain_days} is out of range",
                   "use a number of days (60 by default; Circular 10 dataloggers keep at least 60) or 0 to keep all")
    cfg.max_pending = _range(_get(raw.get("outbox", {}), "max_pending", int, 5_000_000, path, "outbox"), 1, 10 ** 12,
                             path, "outbox.max_pending", "use a positive number of readings (5000000)")
    cal = raw.get("calibration", {})
    if "records_dir" in cal:
        cfg.calibration_dir = base / cal["records_dir"]
        if not cfg.calibration_dir.is_dir():
            raise _err(path, "calibration.records_dir", f"'{cfg.calibration_dir}' is not a directory",
                       "point it at the calibration records, or remove the key for identity calibration")
    if "metrics" in raw:
        cfg.metrics = dict(raw["metrics"])
        _port(cfg.metrics, "port", path, "metrics", None, lo=0)
    if "status" in raw:
        cfg.status = _table(raw, "status", path, "status")
        from sen.gateway.status_page.settings import from_table  # checks [status] key by key
        from_table(cfg.status, base)
    for key, table in _table(raw, "nodes", path, "nodes").items():
        try:
            node = int(key)
            assert 0 < node < 65536
        except (ValueError, AssertionError):
            raise _err(path, f"[nodes.{key}]", "is not a node id", "use [nodes.<1..65535>]") from None
        table = _table(raw["nodes"], key, path, f"nodes.{key}")
        _typed(table, NODE_KEYS, path, f"nodes.{key}")
        cfg.nodes[node] = dict(table)
    cfg.log_level = _get(raw.get("log", {}), "level", str, "INFO", path, "log", choices=LOG_LEVELS)
    up = raw.get("uplink")
    if mode == "uplink":
        if up is None:
            raise _err(path, "[uplink]", "is missing for gateway.mode = \"uplink\"",
                       "add [uplink] host = \"broker\" (and port, username, password, tls)")
        _get(up, "host", str, None, path, "uplink", required=True)
        _port(up, "port", path, "uplink", 1883)
        cfg.uplink = dict(up)
    return cfg


def _radios(raw: dict, path) -> list[RadioConfig]:
    radios = raw.get("radio", [])
    if isinstance(radios, dict):
        radios = [radios]
    if not isinstance(radios, list) or not all(isinstance(r, dict) for r in radios):
        raise _err(path, "radio", "must be one or more [[radio]] tables", "write [[radio]] with backend = … below it")
    if not radios:
        raise _err(path, "[[radio]]", "is missing", "add at least one [[radio]] table with backend = \"sx127x\", \"serial\", \"emulated\" or \"semtech_udp\"")
    names, out = set(), []
    for i, r in enumerate(radios):
        where = f"radio[{i}]"
        backend = _get(r, "backend", str, None, path, where, required=True, choices=BACKENDS)
        schema = {**RADIO_KEYS, **BACKEND_OPTIONS[backend]}
        _typed(r, schema, path, where)
        name = _get(r, "name", str, f"{backend}{i}", path, where)
        if name in names:
            raise _err(path, f"{where}.name", f"'{name}' is used twice", "give each [[radio]] its own name")
        names.add(name)
        rc = RadioConfig(backend, name,
                         frequency_hz=_get(r, "frequency_hz", int, 921_400_000, path, where),
                         sf=_get(r, "sf", int, 9, path, where),
                         bw_hz=_get(r, "bw_hz", int, 125_000, path, where),
                         sync_word=_range(_get(r, "sync_word", int, 0x12, path, where), 0, 255, path,
                                          f"{where}.sync_word", "use a byte, e.g. 0x12 (private LoRa networks)"),
                         watchdog_s=float(_get(r, "watchdog_s", NUM, 600.0, path, where)))
        if not 920_000_000 <= rc.frequency_hz <= 923_000_000:
            raise _err(path, f"{where}.frequency_hz", f"{rc.frequency_hz} is outside Vietnam's 920–923 MHz band",
                       "use an AS923-2 channel, e.g. 921400000")
        if not 6 <= rc.sf <= 12:
            raise _err(path, f"{where}.sf", f"{rc.sf} is not a LoRa spreading factor", "use 7..12")
        if rc.bw_hz not in (125_000, 250_000, 500_000):
            raise _err(path, f"{where}.bw_hz", f"{rc.bw_hz} is not supported", "use 125000, 250000 or 500000")
        if rc.watchdog_s != 0 and not 10 <= rc.watchdog_s <= 86400:
            raise _err(path, f"{where}.watchdog_s", f"{rc.watchdog_s:g} is out of range",
                       "use 0 (no watchdog) or 10..86400 seconds of silence before re-initialising (600)")
        rc.options = {k: v for k, v in r.items() if k not in RADIO_KEYS}
        if backend == "semtech_udp":
            _check_semtech(rc.options, path, where)
        if backend == "serial":
            if "port" not in rc.options:
                raise _err(path, f"{where}.port", "is missing for the serial backend",
                           "set port = \"/dev/ttyACM0\" (or the receiver board's port)")
            _range(rc.options.get("baud"), 300, 4_000_000, path, f"{where}.baud", "use the board's baud rate, e.g. 115200")
        if backend == "sx127x":
            _range(rc.options.get("tx_dbm"), 2, 20, path, f"{where}.tx_dbm", "use 2..20 dBm (14 by default)")
        out.append(rc)
    return out
