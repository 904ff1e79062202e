"""Append-only raw log: every received frame with its rx metadata, made durable before
anything else looks at it.

The log is the gateway's write-ahead log. The store keeps the offset up to which the log
has been processed, in the same SQLite transaction as the results, so after a crash or
power loss the service re-processes the tail and nothing received is lost or doubled.

Record layout (little-endian): magic b"SR", u16 body length, u32 crc32(body), body.
body = f64 time, u32 freq_hz, u8 sf, u32 bw_hz, f32 rssi, f32 snr, u8 len(gateway_id),
gateway_id, u8 len(radio), radio, frame bytes.
A torn tail (crash mid-append) fails its length or CRC check and is cut off on open.

Segments. The log rotates (by size and/or at local midnight): the active file `raw.log` is
renamed to `raw.log.<base>`, where base is the global offset of its first byte, and a new
`raw.log` starts. Offsets everywhere (the store's processed offset, replay cursors, the
uplink cursor) are global, so they stay valid across rotations; a log that never rotated
has base 0 and reads exactly as before. The active file's base is the end of the newest
sealed segment, or `raw.log.base` (written after every rotation) once retention has
deleted the sealed ones. Rotation order — fsync, rename, fsync dir, write base, create —
leaves a state at every instant from which open() finds the same offsets.
"""
import os
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import logging

from sen.errors import SenError
from sen.gateway.disk import disk_full_problem, is_disk_full  # noqa: F401  (is_disk_full: re-exported)
from sen.gateway.rx_meta import RxMeta, sane

_log = logging.getLogger("sen.gateway.raw_log")
MAGIC = b"SR"
_HEAD = struct.Struct("<2sHI")
_META = struct.Struct("<dIBIff")
MAX_BODY = 0xFFFF


def encode_record(frame: bytes, meta: RxMeta) -> bytes:
    gw = meta.gateway_id.encode()[:255]
    radio = meta.radio.encode()[:255]
    body = b"".join((
        _META.pack(meta.time, meta.freq_hz, meta.sf, meta.bw_hz, meta.rssi, meta.snr),
        bytes([len(gw)]), gw, bytes([len(radio)]), radio, bytes(frame),
    ))
    if len(body) > MAX_BODY:
        # Radios cap frames at 255 bytes, so this only happens on a backend bug; keep the head.
        body = body[:MAX_BODY]
    return _HEAD.pack(MAGIC, len(body), zlib.crc32(body)) + body


def decode_body(body: bytes) -> tuple[bytes, RxMeta]:
    t, freq, sf, bw, rssi, snr = _META.unpack_from(body, 0)
    i = _META.size
    n = body[i]
    gw = body[i + 1:i + 1 + n].decode(errors="replace")
    i += 1 + n
    n = body[i]
    radio = body[i + 1:i + 1 + n].decode(errors="replace")
    i += 1 + n
    rssi, snr = sane(rssi, snr)  # a log written before the backend boundary clamped them
    return body[i:], RxMeta(gw, t, freq, sf, bw, round(rssi, 2), round(snr, 2), radio)


def _record_end(data, pos: int) -> int:
    """End of the whole, CRC-checked record starting at data[pos], else 0."""
    if pos + _HEAD.size > len(data):
        return 0
    magic, length, crc = _HEAD.unpack_from(data, pos)
    end = pos + _HEAD.size + length
    if magic != MAGIC or end > len(data) or length < _META.size + 2:
        return 0
    return end if zlib.crc32(data[pos + _HEAD.size:end]) == crc else 0


def _resync(data, pos: int) -> int:
    """Start of the next valid record after `pos`, or -1. A CRC-32 match at a magic is how a
    reader finds its footing again after a corrupt record (a false match is ~2^-32 per try)."""
    q = data.find(MAGIC, pos + 1)
    while q != -1:
        if _record_end(data, q):
            return q
        q = data.find(MAGIC, q + 1)
    return -1


def scan(data, max_records: int = -1):
    """Yields (pos, end, body) for each valid record of `data` and (pos, end, None) for each
    corrupt region that a valid record follows. A bad tail (a torn append, or a record still
    being written) ends the scan; the last `end` yielded says where it starts."""
    pos, n, got = 0, len(data), 0
    while pos < n and got != max_records:
        end = _record_end(data, pos)
        if end:
            yield pos, end, data[pos + _HEAD.size:end]
            got += 1
            pos = end
            continue
        nxt = _resync(data, pos)
        if nxt == -1:
            return
        yield pos, nxt, None
        pos = nxt


