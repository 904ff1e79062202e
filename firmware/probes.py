# Probe transfer functions, mV at the ADC -> quantity, for the analog front ends Sen uses.
# Parameters are the nominal design values; node.json `sensors.transfer.<channel>` overrides
# any of them (e.g. a crew's pH offset/slope). The gateway's calibration refines further
# from the raw channels sent in calibration mode.
import math

NERNST_MV_PER_K = 0.19842

DEFAULTS = {
    # glass electrode, amplifier biased to mid-rail: V = bias + gain * E
    "ph": {"bias_mv": 1500.0, "gain": 3.0, "offset_mv": 0.0, "slope_eff": 1.0},
    # conductivity converter: V = offset + k * EC_T; EC25 = EC_T / (1 + alpha (T - 25))
    "conductivity": {"offset_mv": 20.0, "k_mv": 1.0, "alpha": 0.02},
    # DFRobot SEN0189 on 5 V behind a divider to the ADC
    "turbidity": {"divider": 0.66},
    # 4-20 mA transducer across a shunt
    "water_level": {"shunt_ohm": 120.0, "range_m": 5.0, "zero_m": 0.0},
    # NTC on the low side of a divider
    "water_temp": {"r25": 10000.0, "beta": 3950.0, "r_fixed": 10000.0, "vref_mv": 3300.0},
    "dissolved_oxygen": {"a": 0.0, "b": 0.01},
}


def params(cfg, name):
    p = {}
    d = DEFAULTS[name]
    for k in d:
        p[k] = d[k]
    o = cfg.get("sensors", {}).get("transfer", {}).get(name)
    if o:
        for k in o:
            p[k] = o[k]
    return p


def convert(name, mv, p, temp_c=None):
    """Quantity from mV at the ADC; None when the input is outside the curve's domain."""
    t = 25.0 if temp_c is None else temp_c
    if name == "ph":
        e = (mv - p["bias_mv"]) / p["gain"]
        s = NERNST_MV_PER_K * (t + 273.15) * p["slope_eff"]
        return 7.0 - (e - p["offset_mv"]) / s
    if name == "conductivity":
        ec_t = (mv - p["offset_mv"]) / p["k_mv"]
        if ec_t < 0:
            ec_t = 0.0
        return ec_t / (1.0 + p["alpha"] * (t - 25.0))
    if name == "turbidity":
        vs = mv / 1000.0 / p["divider"]
        ntu = -1120.4 * vs * vs + 5742.3 * vs - 4352.9
        if vs > 4.2 or ntu < 0:
            ntu = 0.0  # clear water: the curve's top end
        return ntu
    if name == "water_level":
        ma = mv / p["shunt_ohm"]
        if ma < 3.6:
            return None  # NAMUR NE43: below 3.6 mA the loop is broken
        return p["zero_m"] + p["range_m"] * (ma - 4.0) / 16.0
    if name == "water_temp":
        if mv >= p["vref_mv"] or mv <= 0:
            return None
        r = p["r_fixed"] * mv / (p["vref_mv"] - mv)
        return 1.0 / (1.0 / 298.15 + math.log(r / p["r25"]) / p["beta"]) - 273.15
    if name == "dissolved_oxygen":
        return p["a"] + p["b"] * mv
    raise ValueError("no transfer for " + name)
