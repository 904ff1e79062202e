"""Dedupe step: copies of one frame heard by several radios (or gateways) become one
reading set; every copy's rx metadata is kept as its own rx row, as ChirpStack keeps
rx_info per gateway."""
import math

from sen.gateway.json_out import finite
from sen.gateway.rx_meta import RxMeta


def rx_row(node_id: int, counter: int, meta: RxMeta, raw_offset: int) -> tuple:
    return (node_id, counter, meta.gateway_id, meta.radio, meta.time, meta.freq_hz, meta.sf, meta.bw_hz,
            finite(meta.rssi), finite(meta.snr), raw_offset)  # inf/nan from a radio: unknown


class BatchFrames:
    """Frames accepted in the current, not yet committed batch, so a second copy inside
    the same batch is recognised before the store has it."""

    def __init__(self, store_lookup):
        self._store_lookup = store_lookup
        self.pending: dict[tuple[int, int], bytes] = {}  # the pipeline sets items directly (hot path)

    def add(self, node_id: int, counter: int, frame: bytes):
        self.pending[(node_id, counter)] = frame

    def bytes_of(self, node_id: int, counter: int) -> bytes | None:
        got = self.pending.get((node_id, counter))
        return got if got is not None else self._store_lookup(node_id, counter)

    def clear(self):
        self.pending.clear()


def best_copy(rows: list[tuple]) -> tuple:
    """The copy with the strongest signal; rows as made by rx_row."""
    return max(rows, key=lambda r: (-math.inf if r[9] is None else r[9], -math.inf if r[8] is None else r[8]))
