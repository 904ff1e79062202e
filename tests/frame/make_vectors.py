"""Writes docs/frame-vectors.json: the frames both implementations are tested against.

Valid frames are made by the firmware encoder (firmware/frame.py) exactly as a node makes
them; invalid ones are valid frames with one deliberate defect each. Run it after changing
the spec; tests/frame/test_vectors.py fails while the file is stale.
    .venv/bin/python tests/frame/make_vectors.py
"""
import json
import sys

import cbor2

from sen.firmware_modules import load
from sen.gateway.frame_decode import compute_mic
from sen.paths import FRAME_VECTORS

frame = load("frame")
channels = load("channels")

KEY_A = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
KEY_B = bytes.fromhex("8f2a5c11d4e09b7736a1c0ffee421337")
Q = channels

VALID = [
    ("air_typical", 42, KEY_A, 7, 0, [(0, [("air_temp", 31.2), ("rh", 65), ("pressure", 1008.5),
                                          ("pm25", 35), ("pm10", 52), ("battery", 3.96)])]),
    ("air_boot_fullcnt", 42, KEY_A, 65536 * 3 + 5, frame.UP_BOOT, [(0, [("air_temp", -3.4), ("rh", 99.5),
                                          ("pressure", 300.0), ("pm25", 0), ("pm10", 1000), ("battery", 0.0)])]),
    ("air_pm_missing_warming", 42, KEY_A, 128, frame.UP_CONFIRMED, [(0, [("air_temp", 28.0), ("rh", 80),
                                          ("pressure", 1001.2), ("pm25", None), ("pm10", 12, Q.Q_WARMING_UP),
                                          ("battery", 3.70)])]),
    ("water_typical", 1500, KEY_B, 99, 0, [(0, [("battery", 3.62), ("water_temp", 27.35), ("ph", 7.21),
                                          ("conductivity", 512), ("turbidity", 48.7), ("water_level", 1.234),
                                          ("dissolved_oxygen", 7.56)])]),
    ("water_calibration_raw", 1500, KEY_B, 100, 0, [(0, [("water_temp", 25.0, Q.Q_CALIBRATING),
                                          ("ph", 7.0, Q.Q_CALIBRATING), ("ph_raw", 1498.7), ("ec_raw", 702.3)])]),
    ("water_stuck_out_of_range", 1500, KEY_B, 101, 0, [(0, [("ph", 14.9, Q.Q_OUT_OF_RANGE),
                                          ("turbidity", 250.0, Q.Q_STUCK), ("water_level", -0.25)])]),
    ("rain_storm", 65535, KEY_A, 0xFFFFFFFF, 0, [(0, [("battery", 4.1), ("rain_tips", 123456),
                                          ("rain_depth", 37.4), ("rain_intensity", 175.0)])]),
    ("rain_batch_catch_up", 3, KEY_B, 4000, frame.UP_BATCH | frame.UP_CONFIRMED, [
        (1800, [("rain_tips", 10), ("rain_depth", 0.0)]),
        (900, [("rain_tips", 14), ("rain_depth", 0.8)]),
        (0, [("rain_tips", 30), ("rain_depth", 3.2), ("rain_intensity", 48.0)])]),
]


def _readings(items):
    out = []
    for item in items:
        name, value = item[0], item[1]
        cid = channels.CHANNELS[name][0]
        scaled, q = channels.scaled(name, value)
        if len(item) > 2:
            q |= item[2]
        out.append((cid, scaled, q))
    return out


def _resign(node_key, c32, body_frame):
    return body_frame + compute_mic(node_key, c32, body_frame)


