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

    [forwarders.mqtt]           # optional; the same tables as gateway.toml
    [nodes.417]                 # optional; the same as gateway.toml (names, stations, locations)
"""
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sen.errors import SenError
from sen.gateway.config import FORWARDERS
from sen.gateway import uplink_wire as wire


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

    # the attributes sen.gateway.service.build_forwarders reads
    @property
    def gateway_id(self) -> str:
        return self.worker_id

    location = None


def _err(path, key, problem, fix):
    return SenError(f"{path}: {key} {problem}", fix)


def _get(table, key, typ, default, path, where, required=False):
    name = f"{where}.{key}"
    if key not in table:
        if required:
            raise _err(path, name, "is missing", f"add `{key} = …` under [{where}]")
        return default
    v = table[key]
    if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
        tname = typ.__name__ if isinstance(typ, type) else "number"
        raise _err(path, name, f"must be a {tname}, not {v!r}", f"fix `{key}` under [{where}]")
    return v


def _only(table, allowed, path, where):
    if not isinstance(table, dict):
        raise _err(path, f"[{where}]", "must be a table", f"write it as [{where}] with keys under it")
    for k in table:
        if k not in allowed:
            raise _err(path, f"[{where}] {k}", "is not a known key", f"remove it or use one of: {', '.join(sorted(allowed))}")


def _secret(table, path, where, base) -> str | None:
    if "password" in table and "password_file" in table:
        raise _err(path, f"{where}.password_file", "is set together with password", "keep one of the two")
    if "password_file" in table:
        p = base / _get(table, "password_file", str, None, path, where)
        try:
            return p.read_text().strip()
        except OSError as exc:
            raise _err(path, f"{where}.password_file", f"'{p}' cannot be read ({exc.strerror})",
                       "create it (mode 600) or correct the path") from None
    return _get(table, "password", str, None, path, where)


def load(path) -> IngestConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SenError(f"config file {path} does not exist", "pass -c with the path of your ingest.toml") from None
    except OSError as exc:
        raise SenError(f"cannot read {path}: {exc.strerror}", "check the file's permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise SenError(f"{path} is not valid TOML ({exc})", "fix the syntax at the position shown") from None
    return from_dict(raw, path)


def from_dict(raw: dict, path: Path) -> IngestConfig:
    base = path.parent
    _only(raw, {"ingest", "broker", "postgres", "keys", "calibration", "forwarders", "outbox", "nodes", "log"},
          path, "top level")
    ing = raw.get("ingest", {})
    _only(ing, {"worker_id", "window_ms", "batch_max", "defer_s"}, path, "ingest")
    worker_id = _get(ing, "worker_id", str, None, path, "ingest", required=True)
    try:
        wire.check_gateway_id(worker_id)
    except ValueError:
        raise _err(path, "ingest.worker_id", f"{worker_id!r} cannot be an MQTT client id here",
                   "use letters, digits, - and _ (e.g. \"ingest-1\")") from None
    window_ms = _get(ing, "window_ms", int, 200, path, "ingest")
    if not 0 <= window_ms <= 10_000:
        raise _err(path, "ingest.window_ms", f"{window_ms} is outside 0..10000", "ChirpStack uses 200 ms")
    batch_max = _get(ing, "batch_max", int, 1000, path, "ingest")
    if not 1 <= batch_max <= 20_000:
        raise _err(path, "ingest.batch_max", f"{batch_max} is outside 1..20000", "use e.g. 1000")
    defer_s = float(_get(ing, "defer_s", (int, float), 3600.0, path, "ingest"))

    b = raw.get("broker")
    if b is None:
        raise _err(path, "[broker]", "is missing", "add [broker] with host = \"<your MQTT broker>\"")
    _only(b, {"host", "port", "tls", "ca_file", "username", "password", "password_file", "group", "topic_prefix",
              "session_expiry_s", "receive_maximum"}, path, "broker")
    tls = _get(b, "tls", bool, False, path, "broker")
    broker = BrokerConfig(
        host=_get(b, "host", str, None, path, "broker", required=True),
        port=_get(b, "port", int, 8883 if tls else 1883, path, "broker"),
        tls=tls, ca_file=None, username=_get(b, "username", str, None, path, "broker"),
        password=_secret(b, path, "broker", base),
        group=_get(b, "group", str, "sen-ingest", path, "broker"),
        topic_prefix=_get(b, "topic_prefix", str, "sen", path, "broker"),
        session_expiry_s=_get(b, "session_expiry_s", int, 86400, path, "broker"),
        receive_maximum=_get(b, "receive_maximum", int, 2000, path, "broker"))
    if not 0 < broker.port < 65536:
        raise _err(path, "broker.port", f"{broker.port} is not a TCP port", "use 8883 for TLS or 1883")
    if "ca_file" in b:
        ca = base / _get(b, "ca_file", str, None, path, "broker")
        if not ca.is_file():
            raise _err(path, "broker.ca_file", f"'{ca}' does not exist", "point it at the CA certificate of the broker")
        broker.ca_file = str(ca)
    if broker.password and not broker.username:
        raise _err(path, "broker.password", "is set without username", "add username = \"…\" under [broker]")
    if broker.password and not broker.tls and broker.host not in ("127.0.0.1", "localhost", "::1"):
        raise _err(path, "broker.tls", "is off while a password goes to a remote broker",
                   "set tls = true (port 8883) so the password is not sent in clear")
    for k, v in (("group", broker.group), ("topic_prefix", broker.topic_prefix)):
        if not v or any(c in v for c in "/+#"):
            raise _err(path, f"broker.{k}", f"{v!r} cannot be an MQTT topic level", "use letters, digits, - and _")
    if not 1 <= broker.receive_maximum <= 65535:
        raise _err(path, "broker.receive_maximum", f"{broker.receive_maximum} is outside 1..65535", "use e.g. 2000")

    pg = raw.get("postgres")
    if pg is None:
        raise _err(path, "[postgres]", "is missing", "add [postgres] with dsn = \"host=… dbname=sen user=…\"")
    _only(pg, {"dsn", "password_file"}, path, "postgres")
    dsn = _get(pg, "dsn", str, None, path, "postgres", required=True)
    pw = _secret(pg, path, "postgres", base)
    if pw:
        dsn = f"{dsn} password={pw}"

    keys = raw.get("keys", {})
    _only(keys, {"file"}, path, "keys")
    key_file = base / _get(keys, "file", str, None, path, "keys", required=True)
    if not key_file.is_file():
        raise _err(path, "keys.file", f"'{key_file}' does not exist",
                   "copy the node key file from provisioning, or correct the path")

    cfg = IngestConfig(path=path, worker_id=worker_id, broker=broker, dsn=dsn, key_file=key_file,
                       window_ms=window_ms, batch_max=batch_max, defer_s=defer_s)
    cal = raw.get("calibration", {})
    _only(cal, {"records_dir"}, path, "calibration")
    if "records_dir" in cal:
        cfg.calibration_dir = base / _get(cal, "records_dir", str, None, path, "calibration")
        if not cfg.calibration_dir.is_dir():
            raise _err(path, "calibration.records_dir", f"'{cfg.calibration_dir}' is not a directory",
                       "point it at the calibration records, or remove the key for identity calibration")
    for name, table in raw.get("forwarders", {}).items():
        if name not in FORWARDERS:
            raise _err(path, f"[forwarders.{name}]", "is not a known forwarder", f"use one of: {', '.join(FORWARDERS)}")
        if table.get("enabled", True) is False:
            continue
        if name in ("ngsi_ld", "sensorthings"):
            url = _get(table, "url", str, None, path, f"forwarders.{name}", required=True)
            if not url.startswith(("http://", "https://")):
                raise _err(path, f"forwarders.{name}.url", f"'{url}' is not an http(s) URL", "e.g. url = \"http://orion:1026\"")
        if name in ("mqtt", "circular10"):
            _get(table, "host", str, None, path, f"forwarders.{name}", required=True)
            _get(table, "port", int, 0, path, f"forwarders.{name}")
        cfg.forwarders[name] = dict(table)
    cfg.max_pending = _get(raw.get("outbox", {}), "max_pending", int, 5_000_000, path, "outbox")
    for key, table in raw.get("nodes", {}).items():
        try:
            node = int(key)
            assert 0 < node < 65536
        except (ValueError, AssertionError):
            raise _err(path, f"[nodes.{key}]", "is not a node id", "use [nodes.<1..65535>]") from None
        cfg.nodes[node] = dict(table)
    cfg.log_level = str(raw.get("log", {}).get("level", "INFO")).upper()
    return cfg
