"""What a radio backend knows about one received frame, handed along with its bytes."""
import math
import time
from dataclasses import dataclass, field

# What a LoRa radio can report (SX127x: RSSI -164..0 dBm, SNR -32..+32 dB), with margin.
RSSI_RANGE = (-200.0, 50.0)
SNR_RANGE = (-50.0, 50.0)


def clamp(v, lo_hi) -> float:
    """A finite number within lo_hi: the backend boundary's guard, so no inf/nan reaches the
    store, the status API, /metrics or a forwarder's JSON. nan (no measure) becomes the low end."""
    lo, hi = lo_hi
    try:
        v = float(v)
    except (TypeError, ValueError):
        return lo
    if math.isnan(v):
        return lo
    return min(max(v, lo), hi)


def sane(rssi, snr) -> tuple[float, float]:
    return clamp(rssi, RSSI_RANGE), clamp(snr, SNR_RANGE)


@dataclass(frozen=True, slots=True)
class RxMeta:
    gateway_id: str
    time: float = field(default_factory=time.time)  # unix seconds when the radio IRQ fired
    freq_hz: int = 921_400_000
    sf: int = 7
    bw_hz: int = 125_000
    rssi: float = 0.0  # dBm
    snr: float = 0.0  # dB
    radio: str = ""  # backend instance name, so copies from two hats on one gateway stay apart
    # a concentrator's own metadata for this copy (rxpk fields: tmst, time, chan, rfch, codr,
    # rssis, stat...), in memory only: the raw log keeps the fields above
    rx: dict | None = field(default=None, compare=False)

    def as_rx_info(self) -> dict:
        """ChirpStack-style per-gateway rx_info entry."""
        return {"gatewayId": self.gateway_id, "radio": self.radio, "time": self.time,
                "rssi": self.rssi, "snr": self.snr}
