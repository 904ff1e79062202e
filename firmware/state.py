# What the node keeps across deep sleep: one fixed-layout block in RTC memory.
# RTC memory survives deep sleep, soft reset and the watchdog, but not power loss, so
# anything that must survive power loss (the counter reservation) lives in NVS instead
# (see counter.py). The block is checked by magic and checksum: after power-on it holds
# garbage and the node starts fresh.
import struct

SIZE = 2048
MAGIC = b"SEN1"
# offsets
O_SUM = 4
O_NEXT_CNT = 8
O_CNT_LIMIT = 12
O_NEXT_CYCLE = 16
O_RAIN_TOTAL = 20
O_RAIN_REPORTED = 24
O_RAIN_MINUTE = 28
O_RAIN_MIN_COUNT = 32
O_RAIN_PEAK = 34
O_DUTY_EPOCH = 36
O_DUTY_BUCKETS = 40  # 13 x u16 ms of airtime per 5-minute bucket (now + the last hour)
DUTY_BUCKETS = 13
O_CRASHES = 66
O_SAFE_CYCLES = 67
O_FAIL_STREAK = 68
O_FLAGS = 69
O_CYCLE_NO = 72
O_EWMA_CH = 76  # 8 x u8 channel ids (0 = free)
O_EWMA_VAL = 84  # 8 x f32
EWMA_SLOTS = 8
O_Q_USED = 116  # u16 bytes used in the queue area
O_Q_COUNT = 118  # u8 samples queued
O_Q_DROPPED = 120  # u32 samples dropped because the queue was full (shown in the log)
O_RAIN_PIN = 124  # u8 rain gauge GPIO for tipwake.py (0xFF = none)
O_RAIN_CFG = 125  # bit 0 active low, bits 1-2 pull (0 up, 1 down, 2 none)
# 126..163 reserved
O_QUEUE = 164
QUEUE_BYTES = SIZE - O_QUEUE
QUEUE_MAX_SAMPLES = 48
NONE_VALUE = -2147483648  # a missing reading inside the queue

F_IN_CYCLE = 1  # a cycle started and has not reached its sleep: a crash if seen at boot
F_BOOT_PENDING = 2  # restarted, but no frame has carried BOOT yet
F_RAIN_STUCK = 4  # the gauge's switch was held closed during this interval


def _sum(buf):
    # Fletcher-16 over the header fields and the used part of the queue: cheap enough to
    # run every cycle, and catches power-on garbage.
    end = O_QUEUE + struct.unpack_from("<H", buf, O_Q_USED)[0]
    if end > SIZE:
        return -1
    a = 0
    b = 0
    for i in range(8, end):
        a = (a + buf[i]) % 255
        b = (b + a) % 255
    return (b << 8) | a


class State:
    def __init__(self, rtc=None):
        self.rtc = rtc
        self.buf = bytearray(SIZE)
        self.valid = False

    def load(self):
        """Read RTC memory; returns True if it held a valid block."""
        raw = b""
        if self.rtc is not None:
            try:
                raw = self.rtc.memory()
            except Exception:
                raw = b""
        if len(raw) == SIZE and raw[:4] == MAGIC:
            self.buf[:] = raw
            if struct.unpack_from("<H", self.buf, O_SUM)[0] == _sum(self.buf):
                self.valid = True
                return True
        self.reset()
        return False

    def reset(self):
        b = self.buf
        for i in range(SIZE):
            b[i] = 0
        b[0:4] = MAGIC
        self.valid = False

    def save(self):
        struct.pack_into("<H", self.buf, O_SUM, _sum(self.buf))
        if self.rtc is not None:
            self.rtc.memory(self.buf)

    def get(self, fmt, off):
        return struct.unpack_from(fmt, self.buf, off)[0]

    def put(self, fmt, off, v):
        struct.pack_into(fmt, self.buf, off, v)

    # --- EWMA slots ---
    def ewma_get(self, ch):
        for i in range(EWMA_SLOTS):
            if self.buf[O_EWMA_CH + i] == ch:
                return struct.unpack_from("<f", self.buf, O_EWMA_VAL + 4 * i)[0]
        return None

    def ewma_put(self, ch, v):
        free = -1
        for i in range(EWMA_SLOTS):
            c = self.buf[O_EWMA_CH + i]
            if c == ch:
                free = i
                break
            if c == 0 and free < 0:
                free = i
        if free < 0:
            return
        self.buf[O_EWMA_CH + free] = ch
        struct.pack_into("<f", self.buf, O_EWMA_VAL + 4 * free, v)

    # --- unsent-sample queue: records [epoch u32][n u8][n x (ch u8, q u8, value i32)] ---
    def q_count(self):
        return self.buf[O_Q_COUNT]

    def q_push(self, epoch, readings):
        """Queue one sample (readings: [(ch, value or None, q)]). Oldest samples are dropped
        when full: the newest data matters most to a city after an outage."""
        need = 5 + 6 * len(readings)
        if need > QUEUE_BYTES:
            return False
        while (self.get("<H", O_Q_USED) + need > QUEUE_BYTES
               or self.buf[O_Q_COUNT] >= QUEUE_MAX_SAMPLES):
            self.q_drop(1)
            self.put("<I", O_Q_DROPPED, self.get("<I", O_Q_DROPPED) + 1)
        used = self.get("<H", O_Q_USED)
        p = O_QUEUE + used
        struct.pack_into("<IB", self.buf, p, epoch, len(readings))
        p += 5
        for ch, v, q in readings:
            struct.pack_into("<BBi", self.buf, p, ch, q, NONE_VALUE if v is None else v)
            p += 6
        self.put("<H", O_Q_USED, used + need)
        self.buf[O_Q_COUNT] += 1
        return True

    def q_items(self, limit=255):
        """Yield (epoch, [(ch, value, q)...]) oldest first, at most `limit` samples."""
        p = O_QUEUE
        end = O_QUEUE + self.get("<H", O_Q_USED)
        k = 0
        while p < end and k < limit:
            epoch, n = struct.unpack_from("<IB", self.buf, p)
            p += 5
            rs = []
            for _ in range(n):
                ch, q, v = struct.unpack_from("<BBi", self.buf, p)
                p += 6
                rs.append((ch, None if v == NONE_VALUE else v, q))
            yield epoch, rs
            k += 1

    def q_drop(self, k):
        """Remove the k oldest samples."""
        p = O_QUEUE
        used = self.get("<H", O_Q_USED)
        end = O_QUEUE + used
        n_drop = 0
        while p < end and n_drop < k:
            n = self.buf[p + 4]
            p += 5 + 6 * n
            n_drop += 1
        rest = end - p
        self.buf[O_QUEUE:O_QUEUE + rest] = self.buf[p:end]
        self.put("<H", O_Q_USED, rest)
        self.buf[O_Q_COUNT] -= n_drop