def iter_records(path: Path, start: int = 0, on_bad=None) -> Iterator[tuple[int, int, bytes, RxMeta]]:
    """Yields (offset, next_offset, frame, meta) from `start` to the last whole record, over
    corrupt records (on_bad(offset, next_offset) hears of each): one bad record never hides
    the good ones after it."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    for pos, end, body in scan(data):
        if body is None:
            if on_bad is not None:
                on_bad(start + pos, start + end)
            continue
        frame, meta = decode_body(body)
        yield start + pos, start + end, frame, meta


# --- segments -----------------------------------------------------------------------------
_SEALED = re.compile(r"^(?P<stem>.+)\.(?P<base>\d{20})$")
ACTIVE_NAME = "raw.log"


def sealed_name(active: Path, base: int) -> Path:
    return active.with_name(f"{active.name}.{base:020d}")


def base_file(active: Path) -> Path:
    return active.with_name(active.name + ".base")


def sealed_segments(active: Path) -> list[tuple[int, Path]]:
    """(base, path) of the rotated segments of the log whose active file is `active`, oldest first."""
    out = []
    try:
        names = os.listdir(active.parent)
    except FileNotFoundError:
        return []
    for name in names:
        m = _SEALED.match(name)
        if m and m["stem"] == active.name:
            out.append((int(m["base"]), active.parent / name))
    return sorted(out)


def active_base(active: Path) -> int:
    base = 0
    try:
        base = int(base_file(active).read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        pass
    sealed = sealed_segments(active)
    if sealed:
        b, p = sealed[-1]
        base = max(base, b + p.stat().st_size)
    return base


def segments(path: Path) -> list[tuple[int, Path]]:
    """(global base, file) in order for a log given as its directory, its active file, or one
    sealed segment. A file outside the naming scheme is a log of its own with base 0."""
    path = Path(path)
    if path.is_dir():
        path = path / ACTIVE_NAME
        if not path.exists() and not sealed_segments(path):
            raise SenError(f"no raw log in {path.parent}", f"give a directory holding {ACTIVE_NAME} or its segments")
    m = _SEALED.match(path.name)
    if m:
        return [(int(m["base"]), path)]
    out = sealed_segments(path)
    if path.exists():
        out.append((active_base(path), path))
    return out


def iter_log(path: Path, start: int = 0, on_bad=None) -> Iterator[tuple[int, int, bytes, RxMeta]]:
    """Every record of a log (see segments()) from global offset `start`, with global offsets."""
    for base, seg in segments(path):
        size = seg.stat().st_size
        if base + size <= start:
            continue
        hook = None if on_bad is None else (lambda a, b, base=base: on_bad(base + a, base + b))
        for a, b, frame, meta in iter_records(seg, max(0, start - base), hook):
            yield base + a, base + b, frame, meta


def read_batch(active: Path, start: int, max_records: int, max_bytes: int = 1 << 20):
    """Up to max_records whole records from global offset `start`, for tailing readers (the
    uplink publisher): reads within one segment, moving on at a sealed segment's end."""
    for base, seg in segments(active):
        try:
            size = seg.stat().st_size
        except FileNotFoundError:
            continue  # rotated or pruned under us: the next call sees the new names
        if base + size <= start and seg != active:
            continue
        out = []
        with open(seg, "rb") as f:
            f.seek(max(0, start - base))
            data = f.read(max_bytes)
        off0 = max(0, start - base) + base
        for pos, end, body in scan(data, max_records):
            if body is not None:  # a corrupt record is stepped over (the gateway quarantined it)
                frame, meta = decode_body(body)
                out.append((off0 + pos, off0 + end, frame, meta))
        return out
    return []


def log_end(active: Path) -> int:
    try:
        return active_base(active) + active.stat().st_size
    except FileNotFoundError:
        return active_base(active)


def _fsync_dir(d: Path):
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _next_midnight(t: float) -> float:
    lt = time.localtime(t)
    return time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday + 1, 0, 0, 0, 0, 0, -1))


class RawLogFull(OSError):
    """The disk is full (or the log cannot be written): nothing of the batch was kept."""


