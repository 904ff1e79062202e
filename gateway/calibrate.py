"""Calibrate step: turn each reading's scaled integer into a physical value, then apply the
calibration record valid for its node, channel and time. Vectorised over a whole batch.

Records come from sen.calibration.apply (`load_records(dir)`, `apply_records(records,
node_id, channel_name, times_s, raw_values, covariates) -> (values, out_of_range_mask)`).
Without that module or without a records directory the step is identity plus unit
scaling (sen.scaling, the one scale table), and the stored `cal` tag says so.
"""
import logging
import math
from pathlib import Path

import numpy as np

from sen.channels import BY_ID, BY_NAME
from sen.scaling import DIV, IDENTITY, MUL, physical, to_physical

log = logging.getLogger("sen.gateway.calibrate")
BATTERY = BY_NAME["battery"].id
_BATTERY_MUL, _BATTERY_DIV = MUL[BATTERY], DIV[BATTERY]  # physical(BATTERY, x) inline, per frame


class Calibrator:
    def __init__(self, records_dir: Path | None = None):
        self.records = None
        self._apply = None
        self.tag = IDENTITY
        if records_dir is None:
            return
        try:
            from sen.calibration import apply as cal_apply  # lazy: pulls in scipy (~0.3 s), needed only with records
        except ImportError:
            log.warning("calibration records dir %s set but sen.calibration.apply is not installed; identity", records_dir)
            return
        self.records = cal_apply.load_records(Path(records_dir))
        self._apply = cal_apply.apply_records
        self.tag = f"records:{Path(records_dir).name}"

    @property
    def identity(self) -> bool:
        return self._apply is None

    def apply(self, nodes: np.ndarray, channels: np.ndarray, sample_keys: np.ndarray,
              times: np.ndarray, scaled: np.ndarray):
        """Arrays are aligned, one element per reading. sample_keys groups readings taken
        together (covariates, e.g. RH for a PM correction, come from the same sample).
        Returns (raw physical values, calibrated values, out-of-range mask, cal tag)."""
        return self.apply_physical(nodes, channels, sample_keys, times, to_physical(channels, scaled))

    def apply_physical(self, nodes, channels, sample_keys, times, raw):
        """As apply(), from physical raw values (used by `sen gateway recalibrate`)."""
        if self._apply is None or raw.size == 0:
            return raw, raw, np.zeros(raw.shape, bool), self.tag
        values = raw.copy()
        oor = np.zeros(raw.shape, bool)
        # index of each sample's readings by channel, for covariates
        uniq_samples, sample_idx = np.unique(sample_keys, return_inverse=True)
        table = np.full((len(uniq_samples), 256), np.nan)
        table[sample_idx, channels] = raw
        pairs = np.unique(np.stack([nodes, channels], axis=1), axis=0)
        for node_id, ch_id in pairs:
            sel = np.nonzero((nodes == node_id) & (channels == ch_id))[0]
            rows = sample_idx[sel]
            covariates = {c.name: table[rows, c.id] for c in BY_ID.values()
                          if c.id != ch_id and not np.all(np.isnan(table[rows, c.id]))}
            try:
                v, m = self._apply(self.records, int(node_id), BY_ID[int(ch_id)].name, times[sel], raw[sel], covariates)
            except Exception:  # a bad record must not stop storage; raw is kept either way
                log.exception("calibration failed for node %s channel %s; storing identity", node_id, ch_id)
                continue
            values[sel] = np.asarray(v, float)
            oor[sel] = np.asarray(m, bool)
        return raw, values, oor, self.tag


def expand_compact(compact: dict[tuple, list]) -> list[tuple]:
    """Compact readings (see BatchReadings) as full reading rows, with the values the SQLite
    store's own expansion computes: for a store that takes full rows only."""
    out = []
    for chans, flat in compact.items():
        w = 4 + len(chans)
        for i in range(0, len(flat), w):
            rid, node, counter, t = flat[i:i + 4]
            for j, ch in enumerate(chans):
                v = physical(ch, flat[i + 4 + j])
                out.append((rid + j, node, counter, 0, t, ch, v, v, 0, IDENTITY))
    return out


