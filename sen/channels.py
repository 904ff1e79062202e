"""The channel registry of docs/frame-format.md section 4: the common core every host layer
(calibration, gateway, ingest) reads, so none of them imports another for it.

A test parses the spec's table and checks this file and firmware/channels.py against it.
"""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    name: str
    quantity: str
    unit: str
    scale: float
    min: float
    max: float

    @property
    def decimals(self) -> int:
        """Decimal places the scale carries, so 312 × 0.1 prints as 31.2, not 31.200000000000003."""
        text = repr(self.scale)
        return len(text.split(".")[1]) if "." in text else 0

    def physical(self, scaled: int) -> float:
        return round(scaled * self.scale, self.decimals)

    def in_range(self, scaled: int) -> bool:
        return self.min <= scaled * self.scale <= self.max


_TABLE = [
    (1, "air_temp", "air temperature", "°C", 0.1, -40, 85),
    (2, "rh", "relative humidity", "%", 0.5, 0, 100),
    (3, "pressure", "barometric pressure", "hPa", 0.1, 300, 1100),
    (4, "pm1", "PM1 mass concentration", "µg/m³", 1, 0, 1000),
    (5, "pm25", "PM2.5 mass concentration", "µg/m³", 1, 0, 1000),
    (6, "pm10", "PM10 mass concentration", "µg/m³", 1, 0, 1000),
    (7, "battery", "battery voltage", "V", 0.02, 0, 6),
    (8, "water_temp", "water temperature", "°C", 0.01, -5, 60),
    (9, "ph", "pH", "pH", 0.01, 0, 14),
    (10, "conductivity", "electrical conductivity", "µS/cm", 1, 0, 200000),
    (11, "turbidity", "turbidity", "NTU", 0.1, 0, 4000),
    (12, "water_level", "water level above gauge datum", "m", 0.001, -10, 50),
    (13, "dissolved_oxygen", "dissolved oxygen", "mg/L", 0.01, 0, 20),
    (14, "rain_tips", "tipping-bucket tips since node start (cumulative)", "count", 1, 0, 2147483647),
    (15, "rain_depth", "rain depth in the reporting interval", "mm", 0.1, 0, 1000),
    (16, "rain_intensity", "peak 1-minute rain intensity in the interval", "mm/h", 0.1, 0, 1000),
    (32, "ph_raw", "pH amplifier output at the ADC", "mV", 0.1, 0, 3300),
    (33, "ec_raw", "conductivity probe output at the ADC", "mV", 0.1, 0, 3300),
    (34, "turbidity_raw", "turbidity probe output at the ADC", "mV", 0.1, 0, 3300),
    (35, "level_raw", "level transducer output at the ADC", "mV", 0.1, 0, 3300),
    (36, "water_temp_raw", "water temperature probe output at the ADC", "mV", 0.1, 0, 3300),
    (37, "do_raw", "dissolved-oxygen probe output at the ADC", "mV", 0.1, 0, 3300),
    (38, "pm1_cf1", "PMS5003 PM1 CF=1 (uncorrected)", "µg/m³", 1, 0, 1000),
    (39, "pm25_cf1", "PMS5003 PM2.5 CF=1 (uncorrected)", "µg/m³", 1, 0, 1000),
    (40, "pm10_cf1", "PMS5003 PM10 CF=1 (uncorrected)", "µg/m³", 1, 0, 1000),
    (41, "battery_adc", "battery divider ADC reading", "counts", 1, 0, 65535),
    (42, "probe_adc", "generic probe ADC reading", "counts", 1, 0, 65535),
]

BY_ID: dict[int, Channel] = {row[0]: Channel(*row) for row in _TABLE}
BY_NAME: dict[str, Channel] = {c.name: c for c in BY_ID.values()}

Q_OK = 0
Q_MISSING = 1
Q_OUT_OF_RANGE = 2
Q_WARMING_UP = 4
Q_STUCK = 8
Q_CALIBRATING = 16
Q_ALL = Q_MISSING | Q_OUT_OF_RANGE | Q_WARMING_UP | Q_STUCK | Q_CALIBRATING
QFLAG_NAMES = {
    Q_MISSING: "missing",
    Q_OUT_OF_RANGE: "out_of_range",
    Q_WARMING_UP: "warming_up",
    Q_STUCK: "stuck",
    Q_CALIBRATING: "calibrating",
}


def qflag_names(q: int) -> list[str]:
    return [name for bit, name in QFLAG_NAMES.items() if q & bit] or ["ok"]
