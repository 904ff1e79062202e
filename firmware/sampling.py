# Sampling per node kind: drivers -> per-channel filters -> (name, value, qflags).
# A sensor that fails sets MISSING on its channels and the cycle goes on.
import time
import filters
import config
import state as st
from channels import CHANNELS, Q_MISSING, Q_OUT_OF_RANGE, Q_STUCK, Q_WARMING_UP, scaled

from nap import lightsleep

BATTERY_DIVIDER = 2.0


class Sampler:
    """Owns the drivers for one node. `sample()` returns a list of readings
    [(name, physical value or None, qflags)], and raw channels in calibration mode."""

    def __init__(self, board, cfg, state, feed=None):
        self.board = board
        self.cfg = cfg
        self.state = state
        self.feed = feed or (lambda: None)
        self.kind = cfg["kind"]
        self.errors = []  # short texts for the cycle log
        self.active_ms = 0
        self.warmup_ms = 0
        self._bme = None
        self._pms = None
        self._probes = None
        self._power = None
        self._battery = None
        self.rain = None

    # --- construction (lazy, so a missing bus only fails its own sensor) ---
    def _i2c(self):
        from machine import I2C, Pin
        b = self.board
        return I2C(config.board_get(b, "i2c", "id", 0),
                   sda=Pin(config.board_get(b, "i2c", "sda", 21)),
                   scl=Pin(config.board_get(b, "i2c", "scl", 22)),
                   freq=config.board_get(b, "i2c", "freq_hz", 100000))

    def bme(self):
        if self._bme is None:
            from drivers.bme280 import BME280
            addr = config.board_get(self.board, "i2c", "bme280_address", 0x76)
            self._bme = BME280(self._i2c(), addr)
        return self._bme

    def pms(self):
        if self._pms is None:
            from machine import UART, Pin
            from drivers.pms5003 import PMS5003
            b = self.board
            uart = UART(config.board_get(b, "pms5003", "uart_id", 2),
                        baudrate=config.board_get(b, "pms5003", "baud", 9600),
                        tx=config.board_get(b, "pms5003", "tx", 17),
                        rx=config.board_get(b, "pms5003", "rx", 16))
            sp = config.board_get(b, "pms5003", "set", None)
            self._pms = PMS5003(uart, Pin(sp, Pin.OUT, value=0) if sp is not None else None)
        return self._pms

    def probes(self):
        if self._probes is None:
            from drivers.analog_probe import AnalogProbe
            self._probes = {}
            pins = config.board_get(self.board, "adc", "probes", {})
            fitted = self.cfg["sensors"].get("probes", config.WATER_PROBES)
            os_n = self.cfg["sensors"].get("oversample", 32)
            for name in config.WATER_PROBES:
                pin = pins.get(config.BOARD_PROBE.get(name, name))
                if name in fitted and pin is not None:
                    self._probes[name] = AnalogProbe(pin, os_n)
        return self._probes

    def battery(self):
        if self._battery is None:
            from drivers.analog_probe import AnalogProbe
            pin = config.board_get(self.board, "adc", "battery", None)
            if pin is None:
                return None
            self._battery = AnalogProbe(pin, 16)
        return self._battery

    # --- helpers ---
    def _series(self, name, read, n, floor=0.0, pause_ms=0):
        f, n_cfg, alpha = config.filter_for(self.cfg, name)
        xs = []
        for i in range(n or n_cfg):
            try:
                xs.append(read())
            except Exception:
                xs.append(None)
            if pause_ms and i + 1 < (n or n_cfg):
                lightsleep(pause_ms)
        return xs

    def _reduce(self, name, xs, floor=0.0):
        f, n, alpha = config.filter_for(self.cfg, name)
        v = filters.reduce(f, xs, floor)
        if f == "ewma" and v is not None:
            ch = CHANNELS[name][0]
            v = filters.ewma(self.state.ewma_get(ch), v, alpha)
            self.state.ewma_put(ch, v)
        return v

    # --- kinds ---
    def power(self):
        if self._power is None:
            from drivers.analog_probe import ProbePower
            settle = self.cfg["sensors"].get("settle_ms", 100 if self.kind == "water" else 5)
            self._power = ProbePower(config.board_get(self.board, "sensor_power", "pin", None),
                                     settle, config.board_get(self.board, "sensor_power", "active", 1))
        return self._power

    def sample(self, safe=False):
        out = []
        self.errors = []
        if not safe and self.kind in ("air", "water"):
            try:
                self.power().on(lightsleep)
            except Exception:
                self.errors.append("sensor power")
            try:
                if self.kind == "air":
                    self._air(out)
                else:
                    self._water(out)
            finally:
                try:
                    self.power().off()
                except Exception:
                    pass
        elif not safe and self.kind == "rain":
            self._rain(out)
        self._batt(out)
        return out

    def _batt(self, out):
        bat = None
        try:
            bat = self.battery()
        except Exception:
            bat = None
        if bat is None:
            return
        div = config.board_get(self.board, "adc", "battery_ratio", BATTERY_DIVIDER)
        xs = self._series("battery", bat.read_mv, 3)
        v = filters.median_hampel(xs)
        if v is None:
            self.errors.append("battery")
            out.append(("battery", None, Q_MISSING))
        else:
            out.append(("battery", v * div / 1000, 0))
        if self.cfg["calibration_mode"] or self.cfg.get("send_raw"):
            try:
                out.append(("battery_adc", bat.read_counts(), 0))
            except Exception:
                out.append(("battery_adc", None, Q_MISSING))

    def _air(self, out):
        sens = self.cfg["sensors"]
        warm_s = sens.get("pms_warmup_s", 30)
        pms = None
        if sens.get("pms5003", True):
            try:
                pms = self.pms()
                pms.wake()
            except Exception:
                pms = None
                self.errors.append("pms5003")
        t0 = time.ticks_ms()
        # BME280 while the fan spins up.
        if sens.get("bme280", True):
            bme = None
            try:
                bme = self.bme()
                bme.init()
            except Exception:
                bme = None
                self.errors.append("bme280")
            if bme is None:
                for nm in ("air_temp", "rh", "pressure"):
                    out.append((nm, None, Q_MISSING))
            else:
                n = config.filter_for(self.cfg, "air_temp")[1]
                ts = []
                ps = []
                hs = []
                fp = None  # raw fingerprint while every conversion repeats exactly
                same = True
                i = 0
                while i < n:
                    i += 1
                    try:
                        t, p, h = bme.read()
                        r = bme.last_raw
                        f = r[0] ^ (r[1] << 7) ^ (r[2] << 13)
                        if fp is not None and f != fp:
                            same = False
                        fp = f
                    except Exception:
                        t = p = h = None
                        same = False
                    ts.append(t)
                    ps.append(p)
                    hs.append(h)
                    if i == n and same and fp is not None and n < 6 and n > 1:
                        # Identical raw T, P and H in every conversion happens by chance
                        # about once in 3000 cycles: confirm with three more.
                        n += 3
                bad = ts.count(None)
                if bad:
                    self.errors.append("bme280 %d/%d" % (bad, n))
                # Real conversions always differ in some LSB; identical raw data in six
                # conversions means the data registers stopped updating.
                q = 0
                if same and fp is not None and n >= 6:
                    q = Q_STUCK
                    self.errors.append("bme280 stuck")
                out.append(("air_temp", self._reduce("air_temp", ts, 0.01), q))
                out.append(("rh", self._reduce("rh", hs, 0.05), q))
                out.append(("pressure", self._reduce("pressure", ps, 0.02), q))
        if pms is not None:
            try:
                pms.passive()
            except Exception:
                pass
            # Warm-up in light sleep, in slices so the watchdog is fed.
            left = warm_s * 1000 - time.ticks_diff(time.ticks_ms(), t0)
            tw = time.ticks_ms()
            while left > 0:
                self.feed()
                step = left if left < 10000 else 10000
                lightsleep(step)
                left -= step
            self.warmup_ms = time.ticks_diff(time.ticks_ms(), tw)
            q_warm = Q_WARMING_UP if warm_s < 30 else 0
            n = config.filter_for(self.cfg, "pm25")[1]
            rows = []
            for i in range(n):
                try:
                    rows.append(pms.read())
                except Exception:
                    rows.append(None)
                if i + 1 < n:
                    lightsleep(sens.get("pms_spacing_ms", 1000))
                    self.warmup_ms += sens.get("pms_spacing_ms", 1000)
            try:
                pms.sleep()
            except Exception:
                pass
            good = len(rows) - rows.count(None)
            if good == 0:
                self.errors.append("pms5003")
            for idx, nm in ((3, "pm1"), (4, "pm25"), (5, "pm10")):
                v = self._reduce(nm, [None if r is None else r[idx] for r in rows])
                out.append((nm, v, q_warm if v is not None else 0))
            if self.cfg["calibration_mode"] or self.cfg.get("send_raw"):
                for idx, nm in ((0, "pm1_cf1"), (1, "pm25_cf1"), (2, "pm10_cf1")):
                    v = filters.trimmed_mean([None if r is None else r[idx] for r in rows])
                    out.append((nm, v, q_warm if v is not None else 0))
        elif sens.get("pms5003", True):
            for nm in ("pm1", "pm25", "pm10"):
                out.append((nm, None, Q_MISSING))

    def _water(self, out):
        import probes as pr
        probes = self.probes()
        temp_c = None
        for name in config.WATER_PROBES:  # water_temp first: pH and EC compensate with it
            p = probes.get(name)
            if p is None:
                continue
            xs = self._series(name, p.read_mv, 0)
            mv = filters.median_hampel(xs, filters.HAMPEL_K, 1.0)
            q = 0
            v = None
            if mv is None or mv < 5:
                # No conversion, or the input sits at 0 V: a detached probe floats there.
                self.errors.append(name)
                q = Q_MISSING
            else:
                if mv > 3090:
                    q = Q_OUT_OF_RANGE  # the ADC clips at ~3.1 V (11 dB)
                v = pr.convert(name, mv, pr.params(self.cfg, name), temp_c)
                if v is None:
                    q = Q_MISSING
                    self.errors.append(name)
                # 64 noisy conversions averaging to the same microvolt in every sample:
                # the input is frozen (noise alone makes that practically impossible).
                if len(xs) > 2 and xs.count(xs[0]) == len(xs):
                    q |= Q_STUCK
                    self.errors.append(name + " stuck")
                if v is not None and name == "water_temp":
                    temp_c = v
                f, n, alpha = config.filter_for(self.cfg, name)
                if v is not None and f == "ewma" and not q:
                    ch = CHANNELS[name][0]
                    v = filters.ewma(self.state.ewma_get(ch), v, alpha)
                    self.state.ewma_put(ch, v)
            out.append((name, v, q))
            if self.cfg["calibration_mode"] or self.cfg.get("send_raw"):
                out.append((config.RAW_CHANNEL[name], mv, (q & ~Q_MISSING) if mv is not None else Q_MISSING))

    def _rain(self, out):
        import rain
        r = rain.report(self.state, self.cfg, self.rain)
        q = 0
        held = False
        try:
            held = self.rain is not None and self.rain.active()
        except Exception:
            pass
        if held or self.state.buf[st.O_FLAGS] & st.F_RAIN_STUCK:
            # The switch stayed closed: tips during that time were not seen.
            q = Q_STUCK
            self.errors.append("rain gauge stuck")
        if not held:
            self.state.buf[st.O_FLAGS] &= ~st.F_RAIN_STUCK
        out.append(("rain_tips", r[0], q))
        out.append(("rain_depth", r[1], q))
        out.append(("rain_intensity", r[2], q))


def to_wire(readings, calibrating):
    """[(name, value, q)] -> [(channel id, scaled int or None, q)] sorted by id."""
    from channels import Q_CALIBRATING
    w = []
    for name, v, q in readings:
        s, q2 = scaled(name, v)
        q |= q2
        if s is None:
            q |= Q_MISSING
        if calibrating:
            q |= Q_CALIBRATING
        w.append((CHANNELS[name][0], s, q))
    w.sort()
    return w
