"""Spreading factor and TX power per node over time, from the radio medium's frame records.

The medium (emulator/radio_medium.py) keeps one record per finished frame in medium.frames:
sender name, sf, t_start_us, airtime_us, and power_dbm (the chip's conducted TX power, from
the Transmission). Per sender this gives the changes of (sf, power) over time, the frames and
the time on air at each SF: what ADR did to the node and what it cost on air.
"""


def sf_history(frames, senders=None, include_aborted=False):
    """{sender: {"changes": [[hour, sf, power_dbm], ...], "frames_per_sf": {sf: n},
    "airtime_s_per_sf": {sf: s}, "frames": n, "airtime_s": s, "sf_last": sf, "power_dbm_last": p}}.
    changes: the first frame's (sf, power) and every frame whose sf or power differs from the
    sender's previous frame; hour = the frame's start in virtual hours. power_dbm is None in
    records made before the medium recorded it. senders: only these names (e.g. the nodes,
    leaving out gateway ACKs); aborted frames are left out unless include_aborted."""
    out = {}
    want = set(senders) if senders is not None else None
    for r in sorted(frames, key=lambda r: (r["t_start_us"], r.get("seq", 0))):
        name = r["sender"]
        if want is not None and name not in want:
            continue
        if r.get("aborted") and not include_aborted:
            continue
        sf, power = int(r["sf"]), r.get("power_dbm")
        h = out.get(name)
        if h is None:
            h = out[name] = {"changes": [], "frames_per_sf": {}, "airtime_s_per_sf": {}, "frames": 0,
                             "airtime_s": 0.0, "sf_last": None, "power_dbm_last": None}
        if not h["changes"] or (sf, power) != (h["sf_last"], h["power_dbm_last"]):
            h["changes"].append([round(r["t_start_us"] / 3600e6, 3), sf, power])
        h["sf_last"], h["power_dbm_last"] = sf, power
        air_s = r["airtime_us"] / 1e6
        h["frames_per_sf"][sf] = h["frames_per_sf"].get(sf, 0) + 1
        h["airtime_s_per_sf"][sf] = h["airtime_s_per_sf"].get(sf, 0.0) + air_s
        h["frames"] += 1
        h["airtime_s"] += air_s
    for h in out.values():
        h["airtime_s"] = round(h["airtime_s"], 3)
        h["airtime_s_per_sf"] = {sf: round(v, 3) for sf, v in sorted(h["airtime_s_per_sf"].items())}
        h["frames_per_sf"] = dict(sorted(h["frames_per_sf"].items()))
    return out


def json_ready(hist):
    """The history with SF keys as strings (JSON object keys), for summary.json."""
    return {name: dict(h, frames_per_sf={str(k): v for k, v in h["frames_per_sf"].items()},
                       airtime_s_per_sf={str(k): v for k, v in h["airtime_s_per_sf"].items()})
            for name, h in hist.items()}


def steps(changes, end_h):
    """(hours, sfs) for a step plot: each change holds until the next one, the last until end_h."""
    xs, ys = [], []
    for i, (h, sf, _p) in enumerate(changes):
        nxt = changes[i + 1][0] if i + 1 < len(changes) else end_h
        xs += [h, nxt]
        ys += [sf, sf]
    return xs, ys


def sf_text(h):
    """'SF9 12 frames 2.3 s' per SF, comma-separated: a one-cell summary for tables."""
    return ", ".join(f"SF{sf}: {n} fr {h['airtime_s_per_sf'][sf]:.1f} s" for sf, n in h["frames_per_sf"].items())
