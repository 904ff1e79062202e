# Runs inside real MicroPython: the firmware encoder/parser against the shared vectors.
import json
import frame

v = json.load(open("/frame-vectors.json"))
bad = 0
NEW = hasattr(frame, "DN_TIME")  # TIME/RANGE and keys 4-6 come with the firmware's own branch


def known(vec):
    fl = int(vec["frame"][:2], 16) & 0x0C
    return NEW or not (fl or "sf" in vec.get("config", {}) or "ack_every" in vec.get("config", {}))


for vec in v["uplink_valid"]:
    samples = [(s["dt"], [(r["channel"], r["scaled"], r["qflags"]) for r in s["readings"]]) for s in vec["samples"]]
    key = bytes.fromhex(vec["key"])
    out = frame.Framer(vec["node_id"], key).encode(vec["counter"], vec["flags"], samples)
    if out.hex() != vec["frame"]:
        bad += 1
        print("MISMATCH", vec["name"], out.hex())
for vec in v["downlink_valid"]:
    if not known(vec):
        continue
    key = bytes.fromhex(vec["key"])
    cfg = frame.parse_downlink(bytes.fromhex(vec["frame"]), vec["node_id"], frame.Mic(key), vec["acked_counter"])[1]
    if cfg != vec["config"]:
        bad += 1
        print("DOWNLINK", vec["name"], cfg)
for vec in v["downlink_invalid"]:
    if not known(vec):
        continue
    key = bytes.fromhex(vec["key"])
    try:
        frame.parse_downlink(bytes.fromhex(vec["frame"]), vec["node_id"], frame.Mic(key), vec["expect_counter"])
        bad += 1
        print("ACCEPTED", vec["name"])
    except ValueError as e:
        if str(e) != vec["reason"]:
            bad += 1
            print("REASON", vec["name"], e)
print("RESULT", bad, len(v["uplink_valid"]) + len(v["downlink_valid"]) + len(v["downlink_invalid"]))
