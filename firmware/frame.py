# Sen frame v1: uplink encoder and downlink decoder (docs/frame-format.md).
# MicroPython: writes into one preallocated buffer; HMAC is built on hashlib.sha256
# because the device has no hmac module.
import struct
import hashlib

VERSION = 1
UP_CONFIRMED = 1
UP_BATCH = 2
UP_BOOT = 4
UP_FULLCNT = 8
DN_ACK = 1
DN_CONFIG = 2
DN_TIME = 4
DN_RANGE = 8
FULLCNT_EVERY = 16
MAX_FRAME = 222
MIC_LEN = 4
MAX_READINGS = 23
MAX_SAMPLES = 16
MAX_DT = 604800
CFG_INTERVAL = 1
CFG_CONFIRMED = 2
CFG_CALIBRATION = 3
CFG_SF = 4
CFG_BACKOFF = 5
CFG_ACK_EVERY = 6
# uint config keys: key -> (name, min, max)
_UINT_KEYS = {CFG_INTERVAL: ("interval_s", 60, 86400), CFG_SF: ("sf", 7, 12),
              CFG_BACKOFF: ("tx_backoff_db", 0, 20), CFG_ACK_EVERY: ("ack_every", 1, 16)}


class Mic:
    """HMAC-SHA256 truncated to 4 bytes, keyed once per node."""

    def __init__(self, key):
        if len(key) != 16:
            raise ValueError("node key must be 16 bytes")
        ipad = bytearray(64)
        opad = bytearray(64)
        for i in range(64):
            k = key[i] if i < 16 else 0
            ipad[i] = k ^ 0x36
            opad[i] = k ^ 0x5C
        self._ipad = bytes(ipad)
        self._opad = bytes(opad)
        self._c32 = bytearray(4)

    def compute(self, c32, data):
        struct.pack_into(">I", self._c32, 0, c32)
        h = hashlib.sha256(self._ipad)
        h.update(self._c32)
        h.update(data)
        inner = h.digest()
        h = hashlib.sha256(self._opad)
        h.update(inner)
        return h.digest()[:MIC_LEN]


class Framer:
    """Streams one uplink into a reused buffer.

    f.begin(counter, flags); [f.sample(dt)]; f.reading(ch, value, q) ...; f.end()
    Readings must come in ascending channel order (deterministic CBOR).
    """

    def __init__(self, node_id, key):
        if not 0 < node_id < 65536:
            raise ValueError("node id must be 1..65535")
        self.node_id = node_id
        self.mic = Mic(key)
        self.buf = bytearray(MAX_FRAME)
        self.n = 0
        self.counter = 0
        self._batch = False
        self._arr_pos = -1
        self._n_samples = 0
        self._map_pos = -1
        self._n_readings = 0
        self._last_ch = -1
        self._last_dt = -1

    def _put(self, b):
        if self.n >= MAX_FRAME - MIC_LEN:
            raise ValueError("frame too long")
        self.buf[self.n] = b
        self.n += 1

    def _head(self, major, v):
        if v < 24:
            self._put(major | v)
        elif v < 0x100:
            self._put(major | 24)
            self._put(v)
        elif v < 0x10000:
            self._put(major | 25)
            self._put(v >> 8)
            self._put(v & 0xFF)
        else:
            self._put(major | 26)
            self._put((v >> 24) & 0xFF)
            self._put((v >> 16) & 0xFF)
            self._put((v >> 8) & 0xFF)
            self._put(v & 0xFF)

    def _int(self, v):
        if v >= 0:
            self._head(0x00, v)
        else:
            self._head(0x20, -1 - v)

    def begin(self, counter, flags=0):
        if not 0 <= counter <= 0xFFFFFFFF:
            raise ValueError("counter out of 32-bit range")
        # BOOT, an ACK request (decodable even by a gateway that missed the BOOT frame), and
        # one frame in 16 carry the whole counter (docs/frame-format.md section 1)
        if flags & (UP_BOOT | UP_CONFIRMED) or counter % FULLCNT_EVERY == 0:
            flags |= UP_FULLCNT
        self.counter = counter
        self._batch = bool(flags & UP_BATCH)
        b = self.buf
        b[0] = (VERSION << 5) | (flags & 0x0F)
        b[1] = self.node_id >> 8
        b[2] = self.node_id & 0xFF
        if flags & UP_FULLCNT:
            struct.pack_into(">I", b, 3, counter)
            self.n = 7
        else:
            struct.pack_into(">H", b, 3, counter & 0xFFFF)
            self.n = 5
        self._map_pos = -1
        self._n_samples = 0
        self._last_dt = -1
        if self._batch:
            self._arr_pos = self.n
            self._put(0x80)  # array header, count patched as samples are added
        else:
            self._open_map()

    def _open_map(self):
        self._map_pos = self.n
        self._n_readings = 0
        self._last_ch = -1
        self._put(0xA0)

    def _close_map(self):
        if self._map_pos >= 0:
            if self._n_readings == 0:
                raise ValueError("sample has no readings")
            self.buf[self._map_pos] = 0xA0 | self._n_readings

    def sample(self, dt):
        """Start a batch sample taken `dt` seconds before sending (oldest first)."""
        if not self._batch:
            raise ValueError("sample() needs the BATCH flag")
        if not 0 <= dt <= MAX_DT or (self._last_dt >= 0 and dt >= self._last_dt):
            raise ValueError("dt must decrease along the batch")
        self._close_map()
        if self._n_samples == MAX_SAMPLES:
            raise ValueError("batch too long")
        self._n_samples += 1
        self.buf[self._arr_pos] = 0x80 | self._n_samples
        self._last_dt = dt
        self._put(0x82)
        self._int(dt)
        self._open_map()

    def reading(self, ch, value, q=0):
        """Add one reading: scaled int (or None) with quality flags q."""
        if self._map_pos < 0:
            raise ValueError("no open sample")
        if ch <= self._last_ch:
            raise ValueError("channels must ascend")
        if self._n_readings == MAX_READINGS:
            raise ValueError("too many readings")
        self._last_ch = ch
        self._n_readings += 1
        self._head(0x00, ch)
        if q:
            self._put(0x82)
            if value is None:
                self._put(0xF6)
            else:
                self._int(value)
            self._head(0x00, q)
        elif value is None:
            raise ValueError("a missing value needs a quality flag")
        else:
            self._int(value)

    def end(self):
        """Close the frame, append the MIC; returns a memoryview valid until the next begin()."""
        self._close_map()
        n = self.n
        mic = self.mic.compute(self.counter, memoryview(self.buf)[:n])
        self.buf[n:n + MIC_LEN] = mic
        self.n = n + MIC_LEN
        return memoryview(self.buf)[:self.n]

    def encode(self, counter, flags, samples):
        """Whole frame at once: samples is [(dt, [(ch, value, q), ...]), ...]; dt ignored unless BATCH."""
        self.begin(counter, flags)
        for dt, readings in samples:
            if self._batch:
                self.sample(dt)
            for r in readings:
                self.reading(r[0], r[1], r[2])
        return bytes(self.end())


