"""ACK and config downlinks (docs/frame-format.md section 5)."""
import cbor2

from sen.gateway.frame_decode import MAX_FRAME, VERSION, compute_mic

FLAG_ACK = 1
FLAG_CONFIG = 2
CONFIG_KEYS = {"interval_s": 1, "confirmed": 2, "calibration_mode": 3}


def _config_map(config: dict) -> dict:
    out = {}
    for name, value in config.items():
        if name not in CONFIG_KEYS:
            raise ValueError(f"unknown downlink config key {name!r}; known: {', '.join(CONFIG_KEYS)}")
        if name == "interval_s":
            if type(value) is not int or not 60 <= value <= 86400:
                raise ValueError("interval_s must be an integer 60..86400")
        elif type(value) is not bool:
            raise ValueError(f"{name} must be true or false")
        out[CONFIG_KEYS[name]] = value
    return out


def encode_downlink(node_id: int, key: bytes, acked_counter: int, config: dict | None = None, ack: bool = True) -> bytes:
    flags = (FLAG_ACK if ack else 0) | (FLAG_CONFIG if config else 0)
    frame = bytes([(VERSION << 5) | 0x10 | flags]) + node_id.to_bytes(2, "big") + acked_counter.to_bytes(4, "big")
    if config:
        frame += cbor2.dumps(_config_map(config), canonical=True)
    frame += compute_mic(key, acked_counter, frame)
    if len(frame) > MAX_FRAME:
        raise ValueError("downlink too long")
    return frame
