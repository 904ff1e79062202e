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
from sen.gateway.frame_decode import FLAG_BOOT, FLAG_CONFIRMED, FrameRejected, Reason, decode_body
from sen.gateway.json_out import finite
from sen.gateway.raw_log import is_disk_full
from sen.gateway.resent import ResentSamples, sample_key
from sen.gateway.rx_meta import RxMeta
from sen.gateway.store import Store, expand_compact
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
    resent_samples: int = 0  # samples of batch frames already stored from an earlier frame


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
        self.resent = ResentSamples(getattr(store, "frames_before", None))
        self.compact_store = getattr(store, "compact_readings", False)
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
                out.resent_samples += r.resent_samples
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
        resent = Counter()
        pre = []  # calibrated mode: (node, counter, sample, time, channel, scaled or NaN, qflags, sample key)
        rows = []  # identity, reference path: full readings rows
        compact = {}  # identity, fast path: channel ids -> flat (first id, node, counter, time, scaled, ...)
        end = None
        verify = self.verifier.verify
        states = self.states
        mic_states = self.mics.states
        mic = MicKeys.mic
        compare = hmac.compare_digest
        classify = counter_state.classify
        reconstruct = counter_state.reconstruct
        accept = counter_state.accept
        pending = self.batch_frames.pending
        same_bytes = self.batch_frames.bytes_of
        nan = math.nan
        first_id = self.store.next_reading_id
        nr = 0  # readings numbered in this batch
        identity = self.calibrator.identity
        resend = self.resent
        resend.begin(frames)
        NEW = Kind.NEW
        for offset, end, frame, meta in records:
            try:
                # fast accept path; on any doubt the reference path below decides (and names the reason)
                got = None
                h = header_of(frame)
                if h is not None:
                    mc = mic_states(h.node_id)
                    if mc is not None:
                        st = states.get(h.node_id) or _EMPTY
                        if h.counter_bits == 32 or st.last >= 0:
                            c32 = reconstruct(st, h)
                            if 0 <= c32 <= 0xFFFFFFFF and compare(mic(mc, c32, frame[:-4]), frame[-4:]):
                                got = body_readings(frame, 7 if h.counter_bits == 32 else 5)
                if got is not None:
                    # above the highest accepted counter (or no state yet) is NEW whatever else
                    # classify would check; only older counters need the window rules
                    kind = NEW if c32 > st.last else classify(
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
            st = states.get(node)
            if st is None:
                st = states[node] = NodeCounters()
            flags = h.flags
            accept(st, c32, kind, flags & FLAG_BOOT)
            changed[node] = st
            c32 |= st.epoch << 32  # the stored counter: unique across re-provisionings
            if kind is Kind.DUPLICATE:
                rx.append(rx_row(node, c32, meta, offset))
                res.duplicates += 1
                continue
            if type(frame) is not bytes:
                frame = bytes(frame)
            pending[(node, c32)] = frame
            nr_before = nr
            res.accepted.append(Accepted(node, c32, kind, bool(flags & FLAG_CONFIRMED), meta))
            battery, q_any = None, 0
            skey = len(frames) * 32  # calibrated mode: groups a frame's samples for covariates
            t = meta.time
            if samples is None:
                obj = got
                if identity:
                    chans = tuple(obj)
                    flat = compact.get(chans)
                    if flat is None:
                        flat = compact[chans] = []
                    flat += (first_id + nr, node, c32, t)
                    flat += obj.values()
                    nr += len(chans)
                else:
                    for ch, scaled in obj.items():
                        pre.append((node, c32, 0, t, ch, scaled, 0, skey))
                    nr += len(obj)
                b = obj.get(BATTERY)
                if b is not None:
                    battery = b / 50
            else:
                dated = [(t - sample.offset_s, sample) for sample in samples]
                if h.batch:
                    again = resend.check(node, [(ts, sample_key(sample.readings)) for ts, sample in dated])
                    if any(again):
                        k = sum(again)
                        resent[node] += k
                        times = [round(ts, 1) for (ts, _), a in zip(dated, again) if a]
                        log.info("node %d frame %d: %d of %d samples re-sent (stored from an earlier frame), not"
                                 " stored again; sample times %s", node, c32, k, len(dated), times,
                                 extra={"event": "resent_samples", "node": node, "counter": c32, "resent": k,
                                        "samples": len(dated), "times": times})
                        dated = [(ts, sample, si) for si, ((ts, sample), a) in enumerate(zip(dated, again)) if not a]
                    else:
                        dated = [(ts, sample, si) for si, (ts, sample) in enumerate(dated)]
                else:
                    dated = [(ts, sample, 0) for ts, sample in dated]
                for ts, sample, si in dated:
                    for rd in sample.readings:
                        if identity:
                            v = None if rd.scaled is None else rd.scaled * MUL[rd.channel.id] / DIV[rd.channel.id]
                            rows.append((first_id + nr, node, c32, si, ts, rd.channel.id, v, v, rd.qflags, IDENTITY))
                        else:
                            pre.append((node, c32, si, ts, rd.channel.id, nan if rd.scaled is None else rd.scaled,
                                        rd.qflags, skey + si))
                        nr += 1
                        q_any |= rd.qflags
                        if rd.channel.id == BATTERY and rd.value is not None:
                            battery = rd.value
            row = (node, c32, offset, t, flags, kind is Kind.LATE, frame, first_id + nr_before, nr - nr_before,
                   meta.gateway_id, meta.radio, meta.freq_hz, meta.sf, meta.bw_hz, finite(meta.rssi), finite(meta.snr))
            frames.append(row)
            if resend.by_node is not None:
                resend.note(row)
            if kind is NEW:
                seen[node] = (t, finite(meta.rssi), finite(meta.snr), battery, q_any)
        if end is None:
            return res
        readings = rows
        if pre:
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
        if compact and not self.compact_store:
            readings = sorted(readings + expand_compact(compact), key=lambda r: r[0])
            compact = {}
        res.readings = nr
        res.resent_samples = sum(resent.values())
        try:
            self.store.commit_batch(cursor_key=self.cursor_key, raw_offset=end, frames=frames, rx=rx, readings=readings,
                                    compact=compact, nodes=changed, node_seen=seen, rejections=dict(res.rejections),
                                    mic_failures=dict(mic_fail), resent=dict(resent), next_reading_id=first_id + nr)
        except Exception as exc:
            # the in-memory counter state ran ahead of the rolled-back store: resync it, then
            # find the record the store refuses, so one bad record never blocks the log
            self.batch_frames.clear()
            self.reload_states()
            if is_disk_full(exc):
                # not this batch's fault: isolating it would count good frames as
                # internal_error and skip them; the caller keeps them in the raw log
                raise
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
        self.totals["resent_samples"] += res.resent_samples
        return res
