"""Where and when an ACK goes out through concentrator gateways: which gateway, which
concentrator timestamp, and each gateway's transmit duty cycle.

Timing. A Sen node listens from its TxDone for 400 ms plus an ACK header
(docs/node-config.md), IQ not inverted, on its uplink's channel and data rate. `tmst` in an
rxpk is the concentrator's 1 MHz counter at the end of reception, i.e. the node's TxDone,
so the ACK is scheduled at tmst + delay with delay >= `ack_delay_ms` (the node needs a few ms
to switch to receive). The forwarder's just-in-time queue refuses a downlink with less than
about 42.5 ms of lead (TOO_LATE), so the delay grows with the time already spent since the
uplink reached Sen: delay = max(ack_delay, elapsed + lead). If that passes the node's window
the ACK is not sent; the node's samples go again in its next cycle's batch (stored once).
"""
import time
from collections import deque
from dataclasses import dataclass, field

from sen.airtime import time_on_air_us

# A Sen node listens for an ACK that starts up to 100 ms + its radio.rx_late_ms (60 by
# default) after its TxDone (docs/frame-format.md section 5): a later ACK is never heard.
NODE_RX_LATE_MS = 60


def window_s(node_rx_late_ms: float = NODE_RX_LATE_MS) -> float:
    """Seconds after the uplink's end by which an ACK must start for the node to hear it."""
    return (100 + node_rx_late_ms) / 1000


WINDOW_S = window_s()
DUTY_WINDOW_S = 3600.0  # duty cycle counted over the last hour


@dataclass
class Copy:
    """One gateway's reception of an uplink."""
    eui: str
    tmst: int
    arrived: float  # time.monotonic() when its PUSH_DATA arrived
    rssi: float
    snr: float
    freq_hz: int
    sf: int
    bw_hz: int
    codr: str


@dataclass
class Heard:
    """Every copy of one uplink (same bytes) heard so far."""
    first: float
    copies: list[Copy] = field(default_factory=list)


class DutyCycle:
    """Transmit time of one gateway over a sliding hour, kept under `limit` (0.1 = 10 %)."""

    def __init__(self, limit: float):
        self.limit = limit
        self.sent: deque = deque()  # (monotonic time, seconds on air)
        self.total = 0.0

    def _expire(self, now):
        while self.sent and self.sent[0][0] < now - DUTY_WINDOW_S:
            self.total -= self.sent.popleft()[1]

    def used(self, now=None) -> float:
        self._expire(time.monotonic() if now is None else now)
        return self.total / DUTY_WINDOW_S

    def allows(self, airtime_s: float, now=None) -> bool:
        self._expire(time.monotonic() if now is None else now)
        return self.total + airtime_s <= self.limit * DUTY_WINDOW_S

    def add(self, airtime_s: float, now=None):
        self.sent.append((time.monotonic() if now is None else now, airtime_s))
        self.total += airtime_s

    def refund(self, airtime_s: float):
        """A downlink the gateway refused did not go on air."""
        for i in range(len(self.sent) - 1, -1, -1):
            if self.sent[i][1] == airtime_s:
                del self.sent[i]
                self.total -= airtime_s
                return


def coding_rate(codr: str) -> int:
    """'4/5'..'4/8' -> 1..4 (4/5 when unreadable)."""
    try:
        return min(4, max(1, int(codr.split("/")[1]) - 4))
    except (IndexError, ValueError, AttributeError):
        return 1


def airtime_s(length: int, c: Copy, preamble: int = 8) -> float:
    return time_on_air_us(length, sf=c.sf, bw_hz=c.bw_hz, cr=coding_rate(c.codr), preamble=preamble) / 1e6


def choose_delay(c: Copy, now: float, ack_delay_s: float, lead_s: float, window_s: float = WINDOW_S) -> float | None:
    """Seconds after the uplink's end to start the ACK through this copy's gateway, or None
    when the earliest safe start is past the node's window (window_s after its TxDone)."""
    delay = max(ack_delay_s, now - c.arrived + lead_s)
    return delay if delay <= window_s + 1e-9 else None


def txpk(c: Copy, payload: bytes, delay_s: float, power_dbm: int, preamble: int = 8) -> dict:
    import base64
    return {"imme": False, "tmst": (c.tmst + int(round(delay_s * 1e6))) & 0xFFFFFFFF,
            "freq": round(c.freq_hz / 1e6, 6), "rfch": 0, "powe": power_dbm, "modu": "LORA",
            "datr": f"SF{c.sf}BW{c.bw_hz // 1000}", "codr": c.codr, "ipol": False, "prea": preamble,
            "size": len(payload), "ncrc": False, "data": base64.b64encode(payload).decode()}


def ranked(copies, exclude=()) -> list[Copy]:
    """Best first: highest SNR, then RSSI (as the central ingest ranks copies)."""
    return sorted((c for c in copies if c.eui not in exclude), key=lambda c: (c.snr, c.rssi), reverse=True)