def _cbor_head(buf, i, end):
    if i >= end:
        raise ValueError("bad_config")
    ib = buf[i]
    major = ib >> 5
    info = ib & 0x1F
    i += 1
    if info < 24:
        return major, info, i
    if info == 24 and i + 1 <= end:
        return major, buf[i], i + 1
    if info == 25 and i + 2 <= end:
        return major, (buf[i] << 8) | buf[i + 1], i + 2
    if info == 26 and i + 4 <= end:
        return major, struct.unpack_from(">I", buf, i)[0], i + 4
    raise ValueError("bad_config")


def parse_downlink(frame, node_id, mic, counter, extra=None):
    """Check a downlink for this node and the uplink `counter` it must acknowledge.

    Returns (flags, config dict). Raises ValueError(reason) for anything else.
    extra: a list of 2 the gateway's TIME (Unix s) and RANGE bitmap go into (None when
    the downlink has no such field), so callers that want them need no other return shape.
    """
    n = len(frame)
    if n < 11:
        raise ValueError("too_short")
    if n > MAX_FRAME:
        raise ValueError("too_long")
    h = frame[0]
    if h >> 5 != VERSION:
        raise ValueError("bad_version")
    if not h & 0x10:
        raise ValueError("wrong_direction")
    if (frame[1] << 8) | frame[2] != node_id:
        raise ValueError("not_for_me")
    if struct.unpack_from(">I", frame, 3)[0] != counter:
        raise ValueError("replay")
    if mic.compute(counter, memoryview(frame)[:n - MIC_LEN]) != bytes(frame[n - MIC_LEN:]):
        raise ValueError("bad_mic")
    flags = h & 0x0F
    end = n - MIC_LEN
    i = 7
    t = None
    rng = None
    if flags & DN_TIME:
        if i + 4 > end:
            raise ValueError("too_short")
        t = struct.unpack_from(">I", frame, i)[0]
        i += 4
    if flags & DN_RANGE:
        if i + 2 > end:
            raise ValueError("too_short")
        rng = (frame[i] << 8) | frame[i + 1]
        i += 2
    config = {}
    if flags & DN_CONFIG:
        major, count, i = _cbor_head(frame, i, end)
        if major != 5:
            raise ValueError("bad_config")
        last = 0
        for _ in range(count):
            major, key, i = _cbor_head(frame, i, end)
            if major != 0 or key <= last:  # deterministic CBOR: keys ascend, no duplicates
                raise ValueError("bad_config")
            last = key
            if i < end and frame[i] in (0xF4, 0xF5):
                value = frame[i] == 0xF5
                i += 1
            else:
                major, value, i = _cbor_head(frame, i, end)
                if major != 0:
                    raise ValueError("bad_config")
            u = _UINT_KEYS.get(key)
            if u is not None and not isinstance(value, bool) and u[1] <= value <= u[2]:
                config[u[0]] = value
            elif key == CFG_CONFIRMED and isinstance(value, bool):
                config["confirmed"] = value
            elif key == CFG_CALIBRATION and isinstance(value, bool):
                config["calibration_mode"] = value
            else:
                raise ValueError("bad_config")
        if i != end:
            raise ValueError("bad_config")
    elif end != i:
        raise ValueError("trailing_bytes")
    if extra is not None:
        extra[0] = t
        extra[1] = rng
    return flags, config
