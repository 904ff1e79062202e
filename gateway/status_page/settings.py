"""The `[status]` table of gateway.toml (the status page), a sen.config_schema model.

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

from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from sen.config_schema import Style, Table, bad, check, key_path, short, within
from sen.errors import SenError

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


class StatusTable(Table):
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    token_file: str | None = None
    timezone: str = "Asia/Ho_Chi_Minh"
    low_battery_v: within(0.0, 6.0, "use a number 0-6", typ=float) = 3.4
    silent_intervals: within(1.0, 100.0, "use a number 1-100", typ=float) = 2.0
    water_class: str = "B"
    allowed_hosts: list[str] = []

    @field_validator("bind")
    @classmethod
    def _bind(cls, v):
        if not v:
            raise bad("must be an address string", 'write bind = "127.0.0.1"')
        if v != "localhost":
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise bad(f"{v!r} is not an IP address", 'use "127.0.0.1", "0.0.0.0" or an interface address') from None
        return v

    @field_validator("port")
    @classmethod
    def _port(cls, v):
        if not 0 <= v <= 65535:
            raise bad(f"{v!r} is not a port number", "use 1-65535 (or 0 for any free port)")
        return v

    @field_validator("token")
    @classmethod
    def _token(cls, v):
        return _check_token(v)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v):
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise bad(f"{v!r} is not a known time zone", 'use e.g. "Asia/Ho_Chi_Minh"') from None
        return v

    @field_validator("water_class")
    @classmethod
    def _class(cls, v):
        if v not in ("A", "B", "C"):
            raise bad(f"{v!r} is not a QCVN 08:2023 class", 'use "A", "B" or "C"')
        return v

    @model_validator(mode="after")
    def _one_token(self):
        if self.token is not None and self.token_file is not None:
            raise bad("both token and token_file are set", "keep one of them", key="token")
        return self


class StatusStyle(Style):
    """gateway.toml [status] key: problem — fix (the status page's own wording)."""

    def line(self, loc, problem, fix):
        return SenError(f"gateway.toml [status] {key_path(loc)}: {problem}", fix)

    def unknown(self, loc, key, known, near):
        return self.line((*loc, key), "unknown key", f"use one of {', '.join(sorted(known))}")

    def wrong_type(self, loc, tname, value):
        word = {"bool": "true or false", "str": "a string", "int": "a whole number"}.get(tname, "a " + tname)
        return self.line(loc, f"must be {word}, not {short(value)}", f"fix {key_path(loc)} under [status]")


def from_table(table: dict | None, base_dir: Path | str = ".") -> StatusPageSettings:
    """Build settings from the parsed `[status]` table; paths are relative to base_dir."""
    t = check(StatusTable, dict(table or {}), StatusStyle("gateway.toml"))
    s = StatusPageSettings(enabled=t.enabled, bind=t.bind, port=t.port, token=t.token, timezone=t.timezone,
                           low_battery_v=float(t.low_battery_v), silent_intervals=float(t.silent_intervals),
                           water_class=t.water_class, allowed_hosts=list(t.allowed_hosts))
    if t.token_file is not None:
        p = Path(base_dir) / t.token_file
        try:
            text = p.read_text().strip()
        except OSError as exc:
            raise SenError(f"gateway.toml [status] token_file: cannot read {p} ({exc.strerror})",
                           f"create it: python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {p}") from None
        try:
            s.token = _check_token(text)
        except PydanticCustomError as exc:
            raise SenError(f"gateway.toml [status] token_file: {exc.context['problem']}", exc.context["fix"]) from None
    return s


def _check_token(value: str) -> str:
    if len(value.strip()) < 16:
        raise bad("operator token is shorter than 16 characters",
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