def build():
    valid, invalid = [], []
    frames = {}
    for name, node, key, counter, flags, samples in VALID:
        enc = [(dt, _readings(items)) for dt, items in samples]
        raw = frame.Framer(node, key).encode(counter, flags, enc)
        frames[name] = (raw, key, counter)
        valid.append({
            "name": name, "node_id": node, "key": key.hex(), "counter": counter, "flags": flags,
            "samples": [{"dt": dt, "readings": [{"channel": c, "scaled": s, "qflags": q} for c, s, q in rd]}
                        for dt, rd in enc],
            "frame": raw.hex(),
        })

    base, key, c = frames["air_typical"]
    hdr, body = base[:5], base[5:-4]

    def bad(name, data, reason, counter=c, k=key):
        invalid.append({"name": name, "frame": data.hex(), "key": k.hex(), "counter": counter, "reason": reason})

    bad("truncated", base[:8], "too_short")
    bad("oversize", _resign(key, c, hdr + b"\xa1\x01" + b"\x19\x01\x38" * 0 + b"\x00" * 220), "too_long")
    bad("version_2", bytes([0x40]) + base[1:], "bad_version")
    bad("downlink_on_uplink_path", bytes([base[0] | 0x10]) + base[1:], "wrong_direction")
    bad("node_zero", base[:1] + b"\x00\x00" + base[3:], "bad_node_id")
    bad("flipped_mic_bit", base[:-1] + bytes([base[-1] ^ 1]), "bad_mic")
    bad("wrong_key", base, "bad_mic", k=KEY_B)
    bad("wrong_counter", base, "bad_mic", counter=c + 65536)
    bad("cbor_garbage", _resign(key, c, hdr + b"\xff\xfe"), "cbor_malformed")
    bad("trailing_byte", _resign(key, c, hdr + body + b"\x00"), "trailing_bytes")
    bad("non_minimal_int", _resign(key, c, hdr + b"\xa1\x01\x19\x00\x05"), "not_deterministic")
    bad("unsorted_keys", _resign(key, c, hdr + b"\xa2\x05\x18\x23\x01\x19\x01\x38"), "not_deterministic")
    bad("float_value", _resign(key, c, hdr + cbor2.dumps({1: 31.2}, canonical=True)), "bad_type")
    bad("string_key", _resign(key, c, hdr + cbor2.dumps({"t": 312}, canonical=True)), "bad_type")
    bad("bool_value", _resign(key, c, hdr + cbor2.dumps({1: True}, canonical=True)), "bad_type")
    bad("empty_map", _resign(key, c, hdr + b"\xa0"), "empty_body")
    bad("unknown_channel", _resign(key, c, hdr + cbor2.dumps({17: 1}, canonical=True)), "unknown_channel")
    bad("unflagged_out_of_range", _resign(key, c, hdr + cbor2.dumps({9: 1500}, canonical=True)), "out_of_range")
    bad("missing_without_flag", _resign(key, c, hdr + cbor2.dumps({9: [None, 0]}, canonical=True)), "bad_qflags")
    bad("reserved_qflag", _resign(key, c, hdr + cbor2.dumps({9: [700, 32]}, canonical=True)), "bad_qflags")
    bad("too_many_readings", _resign(key, c, hdr + cbor2.dumps({i: 0 for i in range(32, 43)} | {i: 1 for i in range(4, 17)}, canonical=True)), "too_many_readings")
    bhdr = bytes([base[0] | frame.UP_BATCH]) + base[1:5]
    bad("batch_not_array", _resign(key, c, bhdr + body), "bad_type")
    bad("batch_dt_increasing", _resign(key, c, bhdr + cbor2.dumps([[5, {5: 1}], [9, {5: 2}]], canonical=True)), "bad_offset")
    bad("batch_too_long", _resign(key, c, bhdr + cbor2.dumps([[20 - i, {5: i}] for i in range(17)], canonical=True)), "batch_too_long")

    from sen.gateway.downlink_encode import encode_downlink

    # Self-describing: every vector states its flags, TIME, RANGE and config (by key name)
    # so the firmware's parse_downlink and the gateway's decode_downlink check the same facts.
    t0 = 1767225600  # 2026-01-01T00:00:00Z
    downlinks = []
    for name, node, k, acked, config, time_s, range_bits in [
        ("ack_only", 42, KEY_A, 7, None, None, None),
        ("ack_interval_confirmed", 42, KEY_A, 128, {"interval_s": 600, "confirmed": True}, None, None),
        ("ack_calibration_mode", 1500, KEY_B, 100, {"calibration_mode": True}, None, None),
        ("ack_time", 42, KEY_A, 9, None, t0, None),
        # stored 10, 11, 13 before 14: bits 0 (13), 2 (11), 3 (10) set, bit 1 (12) clear
        ("ack_time_range_gap", 42, KEY_A, 14, None, t0 + 61, 0b1101),
        ("ack_range_only_all_stored", 1500, KEY_B, 70000, None, None, 0xFFFF),
        ("ack_range_none_stored", 1500, KEY_B, 3, None, t0, 0),
        ("ack_time_max", 65535, KEY_B, 0xFFFFFFFF, None, 0xFFFFFFFF, 0x8001),
        ("ack_adr_sf9_backoff6", 42, KEY_A, 200, {"sf": 9, "tx_backoff_db": 6}, t0 + 3600, 0x7FFF),
        ("ack_adr_sf7_backoff20", 42, KEY_A, 201, {"sf": 7, "tx_backoff_db": 20}, t0 + 3700, 0xFFFF),
        ("ack_adr_sf12_backoff0", 1500, KEY_B, 5, {"sf": 12, "tx_backoff_db": 0}, t0, 0x000F),
        ("ack_every_4", 42, KEY_A, 300, {"ack_every": 4}, t0 + 7200, 0x0007),
        ("ack_every_16", 42, KEY_A, 301, {"ack_every": 16}, None, None),
        ("ack_every_1_unconfirmed", 42, KEY_A, 302, {"ack_every": 1, "confirmed": False}, t0, 0x0001),
        ("ack_every_key", 3, KEY_B, 4000, {"interval_s": 86400, "confirmed": True, "calibration_mode": False,
                                          "sf": 10, "tx_backoff_db": 2, "ack_every": 8}, t0 + 86399, 0x5555),
    ]:
        raw = encode_downlink(node, k, acked, config, time_s=time_s, range_bits=range_bits)
        downlinks.append({"name": name, "node_id": node, "key": k.hex(), "acked_counter": acked,
                          "flags": raw[0] & 0x0F, "time_s": time_s, "range_bits": range_bits,
                          "config": config or {}, "frame": raw.hex()})
    d0 = bytes.fromhex(downlinks[1]["frame"])
    # hand-made defects of the new fields, re-signed so only the defect is wrong
    def dhdr(flags, c):
        return bytes([0x30 | flags]) + (42).to_bytes(2, "big") + c.to_bytes(4, "big")

    def dsign(body, c):
        return (body + compute_mic(KEY_A, c, body)).hex()
    bad_down = [
        {"name": "downlink_replayed_for_other_counter", "frame": d0.hex(), "node_id": 42, "key": KEY_A.hex(),
         "expect_counter": 129, "reason": "replay"},
        {"name": "downlink_forged_mic", "frame": (d0[:-1] + bytes([d0[-1] ^ 0x80])).hex(), "node_id": 42,
         "key": KEY_A.hex(), "expect_counter": 128, "reason": "bad_mic"},
        {"name": "downlink_other_node", "frame": d0.hex(), "node_id": 43, "key": KEY_A.hex(),
         "expect_counter": 128, "reason": "not_for_me"},
        {"name": "downlink_uplink_direction", "frame": (bytes([d0[0] & ~0x10]) + d0[1:]).hex(), "node_id": 42,
         "key": KEY_A.hex(), "expect_counter": 128, "reason": "wrong_direction"},
        {"name": "downlink_time_truncated", "frame": dsign(dhdr(5, 50) + b"\x69\x55", 50), "node_id": 42,
         "key": KEY_A.hex(), "expect_counter": 50, "reason": "too_short"},
        {"name": "downlink_range_truncated", "frame": dsign(dhdr(13, 50) + t0.to_bytes(4, "big") + b"\x01", 50),
         "node_id": 42, "key": KEY_A.hex(), "expect_counter": 50, "reason": "too_short"},
        {"name": "downlink_time_trailing_byte", "frame": dsign(dhdr(5, 50) + t0.to_bytes(4, "big") + b"\x00", 50),
         "node_id": 42, "key": KEY_A.hex(), "expect_counter": 50, "reason": "trailing_bytes"},
    ]
    for name, cfg in [("sf_6", {4: 6}), ("sf_13", {4: 13}), ("tx_backoff_21", {5: 21}), ("ack_every_0", {6: 0}),
                      ("ack_every_17", {6: 17}), ("sf_bool", {4: True}), ("unknown_key_7", {7: 1})]:
        body = dhdr(15, 60) + t0.to_bytes(4, "big") + b"\x00\x01" + cbor2.dumps(cfg, canonical=True)
        bad_down.append({"name": f"downlink_config_{name}", "frame": dsign(body, 60), "node_id": 42,
                         "key": KEY_A.hex(), "expect_counter": 60, "reason": "bad_config"})
    return {
        "spec": "docs/frame-format.md v1",
        "generated_by": "tests/frame/make_vectors.py",
        "uplink_valid": valid,
        "uplink_invalid": invalid,
        "downlink_valid": downlinks,
        "downlink_invalid": bad_down,
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    FRAME_VECTORS.write_text(render())
    print(f"wrote {FRAME_VECTORS}", file=sys.stderr)
