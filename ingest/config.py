"""ingest.toml: load and validate. Every mistake is one SenError naming the key and the fix.

    [ingest]
    worker_id = "ingest-1"      # required: MQTT client id, the same across restarts so the
                                # broker keeps this worker's session (records in flight)
    window_ms = 200             # dedupe window: copies from other gateways merge in memory
    batch_max = 1000            # records per store transaction
    defer_s = 3600              # park a 16-bit-counter frame of a node no worker knows yet this
                                # long (in PostgreSQL) before counting it counter_unknown

    [broker]
    host = "mqtt.city.example"  # required
    port = 8883
    tls = true                  # ca_file = "/etc/sen/ca.pem" (system CAs when absent)
    username = "ingest"         # password = "…" or password_file = "/etc/sen/ingest.pass"
    group = "sen-ingest"        # shared-subscription group: workers in one group split the load
    topic_prefix = "sen"
    session_expiry_s = 86400
    receive_maximum = 2000      # unacknowledged records the broker may have in flight to us

    [postgres]
    dsn = "host=db.city.example dbname=sen user=sen_ingest"   # required; password_file optional

    [keys]
    file = "keys.json"          # the same key file format as the gateway's

    [calibration]
    records_dir = "calibration" # optional; identity + unit scaling without it

    [adr]                       # optional: each node's ADR choice from every gateway's copies,
    publish = true              # published retained on <topic_prefix>/adr/<node> for the gateways
    interval_s = 60             # how often the worker holding the ADR lock recomputes it
    refresh_s = 600             # an unchanged choice is re-published this often (keep it below
                                # the gateways' [adr] central_max_age_s, 3600)
    margin_db = 5.0             # as gateway.toml [adr]
    hysteresis_db = 1.0

    [forwarders.mqtt]           # optional; the same tables as gateway.toml
    [nodes.417]                 # optional; the same as gateway.toml (names, stations, locations)
"""
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from sen.adr import AdrParams
from sen.config_schema import Number, Style, Table, check, key_path, read_toml, within
from sen.errors import SenError
from sen.gateway.config_tables import (FORWARDERS, AdrParamsTable, CalibrationTable, Forwarders,  # noqa: F401
                                       KeysTable, NodeTable, OutboxTable, check_node_ids)
from sen.gateway import uplink_wire as wire


def _table():
    return Field(default_factory=dict, validate_default=True)


class IngestTable(Table):
    worker_id: str
    window_ms: within(0, 10_000, "ChirpStack uses 200 ms", name_range=True) = 200
    batch_max: within(1, 20_000, "use e.g. 1000", name_range=True) = 1000
    defer_s: Number = 3600.0


class BrokerTable(Table):
    host: str
    port: int | None = None  # 8883 with TLS, else 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    group: str = "sen-ingest"
    topic_prefix: str = "sen"
    session_expiry_s: int = 86400
    receive_maximum: int = 2000


class PostgresTable(Table):
    dsn: str
    password_file: str | None = None


class IngestAdrTable(AdrParamsTable):
    publish: bool = True
    interval_s: within(1, 3600, "use e.g. 60", typ=float) = 60.0
    refresh_s: within(10, 86400, "use e.g. 600, below the gateways' [adr] central_max_age_s", typ=float) = 600.0


class LogTable(Table):
    level: str = "INFO"  # any case: the worker upper-cases it


class IngestFile(Table):
    ingest: IngestTable = _table()
    broker: BrokerTable | None = None
    postgres: PostgresTable | None = None
    keys: KeysTable = _table()
    calibration: CalibrationTable = _table()
    forwarders: Forwarders = _table()
    outbox: OutboxTable = _table()
    nodes: dict[str, NodeTable] = {}
    log: LogTable = _table()
    adr: IngestAdrTable = _table()

    _ids = check_node_ids


class IngestStyle(Style):
    """ingest.toml names an unknown key after its table: `[broker] prot is not a known key`."""

    def unknown(self, loc, key, known, near):
        where = f"[{key_path(loc) or 'top level'}] {key}"
        return SenError(f"{self.file}: {where} is not a known key", f"remove it or use one of: {', '.join(sorted(known))}")


@dataclass
class BrokerConfig:
    host: str
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    group: str = "sen-ingest"
    topic_prefix: str = "sen"
    session_expiry_s: int = 86400
    receive_maximum: int = 2000


@dataclass
class IngestConfig:
    path: Path
    worker_id: str
    broker: BrokerConfig
    dsn: str
    key_file: Path
    window_ms: int = 200
    batch_max: int = 1000
    defer_s: float = 3600.0
    calibration_dir: Path | None = None
    forwarders: dict[str, dict] = field(default_factory=dict)
    nodes: dict[int, dict] = field(default_factory=dict)
    max_pending: int = 5_000_000
    log_level: str = "INFO"
    adr_publish: bool = True  # [adr]: central advice for the gateways (sen/adr_advice.py)
    adr_interval_s: float = 60.0
    adr_refresh_s: float = 600.0
    adr_margin_db: float = 5.0
    adr_hysteresis_db: float = 1.0

    @property
    def adr_params(self) -> AdrParams:
        """Every SF counts as hearable: a city network's concentrators hear SF7-12, and each
        gateway checks the advice against its own radios before using it."""
        return AdrParams(self.adr_margin_db, self.adr_hysteresis_db)

    # the attributes sen.gateway.service.build_forwarders reads
    @property
    def gateway_id(self) -> str:
        return self.worker_id

    location = None


