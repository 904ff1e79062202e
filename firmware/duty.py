# Duty-cycle budget: at most 1 % of any hour on air (Vietnam, Circular 08/2021).
# Airtime is kept in 5-minute buckets in RTC memory: the current one and the twelve
# before it, which together cover at least the last hour. A frame may go only if their
# total plus this frame stays within 36 s. Counting whole buckets overestimates the last
# hour slightly, which errs on the legal side.
import state as st

BUCKET_S = 300
HOUR_MS = 36000  # 1 % of 3600 s


class Duty:
    def __init__(self, state, limit_ms=HOUR_MS):
        self.state = state
        self.limit_ms = limit_ms

    def _roll(self, now):
        # The RTC starts at 0 (2000-01-01) on power-on without a time source, so the stored
        # bucket start is kept +1 and 0 means "never used".
        s = self.state
        b0 = s.get("<I", st.O_DUTY_EPOCH)
        cur = now - now % BUCKET_S
        if b0 == 0 or cur < b0 - 1:
            # First use, or the clock went backwards: forget the history (conservatively
            # keep the total in the current bucket).
            tot = self.used_ms() if b0 else 0
            for i in range(st.DUTY_BUCKETS):
                s.put("<H", st.O_DUTY_BUCKETS + 2 * i, 0)
            s.put("<H", st.O_DUTY_BUCKETS, min(tot, 65535))
            s.put("<I", st.O_DUTY_EPOCH, cur + 1)
            return
        shift = (cur - (b0 - 1)) // BUCKET_S
        if shift <= 0:
            return
        n = st.DUTY_BUCKETS
        for i in range(n - 1, -1, -1):
            src = i - shift
            v = s.get("<H", st.O_DUTY_BUCKETS + 2 * src) if src >= 0 else 0
            s.put("<H", st.O_DUTY_BUCKETS + 2 * i, v)
        s.put("<I", st.O_DUTY_EPOCH, cur + 1)

    def used_ms(self):
        t = 0
        for i in range(st.DUTY_BUCKETS):
            t += self.state.get("<H", st.O_DUTY_BUCKETS + 2 * i)
        return t

    def allows(self, now, toa_ms):
        self._roll(now)
        return self.used_ms() + toa_ms <= self.limit_ms

    def spend(self, now, toa_ms):
        self._roll(now)
        v = self.state.get("<H", st.O_DUTY_BUCKETS) + int(toa_ms + 0.999)
        self.state.put("<H", st.O_DUTY_BUCKETS, min(v, 65535))

    def refund(self, toa_ms):
        """Give back reserved air time that was not spent (retries not needed)."""
        v = self.state.get("<H", st.O_DUTY_BUCKETS) - int(toa_ms)
        self.state.put("<H", st.O_DUTY_BUCKETS, max(v, 0))
