"""ACK and config downlinks (docs/frame-format.md section 5)."""
import cbor2

from sen.gateway.frame_decode import MAX_FRAME, VERSION, compute_mic

FLAG_ACK = 1
FLAG_CONFIG = 2
FLAG_TIME = 4
FLAG_RANGE = 8
CONFIG_KEYS = {"interval_s": 1, "confirmed": 2, "calibration_mode": 3, "sf": 4, "tx_backoff_db": 5, "ack_every": 6}
KEY_NAMES = {v: k for k, v in CONFIG_KEYS.items()}
# integer keys and their inclusive ranges; the others are booleans
INT_RANGES = {"interval_s": (60, 86400), "sf": (7, 12), "tx_backoff_db": (0, 20), "ack_every": (1, 16)}
LINK_KEYS = ("sf", "tx_backoff_db")  # ADR's settings, as opposed to operator changes


def check_config_value(name: str, value) -> None:
    """ValueError (one line) unless `value` is legal for downlink config key `name`."""
    if name not in CONFIG_KEYS:
        raise ValueError(f"unknown downlink config key {name!r}; known: {', '.join(CONFIG_KEYS)}")
    if name in INT_RANGES:
        lo, hi = INT_RANGES[name]
        # bool is an int in Python but a different CBOR type on the wire
        if type(value) is not int or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer {lo}..{hi}")
    elif type(value) is not bool:
        raise ValueError(f"{name} must be true or false")


def _config_map(config: dict) -> dict:
    out = {}
    for name, value in config.items():
        check_config_value(name, value)
        out[CONFIG_KEYS[name]] = value
    return out


def encode_downlink(node_id: int, key: bytes, acked_counter: int, config: dict | None = None, ack: bool = True,
                    *, time_s: int | None = None, range_bits: int | None = None) -> bytes:
    """time_s: gateway Unix seconds at the end of the uplink (TIME); range_bits: bit i set when
    uplink acked_counter-1-i is stored (RANGE). None leaves the field (and its flag) out."""
    if time_s is not None and not 0 <= time_s < 2 ** 32:
        raise ValueError("time_s must fit a uint32")
    if range_bits is not None and not 0 <= range_bits < 2 ** 16:
        raise ValueError("range_bits must fit a uint16")
    flags = ((FLAG_ACK if ack else 0) | (FLAG_CONFIG if config else 0) | (FLAG_TIME if time_s is not None else 0)
             | (FLAG_RANGE if range_bits is not None else 0))
    frame = bytes([(VERSION << 5) | 0x10 | flags]) + node_id.to_bytes(2, "big") + acked_counter.to_bytes(4, "big")
    if time_s is not None:
        frame += time_s.to_bytes(4, "big")
    if range_bits is not None:
        frame += range_bits.to_bytes(2, "big")
    if config:
        frame += cbor2.dumps(_config_map(config), canonical=True)
    frame += compute_mic(key, acked_counter, frame)
    if len(frame) > MAX_FRAME:
        raise ValueError("downlink too long")
    return frame
