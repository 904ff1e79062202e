# Frame counters that never repeat, not even after power loss at any instant.
#
# NVS holds `limit`: every counter below it may have been used. Before the node uses a
# counter >= limit it writes limit + BLOCK to NVS and commits, and only then uses the
# counter. RTC memory carries the next counter across deep sleep (no flash write per
# frame). After any restart RTC memory is not trusted: the node starts at the NVS limit,
# skipping the rest of the old block, and the gateway sees a forward jump with BOOT.
# A power cut before the commit leaves the old limit, which is still above every counter
# used; a cut after it leaves the new one.
import struct
import state as st

BLOCK = 256  # one NVS write per 256 frames: ~64 h at 15-minute intervals
KEY = "cnt_limit"
MAX = 0xFFFFFFFF


class Counter:
    def __init__(self, nvs, state, block=BLOCK):
        self.nvs = nvs
        self.state = state
        self.block = block
        self._b4 = bytearray(4)

    def nvs_limit(self):
        try:
            n = self.nvs.get_blob(KEY, self._b4)
        except OSError:
            return 0  # never provisioned a counter: start at 0
        if n != 4:
            return 0
        return struct.unpack(">I", self._b4)[0]

    def _reserve(self, new_limit):
        if new_limit > MAX:
            raise OverflowError("frame counter exhausted: re-provision the node with a new key")
        self.nvs.set_blob(KEY, struct.pack(">I", new_limit))
        self.nvs.commit()
        self.state.put("<I", st.O_CNT_LIMIT, new_limit)

    def start(self, trusted_rtc):
        """Call once per boot. trusted_rtc: woke from deep sleep with a valid RTC block."""
        if trusted_rtc:
            nxt = self.state.get("<I", st.O_NEXT_CNT)
            lim = self.state.get("<I", st.O_CNT_LIMIT)
            # The RTC copy of the limit can only trail NVS; a mismatch means corruption.
            if nxt <= lim and lim <= self.nvs_limit():
                return nxt
        nxt = self.nvs_limit()
        self.state.put("<I", st.O_NEXT_CNT, nxt)
        self.state.put("<I", st.O_CNT_LIMIT, nxt)
        return nxt

    def peek(self):
        return self.state.get("<I", st.O_NEXT_CNT)

    def take(self):
        """The next unused counter, reserved in NVS and marked used in RTC before return."""
        c = self.state.get("<I", st.O_NEXT_CNT)
        if c >= self.state.get("<I", st.O_CNT_LIMIT):
            self._reserve(c + self.block)
        self.state.put("<I", st.O_NEXT_CNT, c + 1)
        self.state.save()
        return c
