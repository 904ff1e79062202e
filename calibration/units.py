"""Column units: parse `name[unit]` headers, convert known alternatives, refuse the rest.

Channel units come from the frame-format registry (docs/frame-format.md section 4), so a
co-location file that says `air_temp[degF]` or `rh[fraction]` is converted, not misread.
"""
import re

import numpy as np

from sen.errors import SenError
from sen.channels import BY_NAME as CHANNELS

_HEADER = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:[\[(]\s*([^\])]*)\s*[\])])?\s*$")

# Spellings crews actually type, mapped to the registry's unit strings.
_ALIASES = {
    "ug/m3": "µg/m³", "µg/m3": "µg/m³", "ug/m³": "µg/m³", "µg/m³": "µg/m³",
    "c": "°C", "degc": "°C", "°c": "°C", "celsius": "°C",
    "%": "%", "pct": "%", "percent": "%",
    "mv": "mV", "v": "V", "us/cm": "µS/cm", "µs/cm": "µS/cm",
    "ph": "pH", "ntu": "NTU", "fnu": "NTU", "ftu": "NTU",
    "mm": "mm", "mm/h": "mm/h", "hpa": "hPa",
}

# (from, to) -> function of a numpy array
_CONVERT = {
    ("degf", "°C"): lambda x: (x - 32.0) * 5.0 / 9.0,
    ("f", "°C"): lambda x: (x - 32.0) * 5.0 / 9.0,
    ("k", "°C"): lambda x: x - 273.15,
    ("fraction", "%"): lambda x: x * 100.0,
    ("mg/m3", "µg/m³"): lambda x: x * 1000.0,
    ("v", "mV"): lambda x: x * 1000.0,
    ("ms/cm", "µS/cm"): lambda x: x * 1000.0,
    ("s/m", "µS/cm"): lambda x: x * 1e4,
    ("in/h", "mm/h"): lambda x: x * 25.4,
    ("in", "mm"): lambda x: x * 25.4,
    ("pa", "hPa"): lambda x: x / 100.0,
}


def split_header(text: str) -> tuple[str, str | None]:
    """'pm25_cf1 [ug/m3]' -> ('pm25_cf1', 'ug/m3'); 'rh' -> ('rh', None)."""
    m = _HEADER.match(text)
    if not m:
        return text.strip(), None
    return m.group(1), (m.group(2) or None)


def canonical(unit: str) -> str:
    return _ALIASES.get(unit.strip().lower(), unit.strip())


def to_channel_unit(name: str, unit: str | None, values: np.ndarray):
    """Return (values in the channel's registry unit, note or None). Unknown channels pass through."""
    ch = CHANNELS.get(name)
    if ch is None or unit is None:
        return values, None
    if canonical(unit) == ch.unit:
        return values, None
    fn = _CONVERT.get((unit.strip().lower(), ch.unit))
    if fn is None:
        raise SenError(f"column {name!r} is in {unit!r} but channel {name} is in {ch.unit!r} and no conversion is known",
                       f"convert the column to {ch.unit} or write the header as {name}[{ch.unit}]")
    return fn(values), f"{name}: converted {unit} → {ch.unit}"


def plausibility(name: str, values: np.ndarray) -> str | None:
    """Catch the unit mistakes that headers do not reveal (RH as 0–1, temperature in °F)."""
    v = values[np.isfinite(values)]
    if v.size < 5:
        return None
    if name == "rh" and np.nanmax(v) <= 1.0:
        return "rh never exceeds 1: looks like a 0–1 fraction, not % — write the header as rh[fraction]"
    if name in ("air_temp", "water_temp") and np.nanmedian(v) > 60:
        return f"{name} median {np.nanmedian(v):.0f}: looks like °F or K, not °C — write the header as {name}[degF] or {name}[K]"
    ch = CHANNELS.get(name)
    if ch is not None:
        outside = np.mean((v < ch.min) | (v > ch.max))
        if outside > 0.5:
            return f"{name}: most values lie outside the channel range {ch.min}–{ch.max} {ch.unit}; check the unit"
    return None
