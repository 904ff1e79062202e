"""The tables of gateway.toml as sen.config_schema models: every key, its type and its range.

A new radio backend adds a RadioTable subclass to BACKEND_OPTIONS; a new forwarder adds a
Forwarder subclass to Forwarders. gateway/config.py loads a file with these.
"""
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from sen.config_schema import Number, Table, bad, finite, one_of, within
from sen.gateway.radio.downlink_plan import NODE_RX_LATE_MS, window_s

MODES = ("local", "uplink")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
Port = within(1, 65535, "use a TCP port 1..65535")


def _table():
    # an absent table is an empty one, so a required key inside it is named ("keys.file is missing")
    return Field(default_factory=dict, validate_default=True)


class RadioTable(Table):
    """[[radio]]: the keys every backend has. A new radio backend subclasses it with its own keys."""
    backend: str
    name: str | None = None
    frequency_hz: int = 921_400_000
    sf: int = 9  # firmware/config.py RADIO_DEFAULTS: nodes send at SF9 by default
    bw_hz: int = 125_000
    sync_word: within(0, 255, "use a byte, e.g. 0x12 (private LoRa networks)") = 0x12
    watchdog_s: Number = 600.0
    node_rx_late_ms: Number | None = None  # the nodes' radio.rx_late_ms: ACKs later than 100 ms + this are not sent

    @field_validator("node_rx_late_ms")
    @classmethod
    def _late(cls, v):
        if v is not None and not 0 <= v <= 10000:
            raise bad(f"{v:g} ms is outside what a node accepts", "use 0..10000 ms (60 by default, as node.json "
                      "radio.rx_late_ms)")
        return v

    @field_validator("frequency_hz")
    @classmethod
    def _band(cls, v):
        if not 920_000_000 <= v <= 923_000_000:
            raise bad(f"{v} is outside Vietnam's 920–923 MHz band", "use an AS923-2 channel, e.g. 921400000")
        return v

    @field_validator("sf")
    @classmethod
    def _sf(cls, v):
        if not 6 <= v <= 12:
            raise bad(f"{v} is not a LoRa spreading factor", "use 7..12")
        return v

    @field_validator("bw_hz")
    @classmethod
    def _bw(cls, v):
        if v not in (125_000, 250_000, 500_000):
            raise bad(f"{v} is not supported", "use 125000, 250000 or 500000")
        return v

    @field_validator("watchdog_s")
    @classmethod
    def _watchdog(cls, v):
        if v != 0 and not 10 <= v <= 86400:
            raise bad(f"{v:g} is out of range",
                      "use 0 (no watchdog) or 10..86400 seconds of silence before re-initialising (600)")
        return v


class Sx127xRadio(RadioTable):
    board: str | None = None
    low_band: bool | None = None
    tx_dbm: within(2, 20, "use 2..20 dBm (14 by default)") | None = None


class SerialRadio(RadioTable):
    port: str | None = None
    baud: within(300, 4_000_000, "use the board's baud rate, e.g. 115200") | None = None

    @model_validator(mode="after")
    def _port(self):
        if self.port is None:
            raise bad("is missing for the serial backend", "set port = \"/dev/ttyACM0\" (or the receiver board's port)",
                      key="port")
        return self


class EmulatedRadio(RadioTable):
    position: list | None = None
    antenna_gain_dbi: Number | None = None
    site: str | None = None  # a scenario [[gateway]] id


class Upstream(Table):
    address: str


def _not_negative(v):
    if v is not None and v < 0:
        raise bad(f"{v:g} is negative", "use a positive number or remove the key")
    return v


