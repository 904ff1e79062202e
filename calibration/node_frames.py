"""Which channels a node's normal frames carry, so a record is only approved if the gateway can apply it.

A curve can only be applied to a reading when every input it reads arrives in the same
sample. Raw-signal channels (`pm25_cf1`, `ph_raw` …) travel only in calibration mode
(flagged CALIBRATING) or with `send_raw` set in node.json (firmware/sampling.py), so a
curve fitted on them never applies to a node in its normal configuration.
"""
import json
from pathlib import Path

from sen.errors import SenError
from sen.firmware_modules import load as load_firmware

# What firmware/sampling.py puts in every frame, per kind (before sensors are switched off).
_AIR_BME = ("air_temp", "rh", "pressure")
_AIR_PMS = ("pm1", "pm25", "pm10")
_AIR_RAW = ("pm1_cf1", "pm25_cf1", "pm10_cf1")
_RAIN = ("rain_tips", "rain_depth", "rain_intensity")


def _fw_config():
    return load_firmware("config")


def kind_of(channel: str) -> str | None:
    """The node kind whose frames carry a channel (raw channels included)."""
    cfg = _fw_config()
    if channel in _AIR_BME + _AIR_PMS + _AIR_RAW:
        return "air"
    if channel in cfg.WATER_PROBES or channel in cfg.RAW_CHANNEL.values():
        return "water"
    if channel in _RAIN:
        return "rain"
    return None


def normal_channels(kind: str, node_cfg: dict | None = None) -> list:
    """Channels in the node's frames with this node.json (defaults where keys are missing)."""
    fw = _fw_config()
    c = dict(node_cfg or {})
    sensors = c.get("sensors") or {}
    raw = bool(c.get("send_raw") or c.get("calibration_mode"))
    out = ["battery"] + (["battery_adc"] if raw else [])
    if kind == "air":
        if sensors.get("bme280", True):
            out += _AIR_BME
        if sensors.get("pms5003", True):
            out += _AIR_PMS + (_AIR_RAW if raw else ())
    elif kind == "water":
        for p in sensors.get("probes", fw.WATER_PROBES):
            out.append(p)
            if raw:
                out.append(fw.RAW_CHANNEL[p])
    elif kind == "rain":
        out += _RAIN
    return out


def parse_node_config(items) -> dict:
    """--node-config values: a node.json file (as `sen node config --port P` prints it) or key=value."""
    cfg: dict = {}
    for item in items or ():
        if "=" in item and not Path(item).exists():
            k, v = item.split("=", 1)
            try:
                cfg[k.strip()] = json.loads(v)
            except ValueError:
                cfg[k.strip()] = v
            continue
        try:
            doc = json.loads(Path(item).read_text())
        except OSError:
            raise SenError(f"--node-config {item}: no such file",
                           "give node.json as `sen node config --port P` prints it, or key=value (send_raw=true)") from None
        except ValueError:
            raise SenError(f"--node-config {item} is not JSON", "save the output of `sen node config --port P`") from None
        if not isinstance(doc, dict):
            raise SenError(f"--node-config {item} is not a node.json object", "save the output of `sen node config --port P`")
        cfg.update(doc)
    return cfg


def frame_profile(node: int, channel: str, inputs, node_cfg: dict | None) -> dict:
    """What the record keeps: the node's kind, the config keys that matter, and the channels it sends."""
    c = dict(node_cfg or {})
    kind = c.get("kind") or kind_of(channel) or kind_of(inputs[0])
    if kind is None:
        return {"kind": None, "send_raw": bool(c.get("send_raw")), "calibration_mode": bool(c.get("calibration_mode")),
                "channels": None}
    return {"kind": kind, "send_raw": bool(c.get("send_raw")), "calibration_mode": bool(c.get("calibration_mode")),
            "channels": normal_channels(kind, c)}


def missing_inputs(inputs, profile: dict) -> list:
    chans = profile.get("channels")
    return [] if chans is None else [n for n in inputs if n not in chans]


def check_applicable(record_id: str, node: int, inputs, profile: dict, when: str):
    """Raise SenError naming the fix when the node's frames lack an input of the curve."""
    missing = missing_inputs(inputs, profile)
    if not missing:
        return
    sends = [n for n in profile["channels"] if not n.endswith(("_raw", "_cf1", "_adc"))]
    fw = _fw_config()
    raw_of = {v: k for k, v in fw.RAW_CHANNEL.items()} | {f"{p}_cf1": p for p in ("pm1", "pm25", "pm10")}
    alt = [raw_of.get(n, n) for n in inputs]
    alt_text = ",".join(dict.fromkeys(a for a in alt if a in profile["channels"]))
    raise SenError(
        f"{record_id} reads {', '.join(missing)}, which node {node}'s normal frames do not carry "
        f"({profile['kind']} node sends {', '.join(sends)}), so the gateway could never apply it ({when} refused)",
        f"fit on channels the node sends (e.g. --inputs {alt_text or ','.join(sends[:2])}), or make the node send "
        f"them always: `sen node config --port PORT --set send_raw=true`, then fit with --node-config send_raw=true")
