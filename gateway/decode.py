"""Decode step: a verified frame's body to readings.

The fast path (sen.gateway.fast_accept.body_readings) takes the common frame, one sample
of bare in-range integers, as {channel id: scaled}; anything else goes to the reference
decoder (frame_decode.decode_body), which also names the rejection reason. The
differential test (tests/gateway/test_fast_accept.py) holds the two to the same answer.
"""
from sen.gateway.fast_accept import Header, body_readings
from sen.gateway.frame_decode import decode_body, parse_header


def decode(frame, h) -> dict | tuple:
    """{channel id: scaled} from the fast path, else a tuple of frame_decode.Sample.
    h: the verify step's header (fast Header or reference UplinkHeader). Raises FrameRejected."""
    if type(h) is Header:
        got = body_readings(frame, 7 if h.counter_bits == 32 else 5)
        if got is not None:
            return got
        h = parse_header(frame)  # cannot fail: the fast header checks are a superset
    return decode_body(h)