class SemtechRadio(RadioTable):
    """gateway/radio/semtech_udp.py; bind and upstream addresses are parsed by the loader."""
    bind: str
    gateways: list | None = None
    lorawan_upstream: Upstream | None = None
    offline_after_s: Number | None = None
    ack_delay_ms: Number | None = None
    lead_ms: Number | None = None
    gather_ms: Number | None = None
    tx_power_dbm: Number | None = None
    duty_cycle: Number | None = None

    @field_validator("offline_after_s", "ack_delay_ms", "lead_ms", "gather_ms", "duty_cycle")
    @classmethod
    def _positive(cls, v):
        return _not_negative(v)

    @field_validator("gateways")
    @classmethod
    def _euis(cls, v):
        if not all(isinstance(g, str) and len(g.replace("-", "").replace(":", "")) == 16 for g in v):
            raise bad("must be a list of 16-hex-digit gateway EUIs",
                      'e.g. gateways = ["aa555a0000000000"], or remove it to accept any gateway')
        return v

    @field_validator("duty_cycle")
    @classmethod
    def _duty(cls, v):
        if v is not None and not 0 < v <= 1:
            raise bad("must lie in (0, 1]", "Vietnam allows gateways 0.1 (10 %)")
        return v

    @model_validator(mode="after")
    def _ack(self):
        # the node hears an ACK that starts by 100 ms + its rx_late_ms after its TxDone
        end_ms = window_s(NODE_RX_LATE_MS if self.node_rx_late_ms is None else self.node_rx_late_ms) * 1000
        if self.ack_delay_ms is not None and self.ack_delay_ms > end_ms + 1e-6:
            raise bad(f"starts after the nodes' receive window ({end_ms:g} ms after their uplink)",
                      "use 100 (the default), or raise node_rx_late_ms and re-flash the nodes with --gateway",
                      key="ack_delay_ms")
        return self


BACKEND_OPTIONS = {"sx127x": Sx127xRadio, "serial": SerialRadio, "emulated": EmulatedRadio,
                   "semtech_udp": SemtechRadio}
BACKENDS = tuple(BACKEND_OPTIONS)
# the keys RadioConfig carries as fields; the rest (node_rx_late_ms too) reach the backend in options
RADIO_KEYS = tuple(k for k in RadioTable.model_fields if k != "node_rx_late_ms")


class Forwarder(Table):
    enabled: bool = True


class _HostPort(Forwarder):
    host: str | None = None
    port: int | None = None

    @model_validator(mode="after")
    def _reachable(self):
        if self.enabled:
            if self.host is None:
                raise bad("is missing", f"add `host = …` under [forwarders.{self.NAME}]", key="host")
            if self.port is not None and not 1 <= self.port <= 65535:
                raise bad(f"{self.port!r} is out of range", "use a TCP port 1..65535", key="port")
        return self


class MqttForwarder(_HostPort):
    NAME: ClassVar[str] = "mqtt"
    topic_prefix: str | None = None
    username: str | None = None
    password: str | None = None
    tls: bool | None = None


class Circular10Forwarder(_HostPort):
    NAME: ClassVar[str] = "circular10"
    user: str | None = None
    password: str | None = None
    province: str | None = None
    facility: str | None = None


class _Http(Forwarder):
    url: str | None = None

    @model_validator(mode="after")
    def _url(self):
        if self.enabled:
            if self.url is None:
                raise bad("is missing", f"add `url = …` under [forwarders.{self.NAME}]", key="url")
            if not self.url.startswith(("http://", "https://")):
                raise bad(f"'{self.url}' is not an http(s) URL", "e.g. url = \"http://broker:1026\"", key="url")
        return self


class NgsiLdForwarder(_Http):
    NAME: ClassVar[str] = "ngsi_ld"
    tenant: str | None = None


class SensorThingsForwarder(_Http):
    NAME: ClassVar[str] = "sensorthings"
    version: str | None = None
    sensor_metadata: str | None = None

    @model_validator(mode="after")
    def _version(self):
        if self.enabled and self.version not in (None, "v1.0", "v1.1"):
            raise bad(f"{self.version!r} is not a SensorThings version",
                      "use \"v1.1\" or \"v1.0\" (or end url with /v1.0 or /v1.1)", key="version")
        return self


class Forwarders(Table):
    mqtt: MqttForwarder | None = None
    ngsi_ld: NgsiLdForwarder | None = None
    sensorthings: SensorThingsForwarder | None = None
    circular10: Circular10Forwarder | None = None

    @classmethod
    def unknown_key(cls, key, known):
        return bad("is not a known forwarder", f"use one of: {', '.join(known)}", shown=f"[forwarders.{key}]")


FORWARDERS = tuple(Forwarders.model_fields)


