"""Dedupe step: every way one measurement can reach the gateway more than once, in one place.

- Copies: one frame heard by several radios (or gateways). The counter rules
  (counter_state.classify) call it a DUPLICATE when `BatchFrames.bytes_of` finds the same bytes
  already accepted, in this batch or in the store; it becomes no new reading set, but every
  copy's rx metadata is kept as its own rx row, as ChirpStack keeps rx_info per gateway.
- Replays and counter reuse: the counter rules reject them; they are never stored.
- Re-sent samples: the same queued sample sent again in a later frame under a new counter
  (below); each is stored and forwarded once.

Re-sent samples in detail: a confirmed node whose ACK was lost sends the same queued samples again
in its next cycle's batch frame, under a new counter (docs/node-config.md, "Receive
window"). Counter rules cannot see that; this step recognises each such sample by node,
sample time and readings, so it is stored and forwarded once (docs/frame-format.md §6).

Only BATCH frames can carry a re-send, and they are rare next to single-sample frames,
so the check costs nothing on the common path: it runs only for batch frames, and reads
the node's earlier frames (this batch's, then the store's) newest first, stopping as soon
as every sample is placed or the frames are older than any match could be.

Time tolerance. The gateway dates a sample by its own clock: a single-sample frame at its
receive time, a batch sample at receive time minus `dt`. The node takes a sample's time
when the cycle starts and sends it without `dt` only while it is at most 60 s old
(firmware/node.py `_encode`); `dt` is whole seconds of the node's clock, so truncation
moves a batch date by under 1 s each way. Hence a first copy is dated between 2 s before
and 62 s after its re-sent copy, plus the difference of the two frames' time on air and
radio latency, which SLACK_S (1 s) covers at SF7–SF10, plus RETRY_S either way when one
copy was heard on a retry of its frame (a retry repeats the first attempt's bytes).

Distinct samples of one node are taken at least 60 s apart (interval_s >= 60), which the
late edge of that window reaches, and a re-send repeats exactly the queued scaled integers
and quality flags. So a sample counts as re-sent only when an earlier-accepted frame of the
node holds one dated inside the window AND with identical readings.
"""
import logging
import math
from collections import Counter

from sen.gateway.counter_state import Kind, NodeCounters, accept
from sen.gateway.frame_decode import FLAG_BOOT, FrameRejected, decode_body, parse_header
from sen.gateway.json_out import finite
from sen.gateway.rx_meta import RxMeta

log = logging.getLogger("sen.gateway.pipeline")  # the re-send log line predates this module
_DUPLICATE = Kind.DUPLICATE


# A frame heard on a retry is dated by its receive time, up to RETRY_S after its first
# attempt, while its bytes (no dt, or dt counted at the first encoding) stay those of the
# first attempt: firmware/node.py retries twice, after 1 s and 2 s back-off (+ <= 0.5 s
# jitter each), and each earlier attempt costs its time on air (<= 2 s for a full batch at
# SF9) and ACK window (~0.5 s). Either copy can be the retried one (seen in the demo).
RETRY_S = 10.0
EARLY_S = 2.0 + RETRY_S  # a first copy may be dated this much before the re-sent one
LATE_S = 62.0 + RETRY_S  # ... or this much after (60 s single-sample age limit + truncation)
SLACK_S = 1.0  # time on air and radio latency differing between the two frames
REORDER_S = 60.0  # frames arrive newest-counter-first up to this much out of time order
MAX_FRAMES_BACK = 1024  # a safety bound on how far back one frame's check reads


def rx_row(node_id: int, counter: int, meta: RxMeta, raw_offset: int) -> tuple:
    return (node_id, counter, meta.gateway_id, meta.radio, meta.time, meta.freq_hz, meta.sf, meta.bw_hz,
            finite(meta.rssi), finite(meta.snr), raw_offset)  # inf/nan from a radio: unknown


def best_copy(rows: list[tuple]) -> tuple:
    """The copy with the strongest signal; rows as made by rx_row."""
    return max(rows, key=lambda r: (-math.inf if r[9] is None else r[9], -math.inf if r[8] is None else r[8]))


class BatchFrames:
    """Frames accepted in the current, not yet committed batch, so a second copy inside
    the same batch is recognised before the store has it."""

    def __init__(self, store_lookup):
        self._store_lookup = store_lookup
        self.pending: dict[tuple[int, int], bytes] = {}

    def add(self, node_id: int, counter: int, frame: bytes):
        self.pending[(node_id, counter)] = frame

    def bytes_of(self, node_id: int, counter: int) -> bytes | None:
        got = self.pending.get((node_id, counter))
        return got if got is not None else self._store_lookup(node_id, counter)

    def clear(self):
        self.pending.clear()


def sample_key(readings) -> tuple:
    """What a re-send repeats exactly: each reading's channel, scaled value and flags."""
    return tuple((r.channel.id, r.scaled, r.qflags) for r in readings)


def frame_samples(frame: bytes, rx_time: float):
    """(time, key) of each sample of an accepted frame, dated as the pipeline dates them."""
    try:
        h = parse_header(frame)
        return [(rx_time - s.offset_s, sample_key(s.readings)) for s in decode_body(h)]
    except FrameRejected:  # cannot happen for a frame the pipeline accepted; never a reason to fail
        return []


