"""The virtual clock every part of an emulated world shares.

Time only moves when something advances it (firmware sleeps, radio time on air, the
scheduler), so a simulated day runs as fast as the CPU allows and every run repeats.
"""
import heapq
import itertools


class VirtualClock:
    def __init__(self, start_epoch_s: float = 1_767_225_600.0):  # 2026-01-01T00:00:00Z
        self.start_epoch_s = start_epoch_s
        self._now_us = 0
        self._timers = []  # (due_us, seq, callback)
        self._seq = itertools.count()

    def now_us(self) -> int:
        return self._now_us

    def now_s(self) -> float:
        return self._now_us / 1e6

    def epoch_s(self) -> float:
        """Wall-clock time of the simulated world (UTC seconds)."""
        return self.start_epoch_s + self._now_us / 1e6

    def call_at(self, due_us: int, callback) -> None:
        """Run callback() when the clock reaches due_us (never in the past)."""
        heapq.heappush(self._timers, (max(int(due_us), self._now_us), next(self._seq), callback))

    def advance_to(self, t_us: int) -> None:
        """Move time forward to t_us, firing due timers in order."""
        t_us = int(t_us)
        while self._timers and self._timers[0][0] <= t_us:
            due, _, cb = heapq.heappop(self._timers)
            self._now_us = max(self._now_us, due)
            cb()
        self._now_us = max(self._now_us, t_us)

    def advance(self, dt_us: int) -> None:
        self.advance_to(self._now_us + int(dt_us))
