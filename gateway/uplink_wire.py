"""What a gateway in `uplink` mode puts on the broker, and how the ingest reads it back.

Topic:   <prefix>/uplink/<gateway id>/<node id>       e.g. sen/uplink/gw-hai-chau/417
Payload: one raw-log record, byte for byte as sen.gateway.raw_log writes it
         (magic "SR", u16 length, u32 CRC-32, body with rx metadata and the frame),
         so the broker carries exactly what the gateway made durable, CRC included.
MQTT 5:  QoS 1; content type application/vnd.sen.rawlog; user property
         raw_offset = the record's offset in the gateway's raw log (traceability).

The broker's ACL confines each gateway's credentials to <prefix>/uplink/<its id>/#, and the
ingest refuses a record whose gateway id differs from the topic's, so one gateway's
credentials cannot speak for another.
"""
import struct
import zlib

from sen.gateway.raw_log import MAGIC, decode_body, encode_record
from sen.gateway.rx_meta import RxMeta

CONTENT_TYPE = "application/vnd.sen.rawlog"
_HEAD = struct.Struct("<2sHI")  # the raw log's record head (see sen.gateway.raw_log)
BAD_UPLINK = "bad_uplink"  # ingest-level rejection: payload is not a whole, CRC-clean record
GATEWAY_MISMATCH = "gateway_mismatch"  # record's gateway id is not the topic's


class BadUplink(Exception):
    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


def check_gateway_id(gateway_id: str) -> str:
    if not gateway_id or any(c in gateway_id for c in "/+#") or len(gateway_id.encode()) > 64:
        raise ValueError(f"gateway id {gateway_id!r} cannot be an MQTT topic level")
    return gateway_id


def topic_for(prefix: str, gateway_id: str, node_id: int) -> str:
    return f"{prefix}/uplink/{gateway_id}/{node_id}"


def heartbeat_topic(prefix: str) -> str:
    """Ingest workers publish here (QoS 0) right after the broker grants their shared
    subscription, and every few seconds after. Gateways publish uplinks only while they hear
    it on their current connection: mosquitto 2.0 does not restore shared subscriptions
    from its persistence file, so after a broker restart anything published before a
    worker has re-subscribed would find no subscriber and be dropped."""
    return f"{prefix}/ingest/heartbeat"


def subscription(prefix: str) -> str:
    return f"{prefix}/uplink/+/+"


def node_of(frame: bytes) -> int:
    """The frame's node id field (0 when too short to have one); no trust implied."""
    return int.from_bytes(frame[1:3], "big") if len(frame) >= 3 else 0


def encode(frame: bytes, meta: RxMeta) -> bytes:
    return encode_record(frame, meta)


def decode(topic: str, payload: bytes) -> tuple[bytes, RxMeta]:
    """Raises BadUplink for anything but a whole record whose gateway id matches the topic."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[-3] != "uplink":
        raise BadUplink(BAD_UPLINK, f"topic {topic!r} is not <prefix>/uplink/<gateway>/<node>")
    if len(payload) < _HEAD.size:
        raise BadUplink(BAD_UPLINK, f"{len(payload)} bytes is shorter than a record head")
    magic, length, crc = _HEAD.unpack_from(payload, 0)
    body = payload[_HEAD.size:]
    if magic != MAGIC or length != len(body) or zlib.crc32(body) != crc:
        raise BadUplink(BAD_UPLINK, "record magic, length or CRC is wrong")
    try:
        frame, meta = decode_body(bytes(body))
    except (struct.error, IndexError) as exc:
        raise BadUplink(BAD_UPLINK, f"record body does not parse ({exc})") from None
    if meta.gateway_id != parts[-2]:
        raise BadUplink(GATEWAY_MISMATCH, f"record says {meta.gateway_id!r}, topic says {parts[-2]!r}")
    return frame, meta


def decode_gateway(payload: bytes) -> str:
    """The gateway id inside a record, without checking it against a topic."""
    body = payload[_HEAD.size:]
    i = struct.calcsize("<dIBIff")
    return body[i + 1:i + 1 + body[i]].decode(errors="replace")