def _secret(t, style: Style, where: str, base: Path) -> str | None:
    if t.password_file is not None and getattr(t, "password", None) is not None:
        raise style.line((where, "password_file"), "is set together with password", "keep one of the two")
    if t.password_file is not None:
        p = base / t.password_file
        try:
            return p.read_text().strip()
        except OSError as exc:
            raise style.line((where, "password_file"), f"'{p}' cannot be read ({exc.strerror})",
                             "create it (mode 600) or correct the path") from None
    return getattr(t, "password", None)


def load(path) -> IngestConfig:
    path = Path(path)
    return from_dict(read_toml(path, "ingest.toml", "pass -c with the path of your ingest.toml"), path)


def from_dict(raw: dict, path: Path) -> IngestConfig:
    base = path.parent
    style = IngestStyle(path)
    doc = check(IngestFile, raw, style)
    ing = doc.ingest
    try:
        wire.check_gateway_id(ing.worker_id)
    except ValueError:
        raise style.line(("ingest", "worker_id"), f"{ing.worker_id!r} cannot be an MQTT client id here",
                         "use letters, digits, - and _ (e.g. \"ingest-1\")") from None
    b = doc.broker
    if b is None:
        raise style.line(("[broker]",), "is missing", "add [broker] with host = \"<your MQTT broker>\"")
    broker = BrokerConfig(host=b.host, port=b.port if b.port is not None else (8883 if b.tls else 1883), tls=b.tls,
                          ca_file=None, username=b.username, password=_secret(b, style, "broker", base),
                          group=b.group, topic_prefix=b.topic_prefix, session_expiry_s=b.session_expiry_s,
                          receive_maximum=b.receive_maximum)
    if not 0 < broker.port < 65536:
        raise style.line(("broker", "port"), f"{broker.port} is not a TCP port", "use 8883 for TLS or 1883")
    if b.ca_file is not None:
        ca = base / b.ca_file
        if not ca.is_file():
            raise style.line(("broker", "ca_file"), f"'{ca}' does not exist", "point it at the CA certificate of the broker")
        broker.ca_file = str(ca)
    if broker.password and not broker.username:
        raise style.line(("broker", "password"), "is set without username", "add username = \"…\" under [broker]")
    if broker.password and not broker.tls and broker.host not in ("127.0.0.1", "localhost", "::1"):
        raise style.line(("broker", "tls"), "is off while a password goes to a remote broker",
                         "set tls = true (port 8883) so the password is not sent in clear")
    for k, v in (("group", broker.group), ("topic_prefix", broker.topic_prefix)):
        if not v or any(c in v for c in "/+#"):
            raise style.line(("broker", k), f"{v!r} cannot be an MQTT topic level", "use letters, digits, - and _")
    if not 1 <= broker.receive_maximum <= 65535:
        raise style.line(("broker", "receive_maximum"), f"{broker.receive_maximum} is outside 1..65535", "use e.g. 2000")

    if doc.postgres is None:
        raise style.line(("[postgres]",), "is missing", "add [postgres] with dsn = \"host=… dbname=sen user=…\"")
    dsn = doc.postgres.dsn
    pw = _secret(doc.postgres, style, "postgres", base)
    if pw:
        dsn = f"{dsn} password={pw}"

    key_file = base / doc.keys.file
    if not key_file.is_file():
        raise style.line(("keys", "file"), f"'{key_file}' does not exist",
                         "copy the node key file from provisioning, or correct the path")

    cfg = IngestConfig(path=path, worker_id=ing.worker_id, broker=broker, dsn=dsn, key_file=key_file,
                       window_ms=ing.window_ms, batch_max=ing.batch_max, defer_s=float(ing.defer_s))
    if doc.calibration.records_dir is not None:
        cfg.calibration_dir = base / doc.calibration.records_dir
        if not cfg.calibration_dir.is_dir():
            raise style.line(("calibration", "records_dir"), f"'{cfg.calibration_dir}' is not a directory",
                             "point it at the calibration records, or remove the key for identity calibration")
    for name, table in raw.get("forwarders", {}).items():
        if table.get("enabled", True) is not False:
            cfg.forwarders[name] = dict(table)
    cfg.max_pending = doc.outbox.max_pending
    cfg.nodes = {int(key): dict(table) for key, table in raw.get("nodes", {}).items()}
    cfg.log_level = doc.log.level.upper()
    a = doc.adr
    cfg.adr_publish, cfg.adr_interval_s, cfg.adr_refresh_s = a.publish, float(a.interval_s), float(a.refresh_s)
    cfg.adr_margin_db, cfg.adr_hysteresis_db = float(a.margin_db), float(a.hysteresis_db)
    return cfg
