"""The data path after the raw log: verify -> decode -> dedupe -> calibrate -> store, one
batch of raw-log records per store transaction. The gateway service, `sen gateway replay`
and a central ingest (issue 10) all drive this same class."""
import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from sen.gateway import counter_state
from sen.gateway.calibrate import Calibrator
from sen.gateway.channels import BY_NAME
from sen.gateway.counter_state import Kind, NodeCounters
from sen.gateway.dedupe import BatchFrames, rx_row
from sen.gateway.frame_decode import FrameRejected, Reason, decode_body
from sen.gateway.rx_meta import RxMeta
from sen.gateway.store import Store
from sen.gateway.verify import Verifier

log = logging.getLogger("sen.gateway.pipeline")
BATTERY = BY_NAME["battery"].id
INTERNAL_ERROR = "internal_error"


@dataclass
class Accepted:
    node_id: int
    counter: int
    kind: Kind
    confirmed: bool
    meta: RxMeta


@dataclass
class BatchResult:
    accepted: list[Accepted] = field(default_factory=list)
    rejections: Counter = field(default_factory=Counter)
    duplicates: int = 0
    readings: int = 0


class Pipeline:
    def __init__(self, store: Store, keys, calibrator: Calibrator | None = None, cursor_key: str = "raw_offset"):
        self.store = store
        self.cursor_key = cursor_key
        self.keys = keys
        self.calibrator = calibrator or Calibrator()
        self.states: dict[int, NodeCounters] = store.load_states()
        self.batch_frames = BatchFrames(store.frame_bytes)
        self.verifier = Verifier(keys, self.states, self.batch_frames.bytes_of)
        self.totals = Counter()  # process-lifetime counts for metrics

    def reload_states(self):
        self.states.clear()
        self.states.update(self.store.load_states())

    def process(self, records) -> BatchResult:
        """records: iterable of (offset, next_offset, frame, meta) from the raw log.
        Commits once; afterwards the store's raw offset is the last record's next_offset."""
        res = BatchResult()
        frames, rx, changed, seen = [], [], {}, {}
        mic_fail = Counter()
        r_node, r_counter, r_sample, r_time, r_chan, r_scaled, r_q, r_skey = ([] for _ in range(8))
        end = None
        verify = self.verifier.verify
        for offset, end, frame, meta in records:
            try:
                v = verify(frame)
                h = v.header
                if v.kind is Kind.DUPLICATE:
                    samples = ()
                else:
                    samples = decode_body(h)
            except FrameRejected as rej:
                res.rejections[rej.reason.value] += 1
                if rej.reason is Reason.BAD_MIC and len(frame) >= 3:
                    mic_fail[int.from_bytes(frame[1:3], "big")] += 1
                continue
            except Exception:  # the decoder promises FrameRejected only; count, never crash
                log.exception("internal error on raw record %s", offset)
                res.rejections[INTERNAL_ERROR] += 1
                continue
            node, c32 = h.node_id, v.counter
            st = self.verifier.state(node)
            counter_state.accept(st, c32, v.kind, h.boot)
            changed[node] = st
            rx.append(rx_row(node, c32, meta, offset))
            if v.kind is Kind.DUPLICATE:
                res.duplicates += 1
                continue
            self.batch_frames.add(node, c32, bytes(frame))
            frames.append((node, c32, offset, meta.time, h.flags, v.kind is Kind.LATE, bytes(frame)))
            res.accepted.append(Accepted(node, c32, v.kind, h.confirmed, meta))
            battery, q_any = None, 0
            skey = len(frames)
            for si, sample in enumerate(samples):
                t = meta.time - sample.offset_s
                for rd in sample.readings:
                    r_node.append(node)
                    r_counter.append(c32)
                    r_sample.append(si)
                    r_time.append(t)
                    r_chan.append(rd.channel.id)
                    r_scaled.append(math.nan if rd.scaled is None else rd.scaled)
                    r_q.append(rd.qflags)
                    r_skey.append(skey * 32 + si)
                    q_any |= rd.qflags
                    if rd.channel.id == BATTERY and rd.value is not None:
                        battery = rd.value
            if v.kind is Kind.NEW:
                seen[node] = (meta.time, meta.rssi, meta.snr, battery, q_any)
        if end is None:
            return res
        readings = []
        if r_node:
            nodes = np.array(r_node, np.int64)
            chans = np.array(r_chan, np.int64)
            times = np.array(r_time, float)
            raw, values, oor, tag = self.calibrator.apply(
                nodes, chans, np.array(r_skey, np.int64), times, np.array(r_scaled, float))
            q = np.array(r_q, np.int64) | np.where(oor, 2, 0)
            raw_l = [None if x != x else x for x in raw.tolist()]  # NaN -> NULL
            val_l = [None if x != x else x for x in values.tolist()]
            readings = list(zip(r_node, r_counter, r_sample, r_time, r_chan, raw_l, val_l, q.tolist(),
                                [tag] * len(r_node)))
        res.readings = len(readings)
        try:
            self.store.commit_batch(cursor_key=self.cursor_key, raw_offset=end, frames=frames, rx=rx, readings=readings, nodes=changed,
                                    node_seen=seen, rejections=dict(res.rejections), mic_failures=dict(mic_fail))
        except BaseException:
            # the in-memory counter state ran ahead of the rolled-back store: resync it
            self.reload_states()
            raise
        finally:
            self.batch_frames.clear()
        self.totals.update(res.rejections)
        self.totals["accepted"] += len(res.accepted)
        self.totals["duplicates"] += res.duplicates
        self.totals["readings"] += res.readings
        return res
