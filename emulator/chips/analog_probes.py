"""Water probes behind the ESP32's ADC: each gives volts() at the ADC pin (before the ADC's
attenuation range clips it; the board's ADC shim does that). Transfer functions, with the
default parameters (every one can be set per station under [station.sensor.<name>]):

pH (name "ph"): glass electrode + amplifier offset to mid-rail (DFRobot SEN0161-V2 style)
    S(T)   = 0.19842·(T + 273.15) mV/pH                        Nernst slope, T = water_temp
    E      = offset_mv + drift_mv_per_day·days + slope_eff·S(T)·(7 − pH)      (mV)
    V      = bias_v + gain·E/1000
    offset_mv 4.0, slope_eff 0.97, gain 3.0, bias_v 1.5, drift_mv_per_day 0.0
    (pH 7 -> 1.512 V; pH 4 -> 2.03 V; pH 10 -> 0.99 V at 25 °C)

Conductivity ("ec"): cell + converter, proportional to the conductivity at water temperature
    EC_T   = EC25·(1 + α·(T − 25)),  α = 0.02 /°C               (world truth is EC25, µS/cm)
    V      = offset_v + k_v·EC_T, clipped at 3.2 V (amplifier rail)
    offset_v 0.020 V, k_v 0.001 V per µS/cm (0–3.2 V ≈ 0–3,180 µS/cm)

Turbidity ("turbidity"): DFRobot SEN0189 curve, sensor on 5 V, divider to the ADC
    NTU    = −1120.4·Vs² + 5742.3·Vs − 4352.9  for 2.5 ≤ Vs ≤ 4.2   (DFRobot wiki)
    Vs     = the root of that curve on its falling branch (4.2 V clear water, ~2.63 V at 3000 NTU;
             NTU clipped to 0..3000), V = divider·Vs, divider 0.66 (10 k / 20 k)

Level ("level"): 4–20 mA pressure transducer across a shunt
    I      = 4 mA + 16 mA·(level − zero_m)/range_m, held within 3.8–20.5 mA (NAMUR NE43)
    V      = I·shunt_ohm; range_m 5.0, zero_m 0.0, shunt_ohm 120 (0.48–2.40 V)

Water temperature ("water_temp"): NTC thermistor on the low side of a divider
    R(T)   = r25·exp(beta·(1/(T+273.15) − 1/298.15)),  V = vref·R/(R + r_fixed)
    r25 10 kΩ, beta 3950, r_fixed 10 kΩ, vref 3.3 V (25 °C -> 1.65 V)

Battery ("battery"): V = battery volts · divider (0.5)

Every probe adds Gaussian electronic noise (noise_v, 1 mV) from a seeded generator.
Faults: detached -> the input floats to ~0 V; stuck -> the last voltage repeats;
spikes -> the measured quantity jumps by ±magnitude (its own unit) with the given rate.
"""
import math
import random

from ..devices import AnalogSource

NERNST_MV_PER_K = 0.19842


def nernst_slope_mv(temp_c):
    return NERNST_MV_PER_K * (temp_c + 273.15)


class AnalogProbe(AnalogSource):
    DEFAULTS = {"noise_v": 0.001}
    name = "probe"

    def __init__(self, clock, truth, temp=None, faults=None, seed=0, **params):
        """truth(t_s) -> the measured quantity; temp(t_s) -> water °C (for pH and EC)."""
        unknown = set(params) - set(self.DEFAULTS) - set(AnalogProbe.DEFAULTS)
        if unknown:
            raise ValueError("%s: unknown parameter(s) %s; known: %s"
                             % (self.name, ", ".join(sorted(unknown)), ", ".join(sorted(self.DEFAULTS))))
        self.p = dict(AnalogProbe.DEFAULTS, **self.DEFAULTS)
        self.p.update({k: float(v) for k, v in params.items()})
        self.clock = clock
        self.truth = truth
        self.temp = temp
        self.faults = faults
        self._rng = random.Random(seed)
        self._last = None
        self.powered = True

    def set_powered(self, on):
        """The sensor rail: an unpowered probe's output sits near 0 V."""
        self.powered = bool(on)

    def volts(self):
        t_s = self.clock.now_s()
        f = self.faults(t_s) if self.faults else None
        if (f is not None and f.detached) or not self.powered:
            return abs(self._rng.gauss(0.0, 0.004))
        if f is not None and f.stuck and self._last is not None:
            return self._last
        x = self.truth(t_s)
        if f is not None and f.spike_rate > 0 and self._rng.random() < f.spike_rate:
            x += f.spike_magnitude * (1 if self._rng.random() < 0.5 else -1)
        temp_c = self.temp(t_s) if self.temp else 25.0
        v = self.transfer(x, temp_c, t_s) + self._rng.gauss(0.0, self.p["noise_v"])
        self._last = v
        return v

    def transfer(self, x, temp_c, t_s):
        raise NotImplementedError


