"""What a radio backend knows about one received frame, handed along with its bytes."""
from dataclasses import dataclass, field
import time


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
