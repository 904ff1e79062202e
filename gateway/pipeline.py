"""The data path after the raw log: verify -> decode -> dedupe -> calibrate -> store, one
batch of raw-log records per store transaction. The gateway service, `sen gateway replay`
and a central ingest (issue 10) all drive this same class."""
import hmac
import logging
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from sen.gateway import counter_state
from sen.gateway.calibrate import IDENTITY, Calibrator, scale_tables
from sen.gateway.channels import BY_NAME
from sen.gateway.counter_state import Kind, NodeCounters
from sen.gateway.dedupe import BatchFrames, rx_row
from sen.gateway.fast_accept import MicKeys, body_readings, header_of
from sen.gateway.frame_decode import FrameRejected, Reason, decode_body
from sen.gateway.rx_meta import RxMeta
from sen.gateway.store import Store
from sen.gateway.verify import Verifier

log = logging.getLogger("sen.gateway.pipeline")
BATTERY = BY_NAME["battery"].id
INTERNAL_ERROR = "internal_error"
_EMPTY = NodeCounters()
MUL, DIV = scale_tables()


@dataclass(slots=True)
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
        self.verifier = Verifier(keys, self.states, self._bytes_in_epoch)
        self.mics = MicKeys(keys)
        self.totals = Counter()  # process-lifetime counts for metrics

    def _isolate(self, records) -> BatchResult:
        if len(records) > 1:
            out = BatchResult()
            for rec in records:
                r = self.process([rec])
                out.accepted += r.accepted
                out.rejections.update(r.rejections)
                out.duplicates += r.duplicates
                out.readings += r.readings
            return out
        log.exception("store refused raw record at offset %s; counted as %s", records[0][0], INTERNAL_ERROR)
        res = BatchResult()
        res.rejections[INTERNAL_ERROR] += 1
        self.store.commit_batch(cursor_key=self.cursor_key, raw_offset=records[0][1], frames=[], rx=[], readings=[],
                                nodes={}, node_seen={}, rejections=dict(res.rejections), mic_failures={})
        self.totals.update(res.rejections)
        return res

    def _bytes_in_epoch(self, node_id: int, c32: int):
        st = self.states.get(node_id)
        return self.batch_frames.bytes_of(node_id, c32 | ((st.epoch if st else 0) << 32))

    def reload_states(self):
        self.states.clear()
        self.states.update(self.store.load_states())

    def process(self, records) -> BatchResult:
        """records: iterable of (offset, next_offset, frame, meta) from the raw log.
        Commits once; afterwards the store's raw offset is the last record's next_offset."""
        records = list(records)
        res = BatchResult()
        frames, rx, changed, seen = [], [], {}, {}
        mic_fail = Counter()
        pre = []  # (node, counter, sample, time, channel, scaled or NaN, qflags, sample key)
        end = None
        verify = self.verifier.verify
        states = self.states
        mics = self.mics
        same_bytes = self.batch_frames.bytes_of
        nan = math.nan
        first_id = self.store.next_reading_id
        identity = self.calibrator.identity
        for offset, end, frame, meta in records:
            try:
                # fast accept path; on any doubt the reference path below decides (and names the reason)
                obj = None
                h = header_of(frame)
                if h is not None:
                    mc = mics.states(h.node_id)
                    if mc is not None:
                        st = states.get(h.node_id) or _EMPTY
                        if h.counter_bits == 32 or st.last >= 0:
                            c32 = counter_state.reconstruct(st, h)
                            if 0 <= c32 <= 0xFFFFFFFF and hmac.compare_digest(
                                    MicKeys.mic(mc, c32, frame[:-4]), frame[-4:]):
                                obj = body_readings(frame, 7 if h.counter_bits == 32 else 5)
                if obj is not None:
                    kind = counter_state.classify(
                        st, c32, h, lambda c, n=h.node_id, f=frame, e=st.epoch << 32: same_bytes(n, c | e) == f)
                    samples = None
                else:
                    v = verify(frame)
                    h, c32, kind = v.header, v.counter, v.kind
                    samples = () if kind is Kind.DUPLICATE else decode_body(h)
            except FrameRejected as rej:
                res.rejections[rej.reason.value] += 1
                if rej.reason is Reason.BAD_MIC and len(frame) >= 3:
                    mic_fail[int.from_bytes(frame[1:3], "big")] += 1
                continue
            except Exception:  # the decoder promises FrameRejected only; count, never crash
                log.exception("internal error on raw record %s", offset)
                res.rejections[INTERNAL_ERROR] += 1
                continue
            node = h.node_id
            st = self.verifier.state(node)
            counter_state.accept(st, c32, kind, h.boot)
            changed[node] = st
            c32 |= st.epoch << 32  # the stored counter: unique across re-provisionings
            if kind is Kind.DUPLICATE:
                rx.append(rx_row(node, c32, meta, offset))
                res.duplicates += 1
                continue
            frame = bytes(frame)
            self.batch_frames.add(node, c32, frame)
            n_before = len(pre)
            res.accepted.append(Accepted(node, c32, kind, h.confirmed, meta))
            battery, q_any = None, 0
            skey = len(frames) * 32
            t = meta.time
            if samples is None and identity:
                rid = first_id + n_before
                for ch, scaled in obj.items():
                    v = scaled * MUL[ch] / DIV[ch]
                    pre.append((rid, node, c32, 0, t, ch, v, v, 0, IDENTITY))
                    rid += 1
                b = obj.get(BATTERY)
                if b is not None:
                    battery = b / 50
            elif samples is None:
                for ch, scaled in obj.items():
                    pre.append((node, c32, 0, t, ch, scaled, 0, skey))
                b = obj.get(BATTERY)
                if b is not None:
                    battery = b / 50
            else:
                for si, sample in enumerate(samples):
                    ts = t - sample.offset_s
                    for rd in sample.readings:
                        if identity:
                            v = None if rd.scaled is None else rd.scaled * MUL[rd.channel.id] / DIV[rd.channel.id]
                            pre.append((first_id + len(pre), node, c32, si, ts, rd.channel.id, v, v, rd.qflags, IDENTITY))
                        else:
                            pre.append((node, c32, si, ts, rd.channel.id, nan if rd.scaled is None else rd.scaled,
                                        rd.qflags, skey + si))
                        q_any |= rd.qflags
                        if rd.channel.id == BATTERY and rd.value is not None:
                            battery = rd.value
            frames.append((node, c32, offset, t, h.flags, kind is Kind.LATE, frame, first_id + n_before,
                           len(pre) - n_before, meta.gateway_id, meta.radio, meta.freq_hz, meta.sf, meta.bw_hz,
                           meta.rssi, meta.snr))
            if kind is Kind.NEW:
                seen[node] = (t, meta.rssi, meta.snr, battery, q_any)
        if end is None:
            return res
        readings = []
        if identity:
            readings = pre
        elif pre:
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
        res.readings = len(readings)
        try:
            self.store.commit_batch(cursor_key=self.cursor_key, raw_offset=end, frames=frames, rx=rx, readings=readings,
                                    nodes=changed, node_seen=seen, rejections=dict(res.rejections),
                                    mic_failures=dict(mic_fail))
        except Exception:
            # the in-memory counter state ran ahead of the rolled-back store: resync it, then
            # find the record the store refuses, so one bad record never blocks the log
            self.batch_frames.clear()
            self.reload_states()
            return self._isolate(records)
        except BaseException:
            self.batch_frames.clear()
            self.reload_states()
            raise
        finally:
            self.batch_frames.clear()
        self.totals.update(res.rejections)
        self.totals["accepted"] += len(res.accepted)
        self.totals["duplicates"] += res.duplicates
        self.totals["readings"] += res.readings
        return res
