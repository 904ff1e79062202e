"""`sen gateway replay`: re-process raw-log frames through the pipeline into a store.

Each log family (an active raw.log and its rotated raw.log.<offset> segments) keeps its
own cursor in the store (`replay:<path>`), so a second run continues where the first
stopped, and replaying one log never moves another's cursor.
"""
import time
from dataclasses import dataclass, field
from pathlib import Path

from sen.errors import SenError
from sen.gateway.calibrate import Calibrator
from sen.gateway.key_store import KeyStore
from sen.gateway.lock import DataDirLock
from sen.gateway.pipeline import Pipeline
from sen.gateway.raw_log import iter_records, segments
from sen.gateway.store import Store


@dataclass
class ReplayResult:
    frames: int = 0
    seconds: float = 0.0
    accepted: int = 0
    duplicates: int = 0
    rejections: dict = field(default_factory=dict)


def log_families(paths) -> dict[Path, dict[Path, int]]:
    """Each given path (a data directory, an active raw.log or segments) grouped by the log
    it belongs to: {active log path: {segment: base offset}}."""
    logs: dict[Path, dict[Path, int]] = {}
    for p in paths:
        if not p.exists():
            raise SenError(f"raw log {p} does not exist", "give the gateway's data directory, its raw.log or segments")
        if p.is_file() and p.name.rsplit(".", 1)[-1].isdigit():
            family = p.with_name(p.name.rsplit(".", 1)[0])
        else:
            family = p / "raw.log" if p.is_dir() else p
        logs.setdefault(family.resolve(), {}).update({seg.resolve(): base for base, seg in segments(p)})
    return logs


class Replay:
    """Open with the store locked; `total` bytes to go; run(on_progress) replays them."""

    def __init__(self, cfg, logs: dict[Path, dict[Path, int]], db: Path | None = None, batch: int = 2000):
        """logs: as log_families() returns them."""
        self.batch = batch
        # a store a running gateway writes: its counter state would race ours (false MIC failures)
        self.lock = DataDirLock(Path(db).parent if db else cfg.data_dir, "cannot replay into its store")
        self.store = Store(db or cfg.store_path)
        self.pipe = Pipeline(self.store, KeyStore(cfg.key_file), Calibrator(cfg.calibration_dir))
        self.plan = []  # (cursor key, start, [(base, segment)])
        for family, segs in logs.items():
            key = f"replay:{family}"
            self.plan.append((key, self.store.raw_offset(key), sorted((b, s) for s, b in segs.items())))
        self.total = sum(max(0, s.stat().st_size - max(0, start - b)) for _, start, segs in self.plan for b, s in segs
                         if b + s.stat().st_size > start)

    def run(self, on_progress=lambda done: None) -> ReplayResult:
        """on_progress(bytes done) after each batch and segment."""
        out = ReplayResult()
        pipe = self.pipe
        t0 = time.perf_counter()
        done = 0

        def process(chunk):
            res = pipe.process(chunk)
            out.frames += len(chunk)
            for k, v in res.rejections.items():
                out.rejections[k] = out.rejections.get(k, 0) + v

        for key, start, segs in self.plan:
            pipe.cursor_key = key
            for base, seg in segs:
                if base + seg.stat().st_size <= start:
                    continue
                local0 = max(0, start - base)
                chunk = []
                for a, b, f, m in iter_records(seg, local0):
                    chunk.append((base + a, base + b, f, m))
                    if len(chunk) >= self.batch:
                        process(chunk)
                        on_progress(done + b - local0)
                        chunk = []
                if chunk:
                    process(chunk)
                done += seg.stat().st_size - local0
                on_progress(done)
        out.seconds = time.perf_counter() - t0
        out.accepted = pipe.totals["accepted"]
        out.duplicates = pipe.totals["duplicates"]
        return out

    def close(self):
        self.store.close()
        self.lock.release()
