"""Append-only raw log: every received frame with its rx metadata, made durable before
anything else looks at it.

The log is the gateway's write-ahead log. The store keeps the offset up to which the log
has been processed, in the same SQLite transaction as the results, so after a crash or
power loss the service re-processes the tail and nothing received is lost or doubled.

Record layout (little-endian): magic b"SR", u16 body length, u32 crc32(body), body.
body = f64 time, u32 freq_hz, u8 sf, u32 bw_hz, f32 rssi, f32 snr, u8 len(gateway_id),
gateway_id, u8 len(radio), radio, frame bytes.
A torn tail (crash mid-append) fails its length or CRC check and is cut off on open.
"""
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from sen.errors import SenError
from sen.gateway.rx_meta import RxMeta

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
    return body[i:], RxMeta(gw, t, freq, sf, bw, round(rssi, 2), round(snr, 2), radio)


def iter_records(path: Path, start: int = 0) -> Iterator[tuple[int, int, bytes, RxMeta]]:
    """Yields (offset, next_offset, frame, meta) from `start` to the last whole record."""
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    pos = 0
    n = len(data)
    while pos + _HEAD.size <= n:
        magic, length, crc = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if magic != MAGIC or end > n:
            return
        body = data[pos + _HEAD.size:end]
        if zlib.crc32(body) != crc:
            return
        frame, meta = decode_body(body)
        yield start + pos, start + end, frame, meta
        pos = end


def valid_length(path: Path) -> int:
    end = 0
    for _, end, _, _ in iter_records(path):
        pass
    return end


class RawLog:
    """Single-writer append-only log file. `append` returns after fsync."""

    def __init__(self, path: Path, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch(exist_ok=True)
        except OSError as exc:
            raise SenError(f"cannot create raw log {self.path}: {exc.strerror}",
                           "set [gateway] data_dir to a writable directory") from None
        good = valid_length(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        if os.fstat(self._fd).st_size != good:
            os.ftruncate(self._fd, good)  # torn tail from a crash mid-append
            os.fsync(self._fd)
        self.end = good

    def append(self, items: list[tuple[bytes, RxMeta]]) -> list[tuple[int, int]]:
        """Write records and make them durable; returns (offset, next_offset) per record."""
        spans, chunks, pos = [], [], self.end
        for frame, meta in items:
            rec = encode_record(frame, meta)
            chunks.append(rec)
            spans.append((pos, pos + len(rec)))
            pos += len(rec)
        os.write(self._fd, b"".join(chunks))
        if self.fsync:
            os.fdatasync(self._fd)
        self.end = pos
        return spans

    def read_from(self, offset: int):
        return iter_records(self.path, offset)

    def close(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
