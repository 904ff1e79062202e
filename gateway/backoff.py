"""The one back-off every retrying loop uses (forwarders, the ingest's leader forwarders,
the uplink publisher, the ingest's store retries, the serial radio link): exponential from
`first_s`, capped, and with jitter where loops that failed together (one upstream, one
broker) must not retry together."""
import random


class Backoff:
    def __init__(self, first_s: float, max_s: float, max_doublings: int = 20, jitter: bool = True):
        self.first_s = first_s
        self.max_s = max_s
        self.max_doublings = max_doublings  # keeps 2 ** n small after days of failures
        self.jitter = jitter

    def delay(self, failures: int, cap: float | None = None) -> float:
        """Seconds to wait after the `failures`-th consecutive failure (1, 2, ...); `cap`
        lowers the ceiling for an upstream that wants quicker retries."""
        top = self.max_s if cap is None else min(self.max_s, cap)
        delay = min(top, self.first_s * 2 ** min(failures - 1, self.max_doublings))
        return delay * random.uniform(0.5, 1.0) if self.jitter else delay
