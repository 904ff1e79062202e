"""Central ADR advice on the broker (docs/frame-format.md section 9): what the city ingest
chose for a node from every gateway's copies, and how a gateway reads it back.

Topic:   <prefix>/adr/<node id>           e.g. sen/adr/417 (the uplink topics' prefix)
Payload: {"node": 417, "sf": 7, "tx_backoff_db": 6, "frames": 20, "computed": 1795000000.0, "v": 1}
MQTT:    QoS 1, retained, so a gateway that (re)connects has every node's latest advice at
         once. An empty retained payload withdraws a node's advice (MQTT's way to delete a
         retained message).

Here, below both the gateway and the ingest, so the two sides cannot drift apart; pure, like
sen.adr, whose bounds it checks against.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from sen.adr import ALL_SFS, MAX_BACKOFF_DB, TX_STEP_DB

VERSION = 1
MAX_PAYLOAD = 1024  # a valid advice is ~90 bytes; anything far larger is not one


class BadAdvice(ValueError):
    """The message is not valid advice; str() names the problem."""


@dataclass(frozen=True)
class Advice:
    node: int
    sf: int
    tx_backoff_db: int
    frames: int       # the history ADR judged by (best copies over every gateway)
    computed: float   # unix time of the choice, by the ingest's clock

    def __post_init__(self):
        _check_int("node", self.node, 1, 65535)
        _check_int("sf", self.sf, min(ALL_SFS), max(ALL_SFS))
        _check_int("tx_backoff_db", self.tx_backoff_db, 0, MAX_BACKOFF_DB)
        if self.tx_backoff_db % TX_STEP_DB:
            raise BadAdvice(f"tx_backoff_db {self.tx_backoff_db} is not a multiple of {TX_STEP_DB}")
        _check_int("frames", self.frames, 0, None)
        if isinstance(self.computed, bool) or not isinstance(self.computed, (int, float)) \
                or not math.isfinite(self.computed) or self.computed <= 0:
            raise BadAdvice(f"computed {self.computed!r} is not a unix time")


def _check_int(name: str, v, lo: int, hi: int | None):
    # bool is an int to Python and 7.0 passes a range check: neither is what the sender meant
    if type(v) is not int:
        raise BadAdvice(f"{name} {v!r} is not an integer")
    if v < lo or (hi is not None and v > hi):
        raise BadAdvice(f"{name} {v} is outside {lo}..{hi if hi is not None else ''}")


def topic(prefix: str, node: int) -> str:
    return f"{prefix}/adr/{node}"


def subscription(prefix: str) -> str:
    return f"{prefix}/adr/+"


def node_of_topic(topic_name: str) -> int:
    """The node id of `<prefix>/adr/<node>`; raises BadAdvice for any other topic."""
    parts = topic_name.split("/")
    if len(parts) < 3 or parts[-2] != "adr" or not parts[-1].isdigit() or str(int(parts[-1])) != parts[-1]:
        raise BadAdvice(f"topic {topic_name!r} is not <prefix>/adr/<node>")
    node = int(parts[-1])
    if not 1 <= node <= 65535:
        raise BadAdvice(f"topic {topic_name!r} names node {node}, outside 1..65535")
    return node


def encode(a: Advice) -> bytes:
    return json.dumps({"node": a.node, "sf": a.sf, "tx_backoff_db": a.tx_backoff_db, "frames": a.frames,
                       "computed": round(float(a.computed), 3), "v": VERSION}, separators=(",", ":")).encode()


def _no_constant(name):
    raise BadAdvice(f"{name} is not JSON")


def decode(topic_name: str, payload: bytes) -> Advice:
    """Raises BadAdvice for anything but one node's valid advice on its own topic. Keys a
    later version adds are ignored; a different "v" is refused."""
    node = node_of_topic(topic_name)
    if len(payload) > MAX_PAYLOAD:
        raise BadAdvice(f"payload of {len(payload)} bytes is longer than {MAX_PAYLOAD}")
    try:
        body = json.loads(bytes(payload).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadAdvice(f"payload is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadAdvice(f"payload is a JSON {type(body).__name__}, not an object")
    missing = [k for k in ("v", "node", "sf", "tx_backoff_db", "frames", "computed") if k not in body]
    if missing:
        raise BadAdvice(f"payload lacks {', '.join(missing)}")
    if body["v"] != VERSION or type(body["v"]) is not int:
        raise BadAdvice(f"version {body['v']!r} is not {VERSION}")
    a = Advice(body["node"], body["sf"], body["tx_backoff_db"], body["frames"], body["computed"])
    if a.node != node:
        raise BadAdvice(f"payload is for node {a.node}, the topic for node {node}")
    return a
