"""The `[status]` table of gateway.toml (the status page), checked key by key.

    [status]
    enabled = true
    bind = "127.0.0.1"        # loopback unless the operator opens it on purpose
    port = 8080               # 0 picks a free port (tests)
    token_file = "operator.token"   # or token = "..." ; without either, actions are off
    timezone = "Asia/Ho_Chi_Minh"
    low_battery_v = 3.4
    silent_intervals = 2      # a node is "silent" after this many missed intervals
    water_class = "B"         # QCVN 08:2023 class the water page judges against

Node names, kinds and intervals come from the gateway's `[nodes.<id>]` tables
(name, kind, interval_s, location, station), passed in as `nodes`.
"""
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sen.errors import SenError

KNOWN = {"enabled", "bind", "port", "token", "token_file", "timezone", "low_battery_v", "silent_intervals",
         "water_class", "allowed_hosts"}
KINDS = ("air", "water", "rain", "receiver", "other")


@dataclass
class StatusPageSettings:
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    timezone: str = "Asia/Ho_Chi_Minh"
    low_battery_v: float = 3.4
    silent_intervals: float = 2.0
    water_class: str = "B"
    allowed_hosts: list[str] = field(default_factory=list)

    @property
    def actions_enabled(self) -> bool:
        return bool(self.token)

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.bind).is_loopback
        except ValueError:
            return self.bind == "localhost"


def _err(key, problem, fix):
    return SenError(f"gateway.toml [status] {key}: {problem}", fix)


def from_table(table: dict | None, base_dir: Path | str = ".") -> StatusPageSettings:
    """Build settings from the parsed `[status]` table; paths are relative to base_dir."""
    table = dict(table or {})
    unknown = sorted(set(table) - KNOWN)
    if unknown:
        raise _err(unknown[0], "unknown key", f"use one of {', '.join(sorted(KNOWN))}")
    s = StatusPageSettings()
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            raise _err("enabled", "must be true or false", "write enabled = true")
        s.enabled = table["enabled"]
    if "bind" in table:
        bind = table["bind"]
        if not isinstance(bind, str) or not bind:
            raise _err("bind", "must be an address string", 'write bind = "127.0.0.1"')
        if bind != "localhost":
            try:
                ipaddress.ip_address(bind)
            except ValueError:
                raise _err("bind", f"{bind!r} is not an IP address", 'use "127.0.0.1", "0.0.0.0" or an interface address') from None
        s.bind = bind
    if "port" in table:
        port = table["port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise _err("port", f"{port!r} is not a port number", "use 1-65535 (or 0 for any free port)")
        s.port = port
    if "token" in table and "token_file" in table:
        raise _err("token", "both token and token_file are set", "keep one of them")
    if "token" in table:
        s.token = _check_token(table["token"], "token")
    if "token_file" in table:
        p = Path(base_dir) / str(table["token_file"])
        try:
            text = p.read_text().strip()
        except OSError as exc:
            raise _err("token_file", f"cannot read {p} ({exc.strerror})",
                       f"create it: python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {p}") from None
        s.token = _check_token(text, "token_file")
    if "timezone" in table:
        try:
            ZoneInfo(str(table["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise _err("timezone", f"{table['timezone']!r} is not a known time zone", 'use e.g. "Asia/Ho_Chi_Minh"') from None
        s.timezone = str(table["timezone"])
    for key, lo, hi in (("low_battery_v", 0.0, 6.0), ("silent_intervals", 1.0, 100.0)):
        if key in table:
            v = table[key]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise _err(key, f"{v!r} is out of range", f"use a number {lo:g}-{hi:g}")
            setattr(s, key, float(v))
    if "water_class" in table:
        if table["water_class"] not in ("A", "B", "C"):
            raise _err("water_class", f"{table['water_class']!r} is not a QCVN 08:2023 class", 'use "A", "B" or "C"')
        s.water_class = table["water_class"]
    if "allowed_hosts" in table:
        hosts = table["allowed_hosts"]
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise _err("allowed_hosts", "must be a list of host names", 'write allowed_hosts = ["gw.example.vn"]')
        s.allowed_hosts = hosts
    return s


def _check_token(value, key) -> str:
    if not isinstance(value, str) or len(value.strip()) < 16:
        raise _err(key, "operator token is shorter than 16 characters",
                   "use a long random token: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return value.strip()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_nodes(nodes: dict | None) -> dict[int, dict]:
    """Normalise the gateway's `[nodes.<id>]` tables: int keys, known kinds."""
    out = {}
    for k, v in (nodes or {}).items():
        try:
            nid = int(k)
        except (TypeError, ValueError):
            raise SenError(f"gateway.toml [nodes.{k}]: node id is not a number", "use [nodes.12] with the numeric id") from None
        info = dict(v or {})
        kind = info.get("kind")
        if kind is not None and kind not in KINDS:
            raise SenError(f"gateway.toml [nodes.{k}] kind: {kind!r} is unknown", f"use one of {', '.join(KINDS)}")
        iv = info.get("interval_s")
        if iv is not None and (not isinstance(iv, (int, float)) or iv <= 0):
            raise SenError(f"gateway.toml [nodes.{k}] interval_s: {iv!r} is not a positive number", "give seconds, e.g. 300")
        out[nid] = info
    return out