class NodeTable(Table):
    name: str | None = None
    station: str | None = None
    location: list | None = None
    kind: str | None = None
    interval_s: Number | None = None


def _node_ids(cls, v):
    for key in v:
        if not key.isdigit() or not 0 < int(key) < 65536:
            raise bad("is not a node id", "use [nodes.<1..65535>]", shown=f"[nodes.{key}]")
    return v


# [nodes.<id>] tables, in gateway.toml and ingest.toml alike
check_node_ids = field_validator("nodes")(classmethod(_node_ids))


class GatewayTable(Table):
    id: str
    data_dir: str = "data"
    mode: one_of(*MODES) = "local"
    location: list | None = None
    batch_max: within(1, 100_000, "use 1..100000 frames per store transaction (500)") = 500
    fsync: bool = True

    @field_validator("id")
    @classmethod
    def _id(cls, v):
        if not v.strip() or len(v) > 64:
            raise bad(f"{v!r} is not a usable id", 'use 1-64 characters, e.g. "gw-danang-01"')
        return v

    @field_validator("location")
    @classmethod
    def _lon_lat(cls, v):
        if v is not None and (len(v) != 2 or not all(finite(x) for x in v)
                              or not (-180 <= v[0] <= 180 and -90 <= v[1] <= 90)):
            raise bad("must be [longitude, latitude]", "e.g. location = [108.22, 16.07]")
        return v


class KeysTable(Table):
    file: str


class OutboxTable(Table):
    max_pending: within(1, 10 ** 12, "use a positive number of readings (5000000)") = 5_000_000


class CalibrationTable(Table):
    records_dir: str | None = None


class MetricsTable(Table):
    bind: str | None = None
    port: within(0, 65535, "use a TCP port 0..65535") | None = None


class LogTable(Table):
    level: one_of(*LOG_LEVELS) = "INFO"


class RawLogTable(Table):
    rotate_mb: Number = 64.0
    rotate_daily: bool = True
    retain_days: Number = 60.0

    @field_validator("rotate_mb")
    @classmethod
    def _mb(cls, v):
        if not 0 <= v <= 1 << 20 or 0 < v < 1:
            raise bad(f"{float(v)} is out of range", "use 0 (no size limit) or at least 1 (MB); 64 is the default")
        return v

    @field_validator("retain_days")
    @classmethod
    def _days(cls, v):
        if not 0 <= v <= 36500:
            raise bad(f"{float(v)} is out of range",
                      "use a number of days (60 by default; Circular 10 dataloggers keep at least 60) or 0 to keep all")
        return v


class AdrParamsTable(Table):
    """sen/adr.py's margin and hysteresis: the same keys under [adr] in gateway.toml and ingest.toml."""
    margin_db: within(0, 30, "use 0..30 dB above the SF's demodulation limit (5.0)", typ=float) = 5.0
    hysteresis_db: within(0, 10, "use 0..10 dB (1.0)", typ=float) = 1.0


class AdrTable(AdrParamsTable):
    """[adr]: link adaptation (docs/frame-format.md section 9)."""
    enabled: bool = True
    central: bool = True  # prefer the central ingest's advice (uplink mode) over this gateway's own ADR
    central_max_age_s: within(60, 7 * 86400, "use e.g. 3600 (an hour; above the ingest's [adr] refresh_s)",
                              typ=float) = 3600.0


class UplinkTable(Table):
    host: str | None = None  # required in gateway.mode = "uplink" only
    port: Port = 1883
    topic_prefix: str | None = None
    username: str | None = None
    password: str | None = None
    tls: bool | None = None
    ca_file: str | None = None


class GatewayFile(Table):
    gateway: GatewayTable = _table()
    keys: KeysTable = _table()
    radio: Any = None  # [[radio]] tables are checked one by one, each against its backend's model
    forwarders: Forwarders = _table()
    status: dict | None = None  # checked by sen.gateway.status_page.settings
    nodes: dict[str, NodeTable] = {}
    outbox: OutboxTable = _table()
    calibration: CalibrationTable = _table()
    metrics: MetricsTable | None = None
    log: LogTable = _table()
    raw_log: RawLogTable = _table()
    uplink: UplinkTable | None = None
    adr: AdrTable = _table()

    _ids = check_node_ids
