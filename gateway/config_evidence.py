"""Has a node applied its pending config change? docs/frame-format.md section 5: the gateway
sends a pending change in every ACK until an uplink carries evidence of it. This module
reads that evidence off one accepted uplink; the service clears the change when every key
of it is evidenced by the same uplink (a node applies all keys of a config map at once, so
one uplink after the change shows all of them).

What each key looks like on air:
- `confirmed`: the uplink's CONFIRMED flag.
- `calibration_mode`: the newest sample of the uplink. In calibration mode the node flags
  every reading CALIBRATING and adds raw-signal channels (ids >= 32); out of it, neither.
- `interval_s`: the time from the node's previous sample to the newest one. The node keeps
  an anchored schedule and moves the next slot to `slot + new interval` the cycle it applies
  the change, so the first gap after the change is the new interval.

Interval tolerance, max(10 s, 5 % of the interval):
- 10 s absorbs the per-cycle jitter of a sample's time at the gateway. A single-sample
  frame is timed by its reception, which moves by the node's confirmed-frame retries
  (1 s and 2 s back-off plus up to 0.5 s jitter, each with another time on air of up to
  1.3 s at SF12) and by sensor reads that take longer one cycle than the next.
- 5 % absorbs the node's sleep timer: the ESP32 times deep sleep on its internal RC slow
  clock, calibrated against the crystal only at boot and drifting with temperature.
A lost frame makes the gap a multiple of the interval and is simply not evidence; the next
pair of consecutive samples is. A change smaller than the tolerance (e.g. 900 s -> 920 s)
cannot be told apart from the old schedule and is taken as applied when the gap fits.
"""
from dataclasses import dataclass

from sen.channels import Q_CALIBRATING

TOLERANCE_FLOOR_S = 10.0
TOLERANCE_FRACTION = 0.05
RAW_CHANNEL_MIN = 32  # docs/frame-format.md section 4: raw-signal channels are ids >= 32
SAME_SAMPLE_S = 0.5  # sample times closer than this are one sample (a re-send)
DEFAULT_ACK_EVERY = 4  # the firmware's default (firmware/config.py LINK_KEYS)


@dataclass(frozen=True)
class Uplink:
    """What one accepted uplink shows of the node's current config."""
    confirmed: bool
    sample_time: float | None = None  # the newest sample's time
    prev_sample_time: float | None = None  # the node's sample before it, if the gateway has it
    calibrating: bool | None = None  # None: the uplink carried no readings
    ack_gap: int | None = None  # counters since the node's previous ACK-requesting uplink (this one asks too)
    since_ask: int | None = None  # this uplink does not ask: counters since the node's last one that did


def interval_tolerance(interval_s: float) -> float:
    return max(TOLERANCE_FLOOR_S, TOLERANCE_FRACTION * interval_s)


def evidence(change: dict, up: Uplink) -> dict[str, bool]:
    """Per key of the change: does this uplink show the node running the requested value?"""
    out = {}
    for key, want in change.items():
        if key == "confirmed" and want:
            ok = up.confirmed
        elif key == "confirmed":
            # A confirmed node asks on one frame in ack_every only, so a frame without the flag
            # is no evidence; one that comes later than the node's next scheduled request is
            # (frame-format.md section 5). No request ever stored: nothing to tell it from.
            every = change.get("ack_every", DEFAULT_ACK_EVERY)
            ok = not up.confirmed and (up.since_ask is None or up.since_ask > every)
        elif key == "calibration_mode":
            ok = up.calibrating is not None and up.calibrating == bool(want)
        elif key == "interval_s":
            ok = (up.sample_time is not None and up.prev_sample_time is not None
                  and abs((up.sample_time - up.prev_sample_time) - want) <= interval_tolerance(want))
        elif key == "ack_every":
            ok = up.confirmed and up.ack_gap == want
        else:
            ok = False  # a key this gateway cannot observe is never taken as applied
        out[key] = ok
    return out


def observe(con, node_id: int, counter: int, confirmed: bool) -> Uplink:
    """The Uplink of a stored frame (node_id, stored counter), read from the store."""
    up = _observe(con, node_id, counter, confirmed)
    prev = con.execute("SELECT MAX(counter) FROM frames WHERE node_id=? AND counter<? AND flags & 1",
                       (node_id, counter)).fetchone()[0]
    if prev is None:
        return up
    if not confirmed:
        return Uplink(up.confirmed, up.sample_time, up.prev_sample_time, up.calibrating, since_ask=counter - prev)
    return Uplink(up.confirmed, up.sample_time, up.prev_sample_time, up.calibrating, counter - prev)


def _observe(con, node_id: int, counter: int, confirmed: bool) -> Uplink:
    row = con.execute("SELECT first_reading, n_readings FROM frames WHERE node_id=? AND counter=?",
                      (node_id, counter)).fetchone()
    if row is None or not row[1]:
        return Uplink(confirmed)
    rows = con.execute("SELECT sample, time, channel, qflags FROM readings WHERE id >= ? AND id < ?",
                       (row[0], row[0] + row[1])).fetchall()
    if not rows:
        return Uplink(confirmed)
    newest = max(r[0] for r in rows)
    last = [r for r in rows if r[0] == newest]
    t_new = last[0][1]
    calibrating = any((q or 0) & Q_CALIBRATING or ch >= RAW_CHANNEL_MIN for _, _, ch, q in last)
    earlier = [r[1] for r in rows if r[1] < t_new - SAME_SAMPLE_S]
    prev = con.execute(
        "SELECT first_reading, n_readings FROM frames WHERE node_id=? AND counter<? ORDER BY counter DESC LIMIT 1",
        (node_id, counter)).fetchone()
    if prev is not None and prev[1]:
        t = con.execute("SELECT MAX(time) FROM readings WHERE id >= ? AND id < ? AND time < ?",
                        (prev[0], prev[0] + prev[1], t_new - SAME_SAMPLE_S)).fetchone()[0]
        if t is not None:
            earlier.append(t)
    return Uplink(confirmed, t_new, max(earlier) if earlier else None, calibrating)