class PHProbe(AnalogProbe):
    name = "ph"
    DEFAULTS = {"offset_mv": 4.0, "slope_eff": 0.97, "gain": 3.0, "bias_v": 1.5, "drift_mv_per_day": 0.0}

    def electrode_mv(self, ph, temp_c, t_s=0.0):
        p = self.p
        return p["offset_mv"] + p["drift_mv_per_day"] * t_s / 86400.0 + p["slope_eff"] * nernst_slope_mv(temp_c) * (7.0 - ph)

    def transfer(self, ph, temp_c, t_s):
        return self.p["bias_v"] + self.p["gain"] * self.electrode_mv(ph, temp_c, t_s) / 1000.0


class ECProbe(AnalogProbe):
    name = "ec"
    DEFAULTS = {"offset_v": 0.020, "k_v": 0.001, "alpha": 0.02, "rail_v": 3.2}

    def transfer(self, ec25, temp_c, t_s):
        p = self.p
        ec_t = max(0.0, ec25) * (1.0 + p["alpha"] * (temp_c - 25.0))
        return min(p["rail_v"], p["offset_v"] + p["k_v"] * ec_t)


class TurbidityProbe(AnalogProbe):
    name = "turbidity"
    DEFAULTS = {"divider": 0.66}
    A, B, C = 1120.4, 5742.3, 4352.9

    @classmethod
    def sensor_volts(cls, ntu):
        ntu = min(3000.0, max(0.0, ntu))
        disc = cls.B * cls.B - 4 * cls.A * (cls.C + ntu)
        return (cls.B + math.sqrt(max(disc, 0.0))) / (2 * cls.A)

    @classmethod
    def ntu_of_sensor_volts(cls, vs):
        return -cls.A * vs * vs + cls.B * vs - cls.C

    def transfer(self, ntu, temp_c, t_s):
        return self.p["divider"] * self.sensor_volts(ntu)


class LevelProbe(AnalogProbe):
    name = "level"
    DEFAULTS = {"range_m": 5.0, "zero_m": 0.0, "shunt_ohm": 120.0}

    def transfer(self, level_m, temp_c, t_s):
        p = self.p
        ma = 4.0 + 16.0 * (level_m - p["zero_m"]) / p["range_m"]
        ma = min(20.5, max(3.8, ma))
        return ma / 1000.0 * p["shunt_ohm"]


class WaterTempProbe(AnalogProbe):
    name = "water_temp"
    DEFAULTS = {"r25": 10000.0, "beta": 3950.0, "r_fixed": 10000.0, "vref": 3.3}

    def transfer(self, temp_c, _unused, t_s):
        p = self.p
        r = p["r25"] * math.exp(p["beta"] * (1.0 / (temp_c + 273.15) - 1.0 / 298.15))
        return p["vref"] * r / (r + p["r_fixed"])


class BatteryDivider(AnalogProbe):
    name = "battery"
    DEFAULTS = {"divider": 0.5}

    def transfer(self, volts, temp_c, t_s):
        return volts * self.p["divider"]


PROBES = {"ph": PHProbe, "ec": ECProbe, "turbidity": TurbidityProbe, "level": LevelProbe,
          "water_temp": WaterTempProbe, "battery": BatteryDivider}
