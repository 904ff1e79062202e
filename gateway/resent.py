"""Re-sent samples: a confirmed node whose ACK was lost sends the same queued samples again
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
from sen.gateway.frame_decode import FrameRejected, decode_body, parse_header

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