class ResentSamples:
    """Per batch: `begin(frames)` with the batch's frame rows as the pipeline appends them
    ((node, counter, offset, rx time, flags, late, frame, ...)); `check` for each batch frame."""

    def __init__(self, store_frames_before=None):
        # (node, counter) -> (counter, rx_time, frame) of stored frames below counter, newest first
        self.store_frames_before = store_frames_before
        self.rows: list = []
        self.by_node: dict[int, list] | None = None

    def begin(self, rows: list):
        self.rows = rows
        self.by_node = None  # built on the first batch frame only

    def note(self, row):
        """The pipeline appended `row` to the batch's frames."""
        if self.by_node is not None:
            self.by_node.setdefault(row[0], []).append(row)

    def _accepted(self, node: int):
        """The node's accepted frames, this batch's first, each part newest first. All
        counters: a first copy that arrives after its re-send (another path) is one too."""
        if self.by_node is None:
            self.by_node = {}
            for r in self.rows:
                self.by_node.setdefault(r[0], []).append(r)
        for r in reversed(self.by_node.get(node, ())):
            yield r[1], r[3], r[6]
        if self.store_frames_before is not None:
            yield from self.store_frames_before(node, 1 << 62)

    def check(self, node: int, samples: list[tuple[float, tuple]]) -> list[bool]:
        """samples: (time, key) of a batch frame's samples, before the frame is added.
        True where the same sample was accepted before in another frame of the node."""
        found = [False] * len(samples)
        if not samples:
            return found
        oldest = min(t for t, _ in samples) - EARLY_S - SLACK_S
        for n, (_, rx_time, frame) in enumerate(self._accepted(node)):
            # a frame received before the oldest window opens holds no match (samples are
            # dated at or before their frame); read on a little for frames out of order
            if rx_time < oldest - REORDER_S or n >= MAX_FRAMES_BACK:
                break
            if rx_time < oldest:
                continue
            for t1, key1 in frame_samples(frame, rx_time):
                for i, (t2, key2) in enumerate(samples):
                    if not found[i] and key1 == key2 and -EARLY_S - SLACK_S <= t1 - t2 <= LATE_S + SLACK_S:
                        found[i] = True
            if all(found):
                break
        return found


class Dedupe:
    """The step: records each verified frame's counter as accepted (so a later copy is known),
    turns a copy into an rx row, and drops the samples of a batch frame that were stored
    before. Per batch: begin(), then admit() per frame; the pipeline hands each frame row
    to `resent.note` once a re-send check has started (ResentSamples.by_node set)."""

    def __init__(self, states: dict[int, NodeCounters], store):
        self.states = states
        self.copies = BatchFrames(store.frame_bytes)
        self._pending = self.copies.pending  # the same dict, for the per-frame path
        self.resent = ResentSamples(store.frames_before)
        self.rx: list = []  # rx rows of copies, this batch
        self.changed: dict[int, NodeCounters] = {}  # nodes whose counter state moved, this batch
        self.resent_by_node: Counter = Counter()
        self.duplicates = 0

    def bytes_in_epoch(self, node_id: int, c32: int) -> bytes | None:
        """The accepted frame under a node's 32-bit counter in its current epoch, if any."""
        st = self.states.get(node_id)
        return self.copies.bytes_of(node_id, c32 | ((st.epoch if st else 0) << 32))

    def begin(self, frame_rows: list):
        self.rx = []
        self.changed = {}
        self.resent_by_node = Counter()
        self.duplicates = 0
        self.resent.begin(frame_rows)

    def admit(self, h, c32: int, kind: Kind, frame, meta: RxMeta, offset: int) -> int | None:
        """The stored counter (epoch above the 32 bits: unique across re-provisionings) of a
        frame that carries new readings, or None for a copy (kept as an rx row only)."""
        node = h.node_id
        st = self.states.get(node)
        if st is None:
            st = self.states[node] = NodeCounters()
        accept(st, c32, kind, h.flags & FLAG_BOOT)
        self.changed[node] = st
        c32 |= st.epoch << 32
        if kind is _DUPLICATE:
            self.rx.append(rx_row(node, c32, meta, offset))
            self.duplicates += 1
            return None
        self._pending[(node, c32)] = frame  # bytes: the pipeline converts a view first
        return c32

    def fresh_samples(self, h, c32: int, dated: list) -> list:
        """dated: (time, Sample) of a reference-decoded frame; returns (time, Sample, sample
        index) of those not stored before. Only BATCH frames can carry a re-send."""
        if not h.batch:
            return [(ts, sample, 0) for ts, sample in dated]
        node = h.node_id
        again = self.resent.check(node, [(ts, sample_key(sample.readings)) for ts, sample in dated])
        if not any(again):
            return [(ts, sample, si) for si, (ts, sample) in enumerate(dated)]
        k = sum(again)
        self.resent_by_node[node] += k
        times = [round(ts, 1) for (ts, _), a in zip(dated, again) if a]
        log.info("node %d frame %d: %d of %d samples re-sent (stored from an earlier frame), not"
                 " stored again; sample times %s", node, c32, k, len(dated), times,
                 extra={"event": "resent_samples", "node": node, "counter": c32, "resent": k,
                        "samples": len(dated), "times": times})
        return [(ts, sample, si) for si, ((ts, sample), a) in enumerate(zip(dated, again)) if not a]

    def end(self):
        """After the commit, or its failure: the store now answers for this batch's frames."""
        self.copies.clear()
