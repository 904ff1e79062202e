# What the node keeps across deep sleep: one fixed-layout block in RTC memory.
# RTC memory survives deep sleep, soft reset and the watchdog, but not power loss, so
# anything that must survive power loss (the counter reservation) lives in NVS instead
# (see counter.py). The block is checked by magic and checksum: after power-on it holds
# garbage and the node starts fresh.
import hashlib
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
# link, clock and flash-queue bookkeeping (link.py, flashq.py)
O_CLOCK = 126  # u8 bit 0: clock synced by a downlink TIME in this power session; bit 1: in any session
O_LINK_SF = 127  # u8 SF in use (0 = node.json's radio.sf)
O_LINK_BACKOFF = 128  # u8 tx_backoff_db in use
O_LINK_MISS = 129  # u8 ACK requests in a row without a valid downlink
O_SINCE_ASK = 130  # u16 frames since the last one that asked for an ACK
O_SINCE_DL = 132  # u16 frames since the last valid downlink
O_LINK_HEARD = 134  # u8 bit (sf - 7) set: a valid downlink came at that SF (back-off goes there)
O_FLASH_WRITES = 136  # u32 flash-queue rewrites since power-on (wear figure)
O_CYCLE_WRITES = 140  # u8 flash-queue rewrites in this cycle
O_LAST_ACK = 144  # u32 highest counter an ACK named, + 1 (0 = none)
O_RESTORED_AT = 148  # u32 the clock flash restored at power-on (0 = none this session)
O_LAST_LEVEL = 152  # i32 water level of the last sample taken, wire units (batching's jump test)
# 156..163 reserved
O_QUEUE = 164
QUEUE_BYTES = SIZE - O_QUEUE
QUEUE_MAX_SAMPLES = 48
NONE_VALUE = -2147483648  # a missing reading inside the queue

F_IN_CYCLE = 1  # a cycle started and has not reached its sleep: a crash if seen at boot
F_BOOT_PENDING = 2  # restarted, but no frame has carried BOOT yet
F_RAIN_STUCK = 4  # the gauge's switch was held closed during this interval

# queued sample flags
QF_UNSYNCED = 1  # taken with a clock no downlink TIME has set: rebased when one comes
QF_OLD = 2  # from an earlier power session: held back until the clock is synced
QF_SENT = 4  # carried by frame `ctr`, not yet named by an ACK
REC = 10  # record header: epoch u32, flags u8, ctr u32, n u8


def _sum(buf):
    # 16 bits of SHA-256 over the header fields and the used part of the queue: catches
    # power-on garbage. hashlib runs in C; the Fletcher-16 byte loop in Python it replaces
    # cost ~4 ms of CPU per save at 240 MHz, three or four saves a cycle.
    end = O_QUEUE + struct.unpack_from("<H", buf, O_Q_USED)[0]
    if end > SIZE:
        return -1
    d = hashlib.sha256(memoryview(buf)[8:end]).digest()
    return (d[0] << 8) | d[1]


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

    # --- unsent-sample queue: records [epoch u32][fl u8][ctr u32][n u8][n x (ch u8, q u8, value i32)] ---
    def q_count(self):
        return self.buf[O_Q_COUNT]

    def q_push(self, epoch, readings, fl=0):
        """Queue one sample (readings: [(ch, value or None, q)]). Oldest samples are dropped
        when full: the newest data matters most to a city after an outage."""
        need = REC + 6 * len(readings)
        if need > QUEUE_BYTES:
            return False
        while (self.get("<H", O_Q_USED) + need > QUEUE_BYTES
               or self.buf[O_Q_COUNT] >= QUEUE_MAX_SAMPLES):
            self.q_drop(1)
            self.put("<I", O_Q_DROPPED, self.get("<I", O_Q_DROPPED) + 1)
        used = self.get("<H", O_Q_USED)
        p = O_QUEUE + used
        struct.pack_into("<IBIB", self.buf, p, epoch, fl, 0, len(readings))
        p += REC
        for ch, v, q in readings:
            struct.pack_into("<BBi", self.buf, p, ch, q, NONE_VALUE if v is None else v)
            p += 6
        self.put("<H", O_Q_USED, used + need)
        self.buf[O_Q_COUNT] += 1
        return True

    def q_recs(self):
        """Yield (offset, epoch, flags, ctr, n readings) oldest first, no allocation per reading."""
        p = O_QUEUE
        end = O_QUEUE + self.get("<H", O_Q_USED)
        while p < end:
            epoch, fl, ctr, n = struct.unpack_from("<IBIB", self.buf, p)
            yield p, epoch, fl, ctr, n
            p += REC + 6 * n

    def q_readings(self, p):
        n = self.buf[p + 9]
        rs = []
        p += REC
        for _ in range(n):
            ch, q, v = struct.unpack_from("<BBi", self.buf, p)
            p += 6
            rs.append((ch, None if v == NONE_VALUE else v, q))
        return rs

    def q_mark(self, p, fl, ctr=None, epoch=None):
        """Set a record's flags (and the counter of the frame that carried it, its epoch)."""
        self.buf[p + 4] = fl
        if ctr is not None:
            struct.pack_into("<I", self.buf, p + 5, ctr)
        if epoch is not None:
            struct.pack_into("<I", self.buf, p, epoch)

    def q_items(self, limit=255):
        """Yield (epoch, [(ch, value, q)...]) oldest first, at most `limit` samples."""
        k = 0
        for p, epoch, fl, ctr, n in self.q_recs():
            if k >= limit:
                return
            yield epoch, self.q_readings(p)
            k += 1

    def q_drop(self, k):
        """Remove the k oldest samples."""
        n_drop = 0
        for p, epoch, fl, ctr, n in self.q_recs():
            if n_drop >= k:
                break
            self.buf[p + 4] = 0xFF
            n_drop += 1
        self.q_sweep()

    def q_sweep(self):
        """Remove every record whose flags were set to 0xFF (acknowledged or dropped)."""
        b = self.buf
        end = O_QUEUE + self.get("<H", O_Q_USED)
        r = w = O_QUEUE
        cnt = 0
        while r < end:
            size = REC + 6 * b[r + 9]
            if b[r + 4] != 0xFF:
                if w != r:
                    b[w:w + size] = b[r:r + size]
                w += size
                cnt += 1
            r += size
        self.put("<H", O_Q_USED, w - O_QUEUE)
        b[O_Q_COUNT] = cnt
