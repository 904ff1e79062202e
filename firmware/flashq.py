# The node's queue, clock and duty history in flash (docs/frame-format.md section 9):
# RTC memory (state.py) holds the working copy; this record is the truth after a power cut.
# It is rewritten at most twice per cycle: after the sample is taken (with the coming
# frame's air time reserved), and after an ACK.
#
# On the node the record is one NVS blob: NVS appends 32-byte entries to a log-structured
# page and erases a 4 KiB page only when one fills, so a rewrite costs ~1 ms of programming
# and wear spreads over the partition; a file on littlefs would allocate (and erase) a fresh
# 4 KiB block per rewrite, ~45 ms each. NVS commits are atomic (the old entry stays valid
# until the new one is complete). Without NVS (CPython tests) a file is rewritten atomically
# instead (a new file, then rename).
#
# Record: MAGIC | saved clock u32 | duty epoch + 13 buckets | queue counters | link/clock
# bytes | queue records | first 4 bytes of SHA-256 over all before.
import struct
import hashlib
import os
import state as st
from duty import Duty

FILE = "sq.bin"
NVS_KEY = "sq"
MAGIC = b"SQ01"
EPOCH_2000_UNIX = 946684800
# RTC-block ranges kept in the file
PARTS = ((st.O_DUTY_EPOCH, st.O_DUTY_BUCKETS + 2 * st.DUTY_BUCKETS),
         (st.O_Q_USED, st.O_Q_DROPPED + 4),
         (st.O_CLOCK, st.O_LAST_ACK + 4))


def _set_rtc(epoch):
    import time
    import machine
    t = time.gmtime(int(epoch))
    machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))


class FlashQ:
    def __init__(self, state, now, set_clock=None, path=FILE, nvs=None):
        self.state = state
        self.now = now
        self.set_clock = set_clock or _set_rtc
        self.path = path
        self.nvs = nvs
        self._hdr = bytearray(8)

    def max_bytes(self):
        n = 8 + st.QUEUE_BYTES + 4
        for a, b in PARTS:
            n += b - a
        return n

    def _read(self):
        if self.nvs is not None:
            buf = bytearray(self.max_bytes())
            try:
                n = self.nvs.get_blob(NVS_KEY, buf)
            except OSError:
                return None
            return bytes(buf[:n])
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def save(self):
        """Rewrite the record: one NVS blob and commit, or (no NVS) path.tmp renamed over
        path. A cut leaves the old or the new record whole."""
        s = self.state
        s.buf[st.O_CYCLE_WRITES] = min(s.buf[st.O_CYCLE_WRITES] + 1, 255)
        s.put("<I", st.O_FLASH_WRITES, s.get("<I", st.O_FLASH_WRITES) + 1)
        self._hdr[0:4] = MAGIC
        struct.pack_into("<I", self._hdr, 4, int(self.now()))
        mv = memoryview(s.buf)
        parts = [bytes(self._hdr)]
        for a, b in PARTS:
            parts.append(bytes(mv[a:b]))
        used = s.get("<H", st.O_Q_USED)
        if used:
            parts.append(bytes(mv[st.O_QUEUE:st.O_QUEUE + used]))
        h = hashlib.sha256()
        for p in parts:
            h.update(p)
        parts.append(h.digest()[:4])
        if self.nvs is not None:
            self.nvs.set_blob(NVS_KEY, b"".join(parts))
            self.nvs.commit()
            return
        tmp = self.path + ".tmp"
        # bytes, and no empty write: what every filesystem takes (the emulator's is strict)
        with open(tmp, "wb") as f:
            for p in parts:
                f.write(p)
        os.rename(tmp, self.path)

    def restore(self):
        """After a power-on (no valid RTC block): load the file into the RTC block, set the
        clock to its saved time, unsynced, and hold its samples back until a TIME comes.
        Returns the number of samples restored, or -1 without a usable file."""
        raw = self._read()
        if raw is None:
            return -1
        n = len(raw)
        if n < 12 or raw[0:4] != MAGIC or hashlib.sha256(memoryview(raw)[:n - 4]).digest()[:4] != raw[n - 4:]:
            return -1
        s = self.state
        saved = struct.unpack_from("<I", raw, 4)[0]
        p = 8
        for a, b in PARTS:
            s.buf[a:b] = raw[p:p + b - a]
            p += b - a
        used = s.get("<H", st.O_Q_USED)
        if p + used + 4 != n or used > st.QUEUE_BYTES:
            s.reset()
            return -1
        s.buf[st.O_QUEUE:st.O_QUEUE + used] = raw[p:p + used]
        s.buf[st.O_CLOCK] &= 2  # bit 1: synced before, in an earlier session
        s.buf[st.O_CYCLE_WRITES] = 0
        for rp, epoch, fl, ctr, k in s.q_recs():
            s.q_mark(rp, fl | st.QF_OLD)
        s.put("<I", st.O_RESTORED_AT, saved)
        self.set_clock(saved)
        return s.q_count()

    def synced(self):
        return self.state.buf[st.O_CLOCK] & 1 == 1

    def holding_old(self):
        if self.synced():
            return False
        for p, epoch, fl, ctr, n in self.state.q_recs():
            if fl & st.QF_OLD:
                return True
        return False

    def sync(self, true_now):
        """A downlink TIME: set the clock to `true_now` (node epoch, s) and move every sample
        taken with the unsynced clock (and the duty history, the next cycle's slot) by the
        clock's error. Returns the error in seconds."""
        s = self.state
        err = int(true_now - self.now())
        for p, epoch, fl, ctr, n in s.q_recs():
            if fl & st.QF_UNSYNCED:
                s.q_mark(p, fl & ~(st.QF_UNSYNCED | st.QF_OLD), None, max(0, epoch + err))
            elif fl & st.QF_OLD:
                s.q_mark(p, fl & ~st.QF_OLD)
        if err:
            self._rebase_duty(int(true_now))
        nxt = s.get("<I", st.O_NEXT_CYCLE)
        if nxt and err:
            s.put("<I", st.O_NEXT_CYCLE, max(nxt + err, 0))
        if err:
            self.set_clock(true_now)
        s.put("<I", st.O_RESTORED_AT, 0)
        s.buf[st.O_CLOCK] = 3  # synced now, and known to have a gateway that sends TIME
        return err

    def _rebase_duty(self, true_now):
        """The duty history across a clock jump. Buckets from before the power-on were kept
        on a synced clock: they age by the jump. Buckets of this session (any reaching past
        the restored time) were spent on the unsynced clock, which ran at the true rate: they
        keep their age. Whole buckets, so the overlap errs on the legal side."""
        s = self.state
        d = Duty(s)
        d._roll(int(self.now()))
        start = s.get("<I", st.O_DUTY_EPOCH) - 1
        ra = s.get("<I", st.O_RESTORED_AT)
        cur = true_now - true_now % 300
        k = (cur - start) // 300 if cur > start else 0
        n = st.DUTY_BUCKETS
        new = [0] * n
        for i in range(n):
            v = s.get("<H", st.O_DUTY_BUCKETS + 2 * i)
            if start - 300 * i + 300 > ra:
                new[i] += v
            elif i + k < n:
                new[i + k] += v
        for i in range(n):
            s.put("<H", st.O_DUTY_BUCKETS + 2 * i, min(new[i], 65535))
        s.put("<I", st.O_DUTY_EPOCH, cur + 1)
