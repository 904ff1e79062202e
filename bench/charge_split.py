"""Where a node's charge goes: a cycle's charge split into sleep, boot, CPU, TX, RX and other.

The emulator's power meter (emulator/power_meter.py) records, per cycle, the time spent in
each key of the board's [current_ma] table (channels mcu, radio, pms, sensors; every channel
is in one state at a time, so keys of different channels overlap in time) and the charge,
which is the sum over keys of time x current. The split regroups those same products:

- sleep: deep_sleep (MCU), radio_sleep and pms_sleep: the standing sleep currents;
- boot:  the board's boot_ms estimate (ROM, 2nd-stage bootloader, interpreter start) at the
         reset-default CPU clock, active_160mhz: the emulator runs no code for it and holds
         the MCU in that state for exactly boot_ms after each reset (emulator/board.py
         on_boot), before boot.py sets the firmware's clock;
- cpu:   every other active_<N>mhz time: the firmware from boot.py to sleep (including
         boot.py's first steps at 160 MHz before machine.freq(240 MHz): ~0.25 ms a wake,
         ~30 ms after power-on, measured in the emulator);
- tx:    radio_tx;   rx: radio_rx (ACK windows, CAD);
- other: light_sleep (PMS5003 warm-up, TX wait, ACK window, conversions), radio_standby,
         sensors (the switched sensor rail), pms_fan, and any key not named above; each is
         also given apart in other_detail.

The categories add up to the meter's charge_mah (up to float rounding): they are a
regrouping of the same time x current products.
"""
from sen.emulator.power_meter import current_ma

CATEGORIES = ("sleep", "boot", "cpu", "tx", "rx", "other")
BOOT_KEY = "active_160mhz"   # the ESP32 port's clock after reset (emulator/board.py _reset_boot_state)
_FIXED = {"deep_sleep": "sleep", "radio_sleep": "sleep", "pms_sleep": "sleep", "radio_tx": "tx", "radio_rx": "rx"}


def split_cycle(cycle, table, boot_ms=None):
    """{category: mAh} and {other key: mAh} for one cycle record of the power meter."""
    boot_ms = float(cycle.get("boot_ms", 0.0) if boot_ms is None else boot_ms)
    out = dict.fromkeys(CATEGORIES, 0.0)
    other = {}
    for key, ms in cycle["state_ms"].items():
        mah = ms * current_ma(table, key) / 3.6e6
        if key.startswith("active_"):
            boot = min(ms, boot_ms) if key == BOOT_KEY else 0.0
            boot_mah = boot * current_ma(table, key) / 3.6e6
            out["boot"] += boot_mah
            out["cpu"] += mah - boot_mah
        elif key in _FIXED:
            out[_FIXED[key]] += mah
        else:
            out["other"] += mah
            other[key] = other.get(key, 0.0) + mah
    return out, other


def split_cycles(cycles, table, boot_ms=None):
    """Charge split of several cycles: ({category: mAh}, {other key: mAh}, total mAh measured)."""
    tot = dict.fromkeys(CATEGORIES, 0.0)
    other = {}
    measured = 0.0
    for c in cycles:
        cat, oth = split_cycle(c, table, boot_ms)
        for k, v in cat.items():
            tot[k] += v
        for k, v in oth.items():
            other[k] = other.get(k, 0.0) + v
        measured += c["charge_mah"]
    return tot, other, measured


def average_ua(cycles, table, boot_ms=None, span_s=None):
    """The split as average currents (µA) over span_s (default: the cycles' own span):
    {"sleep": ..., ..., "other": ..., "total": measured, "other_detail": {key: µA}}.
    The categories add up to "total" (checked: a split that does not is a bug, not a figure)."""
    cycles = list(cycles)
    if span_s is None:
        span_s = sum(c["end_us"] - c["start_us"] for c in cycles) / 1e6
    if span_s <= 0:
        return None
    k = 1000.0 * 3600.0 / span_s   # mAh -> µA over the span
    cat, other, measured = split_cycles(cycles, table, boot_ms)
    if abs(sum(cat.values()) - measured) > 1e-9 + 1e-6 * measured:
        raise AssertionError(f"charge split {sum(cat.values())} mAh != measured {measured} mAh")
    out = {c: cat[c] * k for c in CATEGORIES}
    out["total"] = measured * k
    out["other_detail"] = {key: v * k for key, v in sorted(other.items())}
    return out


def rounded(split, nd=2):
    """The split with its figures rounded for JSON and tables."""
    if split is None:
        return None
    out = {k: round(v, nd) for k, v in split.items() if k != "other_detail"}
    out["other_detail"] = {k: round(v, nd) for k, v in split.get("other_detail", {}).items()}
    return out


def describe():
    """One line saying what each category holds (printed under the tables)."""
    return ("charge split: sleep = deep sleep + radio and PMS sleep currents; boot = the board's boot_ms estimate "
            "(ROM, bootloader, interpreter start) at 160 MHz; cpu = firmware active time, boot.py to sleep; "
            "tx/rx = radio transmit/receive; other = light sleep, radio standby, sensor rail, PMS fan.")