class BatchReadings:
    """The calibrate step over one batch: add() each frame's readings as the dedupe step
    leaves them, then finish() scales and calibrates them all at once (vectorised), so a
    reading costs the per-frame loop almost nothing. Readings are numbered from `first_id`
    in the order added; `n` is how many so far, so a frame row can name its range.

    Three forms, the fastest the calibration and store allow:
    - calibrated: (node, counter, sample, time, channel, scaled or NaN, qflags, sample key)
      rows, put through Calibrator.apply in finish();
    - identity, single-sample bare frame (the fast decode path): one flat list per channel
      set, (first id, node, counter, time, scaled value per channel) per frame, which the
      SQLite store expands in SQL (`compact`);
    - identity, anything else: full reading rows, scaled here.
    """

    def __init__(self, calibrator: Calibrator, first_id: int, compact_store: bool):
        self.calibrator = calibrator
        self.identity = calibrator.identity
        self.first_id = first_id
        self.compact_store = compact_store
        self.n = 0
        self.pre: list = []
        self.rows: list = []
        self.compact: dict[tuple, list] = {}

    def add_fast(self, node: int, counter: int, t: float, obj: dict, skey: int):
        """obj: {channel id: scaled int} of a single-sample frame. Returns its battery voltage or None."""
        if self.identity:
            chans = tuple(obj)
            flat = self.compact.get(chans)
            if flat is None:
                flat = self.compact[chans] = []
            flat += (self.first_id + self.n, node, counter, t)
            flat += obj.values()
        else:
            pre = self.pre
            for ch, scaled in obj.items():
                pre.append((node, counter, 0, t, ch, scaled, 0, skey))
        self.n += len(obj)
        b = obj.get(BATTERY)
        return None if b is None else b * _BATTERY_MUL / _BATTERY_DIV

    def add_samples(self, node: int, counter: int, dated: list, skey: int) -> tuple:
        """dated: (time, Sample, sample index) of a reference-decoded frame.
        Returns (battery voltage or None, the OR of its readings' quality flags)."""
        battery, q_any = None, 0
        nr = self.n
        first_id = self.first_id
        for ts, sample, si in dated:
            for rd in sample.readings:
                ch = rd.channel.id
                if self.identity:
                    v = None if rd.scaled is None else rd.scaled * MUL[ch] / DIV[ch]
                    self.rows.append((first_id + nr, node, counter, si, ts, ch, v, v, rd.qflags, IDENTITY))
                else:
                    self.pre.append((node, counter, si, ts, ch, math.nan if rd.scaled is None else rd.scaled,
                                     rd.qflags, skey + si))
                nr += 1
                q_any |= rd.qflags
                if ch == BATTERY and rd.scaled is not None:
                    battery = physical(BATTERY, rd.scaled)
        self.n = nr
        return battery, q_any

    def finish(self) -> tuple[list, dict]:
        """(full reading rows, compact readings) for the store."""
        readings = self.rows
        pre = self.pre
        if pre:
            first_id = self.first_id
            arr = np.array(pre, float)
            chans = arr[:, 4].astype(np.int64)
            raw, values, oor, tag = self.calibrator.apply(
                arr[:, 0].astype(np.int64), chans, arr[:, 7].astype(np.int64), arr[:, 3], arr[:, 5])
            q = arr[:, 6].astype(np.int64)
            if oor.any():
                q |= np.where(oor, 2, 0)
            raw_l = [None if x != x else x for x in raw.tolist()]  # NaN -> NULL
            val_l = raw_l if values is raw else [None if x != x else x for x in values.tolist()]
            readings = [(rid, p[0], p[1], p[2], p[3], p[4], r, v, qq, tag)
                        for rid, p, r, v, qq in zip(range(first_id, first_id + len(pre)), pre, raw_l, val_l, q.tolist())]
        compact = self.compact
        if compact and not self.compact_store:
            readings = sorted(readings + expand_compact(compact), key=lambda r: r[0])
            compact = {}
        return readings, compact
