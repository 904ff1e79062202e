"""The data path after the raw log, one batch of raw-log records per store transaction:

    verify -> decode -> dedupe -> calibrate -> store

each step its own module (verify.Verify, decode.decode, dedupe.Dedupe,
calibrate.BatchReadings, and a Storage: sen.gateway.storage). The gateway service,
`sen gateway replay` and a central ingest (issue 10) all drive this same class.
"""
import logging
from collections import Counter
from dataclasses import dataclass, field

from sen.gateway.calibrate import BatchReadings, Calibrator
from sen.gateway.counter_state import Kind, NodeCounters
from sen.gateway.decode import decode
from sen.gateway.dedupe import Dedupe
from sen.gateway.frame_decode import FLAG_BOOT, FLAG_CONFIRMED, FrameRejected, Reason
from sen.gateway.json_out import finite
from sen.gateway.raw_log import is_disk_full
from sen.gateway.rx_meta import RxMeta
from sen.gateway.storage import Storage
from sen.gateway.verify import Verify

log = logging.getLogger("sen.gateway.pipeline")
INTERNAL_ERROR = "internal_error"


@dataclass(slots=True)
class Accepted:
    node_id: int
    counter: int
    kind: Kind
    confirmed: bool
    meta: RxMeta
    boot: bool = False  # its counter jump is a skipped block, not lost frames (ADR's loss count)


@dataclass
class BatchResult:
    accepted: list[Accepted] = field(default_factory=list)
    rejections: Counter = field(default_factory=Counter)
    duplicates: int = 0
    readings: int = 0
    resent_samples: int = 0  # samples of batch frames already stored from an earlier frame


class Pipeline:
    def __init__(self, store: Storage, keys, calibrator: Calibrator | None = None, cursor_key: str = "raw_offset"):
        self.store = store
        self.cursor_key = cursor_key
        self.keys = keys
        self.calibrator = calibrator or Calibrator()  # replaced whole when records are reloaded
        # one dict shared by the steps, mutated in place: the service and the ingest worker
        # edit it from outside (key rotation, PostgreSQL refresh)
        self.states: dict[int, NodeCounters] = store.load_states()
        self.dedupe = Dedupe(self.states, store)
        self.verify = Verify(keys, self.states, self.dedupe.bytes_in_epoch)
        self.totals = Counter()  # process-lifetime counts for metrics

    def reload_states(self):
        self.states.clear()
        self.states.update(self.store.load_states())

    def process(self, records) -> BatchResult:
        """records: iterable of (offset, next_offset, frame, meta) from the raw log.
        Commits once; afterwards the store's raw offset is the last record's next_offset."""
        records = list(records)
        res = BatchResult()
        frames, seen, mic_fail = [], {}, Counter()
        calibrate = BatchReadings(self.calibrator, self.store.next_reading_id, self.store.compact_readings)
        dedupe = self.dedupe
        dedupe.begin(frames)
        # bound once per batch: the loop below runs per frame
        verify, admit, resent = self.verify.__call__, dedupe.admit, dedupe.resent
        add_fast, add_samples, first_id = calibrate.add_fast, calibrate.add_samples, calibrate.first_id
        accepted, DUPLICATE, NEW, LATE = res.accepted, Kind.DUPLICATE, Kind.NEW, Kind.LATE
        end = None
        for offset, end, frame, meta in records:
            try:
                h, c32, kind = verify(frame)
                body = None if kind is DUPLICATE else decode(frame, h)  # a copy's readings are stored
            except FrameRejected as rej:
                res.rejections[rej.reason.value] += 1
                if rej.reason is Reason.BAD_MIC and len(frame) >= 3:
                    mic_fail[int.from_bytes(frame[1:3], "big")] += 1
                continue
            except Exception:  # the decoder promises FrameRejected only; count, never crash
                log.exception("internal error on raw record %s", offset)
                res.rejections[INTERNAL_ERROR] += 1
                continue
            if type(frame) is not bytes:
                frame = bytes(frame)
            c32 = admit(h, c32, kind, frame, meta, offset)
            if c32 is None:
                continue  # a copy: kept as an rx row only
            node, flags, t = h.node_id, h.flags, meta.time
            accepted.append(Accepted(node, c32, kind, bool(flags & FLAG_CONFIRMED), meta, bool(flags & FLAG_BOOT)))
            first = calibrate.n
            skey = len(frames) * 32  # groups a frame's samples for covariates
            if type(body) is dict:
                battery, q_any = add_fast(node, c32, t, body, skey), 0
            else:
                fresh = dedupe.fresh_samples(h, c32, [(t - sample.offset_s, sample) for sample in body])
                battery, q_any = add_samples(node, c32, fresh, skey)
            rssi, snr = finite(meta.rssi), finite(meta.snr)
            row = (node, c32, offset, t, flags, kind is LATE, frame, first_id + first, calibrate.n - first,
                   meta.gateway_id, meta.radio, meta.freq_hz, meta.sf, meta.bw_hz, rssi, snr)
            frames.append(row)
            if resent.by_node is not None:  # only once a batch frame was checked (rare)
                resent.note(row)
            if kind is NEW:
                seen[node] = (t, rssi, snr, battery, q_any)
        if end is None:
            return res
        readings, compact = calibrate.finish()
        res.duplicates = dedupe.duplicates
        res.readings = calibrate.n
        res.resent_samples = sum(dedupe.resent_by_node.values())
        try:
            self.store.commit_batch(cursor_key=self.cursor_key, raw_offset=end, frames=frames, rx=dedupe.rx,
                                    readings=readings, compact=compact, nodes=dedupe.changed, node_seen=seen,
                                    rejections=dict(res.rejections), mic_failures=dict(mic_fail),
                                    resent=dict(dedupe.resent_by_node),
                                    next_reading_id=calibrate.first_id + calibrate.n)
        except Exception as exc:
            # the in-memory counter state ran ahead of the rolled-back store: resync it, then
            # find the record the store refuses, so one bad record never blocks the log
            dedupe.end()
            self.reload_states()
            if is_disk_full(exc):
                # not this batch's fault: isolating it would count good frames as
                # internal_error and skip them; the caller keeps them in the raw log
                raise
            return self._isolate(records)
        except BaseException:
            dedupe.end()
            self.reload_states()
            raise
        finally:
            dedupe.end()
        self.totals.update(res.rejections)
        self.totals["accepted"] += len(res.accepted)
        self.totals["duplicates"] += res.duplicates
        self.totals["readings"] += res.readings
        self.totals["resent_samples"] += res.resent_samples
        return res

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
