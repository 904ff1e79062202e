"""Calibrate step: turn each reading's scaled integer into a physical value, then apply the
calibration record valid for its node, channel and time. Vectorised over a whole batch.

Records come from sen.calibration.apply (`load_records(dir)`, `apply_records(records,
node_id, channel_name, times_s, raw_values, covariates) -> (values, out_of_range_mask)`).
Without that module or without a records directory the step is identity plus unit
scaling, and the stored `cal` tag says so.
"""
import logging
from pathlib import Path

import numpy as np

from sen.gateway.channels import BY_ID

log = logging.getLogger("sen.gateway.calibrate")

# Scales are 10^-k or 1/2 or 1/50; dividing by the integer reciprocal gives the correctly
# rounded decimal (312 / 10 == 31.2) where multiplying by 0.1 would not.
_MUL = np.ones(256)
_DIV = np.ones(256)
for _ch in BY_ID.values():
    if _ch.scale >= 1:
        _MUL[_ch.id] = _ch.scale
    else:
        _DIV[_ch.id] = round(1 / _ch.scale)

IDENTITY = "identity"


def scale_tables() -> tuple[list, list]:
    """Per channel id: multiplier and divisor as Python numbers, for the scalar identity path
    (same arithmetic as to_physical, so both paths store identical values)."""
    return [float(x) for x in _MUL], [float(x) for x in _DIV]


def to_physical(channels: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    """scaled may hold NaN for missing values; NaN stays NaN."""
    return scaled * _MUL[channels] / _DIV[channels]


class Calibrator:
    def __init__(self, records_dir: Path | None = None):
        self.records = None
        self._apply = None
        self.tag = IDENTITY
        if records_dir is None:
            return
        try:
            from sen.calibration import apply as cal_apply  # written by the calibration area
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
