"""gateway.toml: load and validate. Every mistake is one SenError naming the key and the fix.

The tables are declared as sen.config_schema models (pydantic, unknown keys refused); the
checks that need the file system or other tables (key file, records folder, uplink mode)
follow validation. See docs/gateway.example.toml for every key with its default.
"""
from dataclasses import dataclass, field
from pathlib import Path
from sen.config_schema import Style, check, read_toml
from sen.errors import SenError
from sen.gateway.config_tables import (BACKEND_OPTIONS, BACKENDS, FORWARDERS, LOG_LEVELS, MODES,  # noqa: F401
                                       RADIO_KEYS, GatewayFile, SemtechRadio)

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
    adr_enabled: bool = True  # [adr]: link adaptation (sen/adr.py)
    adr_margin_db: float = 5.0
    adr_hysteresis_db: float = 1.0
    adr_central: bool = True  # use the central ingest's advice when fresh and hearable (uplink mode)
    adr_central_max_age_s: float = 3600.0

    @property
    def store_path(self) -> Path:
        return self.data_dir / "gateway.db"

    @property
    def raw_log_path(self) -> Path:
        return self.data_dir / "raw.log"


def load(path) -> GatewayConfig:
    path = Path(path)
    raw = read_toml(path, "gateway.toml", "pass -c with the path of your gateway.toml",
                    " (see docs/gateway.example.toml)")
    return from_dict(raw, path)


def from_dict(raw: dict, path: Path) -> GatewayConfig:
    base = path.parent
    style = Style(path)
    doc = check(GatewayFile, raw, style)
    gw = doc.gateway
    key_file = base / doc.keys.file
    if not key_file.is_file():
        raise style.line(("keys", "file"), f"'{key_file}' does not exist",
                         "create it with `sen gateway keys add NODE -c gateway.toml` or correct the path")
    cfg = GatewayConfig(path=path, gateway_id=gw.id, data_dir=base / gw.data_dir, key_file=key_file, mode=gw.mode,
                        location=tuple(gw.location) if gw.location else None, batch_max=gw.batch_max,
                        fsync=gw.fsync)
    cfg.radios = _radios(raw.get("radio", []), style)
    for name, table in raw.get("forwarders", {}).items():
        if table.get("enabled", True) is not False:
            cfg.forwarders[name] = dict(table)
    cfg.raw_log_rotate_mb = float(doc.raw_log.rotate_mb)
    cfg.raw_log_rotate_daily = doc.raw_log.rotate_daily
    cfg.raw_log_retain_days = float(doc.raw_log.retain_days)
    cfg.max_pending = doc.outbox.max_pending
    if doc.calibration.records_dir is not None:
        cfg.calibration_dir = base / doc.calibration.records_dir
        if not cfg.calibration_dir.is_dir():
            raise style.line(("calibration", "records_dir"), f"'{cfg.calibration_dir}' is not a directory",
                             "point it at the calibration records, or remove the key for identity calibration")
    if "metrics" in raw:
        cfg.metrics = dict(raw["metrics"])
    if "status" in raw:
        cfg.status = raw["status"]
        from sen.gateway.status_page.settings import from_table  # the [status] model and its token file
        from_table(cfg.status, base)
    cfg.nodes = {int(key): dict(table) for key, table in raw.get("nodes", {}).items()}
    cfg.log_level = doc.log.level
    cfg.adr_enabled, cfg.adr_margin_db, cfg.adr_hysteresis_db = (doc.adr.enabled, float(doc.adr.margin_db),
                                                                 float(doc.adr.hysteresis_db))
    cfg.adr_central, cfg.adr_central_max_age_s = doc.adr.central, float(doc.adr.central_max_age_s)
    if gw.mode == "uplink":
        if doc.uplink is None:
            raise style.line(("[uplink]",), "is missing for gateway.mode = \"uplink\"",
                             "add [uplink] host = \"broker\" (and port, username, password, tls)")
        if doc.uplink.host is None:
            raise style.missing(("uplink", "host"))
        cfg.uplink = dict(raw["uplink"])
    return cfg


def _radios(radios, style: Style) -> list[RadioConfig]:
    if isinstance(radios, dict):
        radios = [radios]
    if not isinstance(radios, list) or not all(isinstance(r, dict) for r in radios):
        raise style.line(("radio",), "must be one or more [[radio]] tables", "write [[radio]] with backend = … below it")
    if not radios:
        raise style.line(("[[radio]]",), "is missing", "add at least one [[radio]] table with backend = \"sx127x\", "
                         "\"serial\", \"emulated\" or \"semtech_udp\"")
    names, out = set(), []
    for i, r in enumerate(radios):
        where = ("radio", i)
        # the backend first: it says which keys the rest of the table may have
        backend = r.get("backend")
        if backend is None:
            raise style.missing((*where, "backend"))
        if not isinstance(backend, str):
            raise style.wrong_type((*where, "backend"), "str", backend)
        if backend not in BACKEND_OPTIONS:
            raise style.line((*where, "backend"), f"'{backend}' is unknown", f"use one of: {', '.join(BACKENDS)}")
        t = check(BACKEND_OPTIONS[backend], r, style, where)
        name = t.name if t.name is not None else f"{backend}{i}"
        if name in names:
            raise style.line((*where, "name"), f"'{name}' is used twice", "give each [[radio]] its own name")
        names.add(name)
        rc = RadioConfig(backend, name, frequency_hz=t.frequency_hz, sf=t.sf, bw_hz=t.bw_hz, sync_word=t.sync_word,
                         watchdog_s=float(t.watchdog_s))
        rc.options = {k: v for k, v in r.items() if k not in RADIO_KEYS}
        if backend == "semtech_udp":
            _check_addresses(t, style, where)
        out.append(rc)
    return out


def _check_addresses(t: SemtechRadio, style: Style, where):
    from sen.gateway.radio.semtech_udp import parse_address
    w = style.where(where)
    try:
        parse_address(t.bind, f"{w}.bind")
        if t.lorawan_upstream is not None:
            parse_address(t.lorawan_upstream.address, f"{w}.lorawan_upstream.address")
    except SenError as exc:
        raise SenError(f"{style.file}: {exc.problem}", exc.fix) from None