class RawLog:
    """Single-writer append-only log. `append` returns after fsync. Offsets are global
    (see the module docstring); `rotate_bytes`/`rotate_daily` seal the active file."""

    def __init__(self, path: Path, fsync: bool = True, rotate_bytes: int = 0, rotate_daily: bool = False):
        self.path = Path(path)
        self.fsync = fsync
        self.rotate_bytes = rotate_bytes
        self.rotate_daily = rotate_daily
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(exist_ok=True)
        except OSError as exc:
            full = disk_full_problem(self.path.parent, exc)
            raise SenError(f"cannot create raw log {self.path}: {full or exc.strerror}",
                           f"free space in {self.path.parent}" if full else
                           "set [gateway] data_dir to a writable directory") from None
        self.base = active_base(self.path)
        self.quarantined = 0  # corrupt regions of the active file, set aside in quarantine/
        good = self._check()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        if os.fstat(self._fd).st_size != good:
            os.ftruncate(self._fd, good)  # torn tail from a crash mid-append (kept in quarantine/)
            os.fsync(self._fd)
        self.size = good
        self.end = self.base + good
        # a non-empty active file started on the day it was last written at the latest
        self._rotate_at = _next_midnight(os.fstat(self._fd).st_mtime if good else time.time())

    def _check(self) -> int:
        """Scan the active file; set each corrupt region aside in quarantine/ (one line each,
        once) and return where the good records end. A corrupt record in the middle stays in
        place, so every offset the store and readers hold keeps its meaning; a bad tail is cut."""
        data = self.path.read_bytes()
        good = 0
        for pos, end, body in scan(data):
            if body is None:
                self._quarantine(data, pos, end, tail=False)
            good = end
        if good < len(data):
            self._quarantine(data, good, len(data), tail=True)
        return good

    def _quarantine(self, data, pos: int, end: int, tail: bool):
        self.quarantined += 1
        off = self.base + pos
        chunk = bytes(data[pos:end])
        qdir = self.path.parent / "quarantine"
        dest = qdir / f"{self.path.name}.{off:020d}.{zlib.crc32(chunk):08x}.bad"
        if dest.exists():
            return  # named at an earlier start
        try:
            qdir.mkdir(exist_ok=True)
            tmp = dest.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except OSError as exc:
            dest = f"nowhere ({exc.strerror})"
        what = "torn or corrupt tail (cut off)" if tail else "corrupt record(s) (stepped over; the records after it are kept)"
        _log.warning("raw log %s: %s at offset %d, %d bytes, quarantined to %s", self.path, what, off, len(chunk), dest)

    def append(self, items: list[tuple[bytes, RxMeta]]) -> list[tuple[int, int]]:
        """Write records and make them durable; returns global (offset, next_offset) per record.
        Raises RawLogFull (nothing kept, the file as before) when the disk refuses the write."""
        if self.size and self._rotation_due(0):
            self.rotate()
        spans, chunks, pos = [], [], self.end
        for frame, meta in items:
            rec = encode_record(frame, meta)
            chunks.append(rec)
            spans.append((pos, pos + len(rec)))
            pos += len(rec)
        data = b"".join(chunks)
        try:
            done = 0
            while done < len(data):  # a regular file may take a short write as the disk fills
                done += os.write(self._fd, data[done:])
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            self._undo()
            raise RawLogFull(exc.errno, f"cannot write raw log {self.path}: {exc.strerror}") from None
        self.size += len(data)
        self.end = pos
        if self._rotation_due(0):
            self.rotate()
        return spans

    def _undo(self):
        """Cut a partly written batch so the file ends on a whole record again."""
        try:
            os.ftruncate(self._fd, self.size)
            os.fsync(self._fd)
        except OSError:
            pass  # a torn tail is also cut on the next open

    def _rotation_due(self, extra: int) -> bool:
        if self.rotate_bytes and self.size + extra >= self.rotate_bytes:
            return True
        return self.rotate_daily and time.time() >= self._rotate_at

    def rotate(self):
        """Seal the active file as raw.log.<base> and start a new one at the current end."""
        if not self.size:
            self._rotate_at = _next_midnight(time.time())
            return
        if not self.fsync:
            os.fsync(self._fd)
        sealed = sealed_name(self.path, self.base)
        os.rename(self.path, sealed)
        _fsync_dir(self.path.parent)
        tmp = base_file(self.path).with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(str(self.end))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, base_file(self.path))
        old = self._fd
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(old)
        _fsync_dir(self.path.parent)
        self.base, self.size = self.end, 0
        self._rotate_at = _next_midnight(time.time())

    def prune(self, keep_from: int, retain_days: float, now: float | None = None) -> list[Path]:
        """Delete sealed segments last written more than retain_days ago, but only those that
        end at or before `keep_from` (the lowest offset a reader still needs)."""
        if not retain_days or retain_days <= 0:
            return []
        cutoff = (now if now is not None else time.time()) - retain_days * 86400
        gone = []
        for base, seg in sealed_segments(self.path):
            try:
                st = seg.stat()
            except FileNotFoundError:
                continue
            if base + st.st_size > keep_from:
                break  # this and every later segment still hold records someone needs
            if st.st_mtime < cutoff:
                seg.unlink()
                gone.append(seg)
        if gone:
            _fsync_dir(self.path.parent)
        return gone

    def read_from(self, offset: int):
        return iter_log(self.path, offset)

    def close(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
