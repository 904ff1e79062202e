# Channel registry and quality flags, as in docs/frame-format.md section 4.
# name: (id, scale, min, max) with min/max in physical units.
CHANNELS = {
    "air_temp": (1, 0.1, -40, 85),
    "rh": (2, 0.5, 0, 100),
    "pressure": (3, 0.1, 300, 1100),
    "pm1": (4, 1, 0, 1000),
    "pm25": (5, 1, 0, 1000),
    "pm10": (6, 1, 0, 1000),
    "battery": (7, 0.02, 0, 6),
    "water_temp": (8, 0.01, -5, 60),
    "ph": (9, 0.01, 0, 14),
    "conductivity": (10, 1, 0, 200000),
    "turbidity": (11, 0.1, 0, 4000),
    "water_level": (12, 0.001, -10, 50),
    "dissolved_oxygen": (13, 0.01, 0, 20),
    "rain_tips": (14, 1, 0, 2147483647),
    "rain_depth": (15, 0.1, 0, 1000),
    "rain_intensity": (16, 0.1, 0, 1000),
    "ph_raw": (32, 0.1, 0, 3300),
    "ec_raw": (33, 0.1, 0, 3300),
    "turbidity_raw": (34, 0.1, 0, 3300),
    "level_raw": (35, 0.1, 0, 3300),
    "water_temp_raw": (36, 0.1, 0, 3300),
    "do_raw": (37, 0.1, 0, 3300),
    "pm1_cf1": (38, 1, 0, 1000),
    "pm25_cf1": (39, 1, 0, 1000),
    "pm10_cf1": (40, 1, 0, 1000),
    "battery_adc": (41, 1, 0, 65535),
    "probe_adc": (42, 1, 0, 65535),
}

Q_OK = 0
Q_MISSING = 1
Q_OUT_OF_RANGE = 2
Q_WARMING_UP = 4
Q_STUCK = 8
Q_CALIBRATING = 16


def scaled(name, value):
    """Physical value -> (scaled int or None, quality flags) for channel `name`.

    A value outside the channel's range is still sent, flagged, so the crew sees it.
    """
    ch = CHANNELS[name]
    if value is None:
        return None, Q_MISSING
    q = Q_OK
    if value < ch[2] or value > ch[3]:
        q = Q_OUT_OF_RANGE
    s = int(round(value / ch[1]))
    # int32 is the wire limit; clamp only what cannot be represented at all.
    if s > 2147483647:
        s = 2147483647
    elif s < -2147483648:
        s = -2147483648
    return s, q
