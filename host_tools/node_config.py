"""The node config (node.json, docs/node-config.md) as sen.config_schema models.

`sen node flash --set` and `sen node config --set` check a change here first, so a mistake
is one line naming the key path and the fix. The firmware's own loader (firmware/config.py
check_node, MicroPython, no pydantic there) still judges the result afterwards, on the host
and again on the node: it is what the node runs.
"""
from pydantic import field_validator, model_validator

from sen.config_schema import Number, Style, Table, bad, check, key_path, one_of, short, within

KINDS = ("air", "water", "rain", "receiver")
FREQ_MIN, FREQ_MAX = 921_400_000, 922_800_000  # AS923-2 uplink channels, Vietnam
FIX = "docs/node-config.md lists every key"


class NodeRadio(Table):
    freq_hz: within(FREQ_MIN, FREQ_MAX, f"use {FREQ_MIN}..{FREQ_MAX} (AS923-2, Vietnam)") | None = None
    sf: within(7, 12, "use 7..12") | None = None
    bw_hz: int | None = None
    cr: int | None = None
    tx_dbm: int | None = None
    antenna_gain_dbi: int | None = None
    sync_word: within(0, 255, "use a byte, e.g. 0x12") | None = None
    preamble: int | None = None
    rx_window_ms: int | None = None
    rx_late_ms: within(0, 10000, "use 0..10000 ms (60 by default)") | None = None
    channels: str | list[int] | None = None

    @field_validator("rx_window_ms")
    @classmethod
    def _window(cls, v):
        if v is not None and not (v == 0 or 100 <= v <= 10000):
            raise bad(f"{v} is out of range", "use 0 (automatic) or 100..10000")
        return v

    @field_validator("channels")
    @classmethod
    def _plan(cls, v):
        if isinstance(v, str) and v != "as923-2" or isinstance(v, list) and (
                not 1 <= len(v) <= 16 or any(not FREQ_MIN <= f <= FREQ_MAX for f in v)):
            raise bad(f"{v!r} is not a channel plan", f"use \"as923-2\" or a list of 1..16 of {FREQ_MIN}..{FREQ_MAX}")
        return v


class NodeFilter(Table):
    filter: one_of("median", "trimmed_mean", "mean", "ewma") | None = None
    n: within(1, 64, "use 1..64 samples") | None = None
    alpha: Number | None = None


class NodeConfig(Table):
    node_id: within(1, 65535, "use 1..65535")
    kind: one_of(*KINDS)
    key: str | None = None
    interval_s: within(60, 86400, "use 60..86400 seconds (900 by default)") = 900
    confirmed: bool = False
    calibration_mode: bool = False
    send_raw: bool = False
    ack_every: within(1, 16, "use 1..16 (4 by default; 1 = every frame asks, with retries)") = 4
    link_check_every: within(0, 1024, "use 0..1024 frames (16 by default; 0 = never)") = 16
    link_lost_after: within(0, 65535, "use 0..65535 frames (96 by default)") = 96
    batch: within(1, 4, "use 1..4 samples per frame (1 by default: every sample goes at once)") = 1
    radio: NodeRadio | None = None
    sensors: dict | None = None
    filters: dict[str, NodeFilter] | None = None

    @model_validator(mode="after")
    def _key(self):
        if self.kind != "receiver":
            try:
                ok = self.key is not None and len(bytes.fromhex(self.key)) == 16
            except ValueError:
                ok = False
            if not ok:
                raise bad("must be 32 hex digits (128 bits)", "`sen node flash --new-key` makes one", key="key")
        return self


class NodeStyle(Style):
    """Fixes point at docs/node-config.md; a change arrives as --set key.path=value, not a table."""

    def line(self, loc, problem, fix):
        return super().line(loc, problem, f"{fix} ({FIX})")

    def wrong_type(self, loc, tname, value):
        word = {"bool": "true or false", "int": "a whole number", "str": "a string"}.get(tname, "a " + tname)
        return self.line(loc, f"must be {word}, not {short(value)}", f"e.g. --set {key_path(loc)}=<{word}>")


def check_node(cfg: dict) -> NodeConfig:
    """The node config checked against the models: one SenError line for the first mistake."""
    return check(NodeConfig, cfg, NodeStyle("node config (node.json)"))


def gateway_plan(gateway_config) -> dict:
    """The radio.* keys a node needs to be heard by the gateway of `gateway_config`: a
    concentrator gateway (every radio semtech_udp) listens on all eight AS923-2 channels, so
    the node hops over them; a single-channel radio (sx127x, serial, emulated) hears one
    frequency, so the node keeps to it, and so does a node of a gateway with both kinds."""
    from sen.gateway.config import load  # lazy: the gateway's config only when flashing for one
    radios = load(gateway_config).radios
    single = [rc for rc in radios if rc.backend != "semtech_udp"]
    if single:
        plan = {"freq_hz": single[0].frequency_hz, "channels": [single[0].frequency_hz]}
    else:
        plan = {"channels": "as923-2"} if radios else {}
    # a gateway that starts ACKs later (far out on the network, a slow host): its nodes listen longer
    late = [rc.options.get("node_rx_late_ms") for rc in radios]
    late = [int(x) for x in late if x is not None]
    if late:
        plan["rx_late_ms"] = max(late)
    return plan


def with_gateway_plan(overrides: dict, gateway_config) -> dict:
    """`overrides` with the gateway's channel plan (and receive-window lateness) under radio.*;
    a --set of radio.channels or radio.freq_hz, or of radio.rx_late_ms, wins."""
    if gateway_config is None:
        return overrides
    radio = overrides.get("radio")
    radio = radio if isinstance(radio, dict) else {}
    plan = gateway_plan(gateway_config)
    if "channels" in radio or "freq_hz" in radio:
        plan.pop("channels", None)
        plan.pop("freq_hz", None)
    if "rx_late_ms" in radio:
        plan.pop("rx_late_ms", None)
    if not plan:
        return overrides
    return {**overrides, "radio": {**radio, **plan}}
