"""Charge and time per power state, per cycle, from a board's current table.

The board is modelled as independent channels, each in one state (a key of the board's
[current_ma] table, or None for "draws nothing"): "mcu" (active_80mhz, light_sleep,
deep_sleep, ...), "radio" (radio_tx, radio_rx, radio_standby, radio_sleep), "pms"
(pms_fan, pms_sleep), "sensors" (sensors). set() integrates every channel's current up to
the given virtual time, then changes one channel; all changes happen at exact virtual
times (clock callbacks, bus calls), so the integral is exact for piecewise-constant loads.
"""


def current_ma(table, key):
    """mA for a table key; active_<N>mhz between the 80 and 240 MHz figures is interpolated."""
    if key is None:
        return 0.0
    if key in table:
        return float(table[key])
    if key.startswith("active_") and key.endswith("mhz"):
        mhz = int(key[7:-3])
        lo, hi = table["active_80mhz"], table["active_240mhz"]
        return lo + (hi - lo) * (mhz - 80) / 160.0
    raise KeyError(key)


class PowerMeter:
    def __init__(self, table, t0_us=0):
        self.table = table
        self.state = {}          # channel -> key
        self.t = t0_us
        self.cycle_start = t0_us
        self.time_us = {}        # key -> µs in this cycle
        self.charge_mas = 0.0    # mA·s in this cycle
        self.total_mas = 0.0
        self.total_us = 0

    def advance(self, t_us):
        t_us = int(t_us)
        dt = t_us - self.t
        if dt <= 0:
            return
        ma = 0.0
        for key in self.state.values():
            if key is not None:
                ma += current_ma(self.table, key)
                self.time_us[key] = self.time_us.get(key, 0) + dt
        self.charge_mas += ma * dt / 1e6
        self.total_mas += ma * dt / 1e6
        self.total_us += dt
        self.t = t_us

    def add(self, key, us, ma):
        """A load of ma for us µs beside whatever else runs (e.g. the flash chip during a write
        while the CPU waits): counted in this cycle's time and charge."""
        us = int(us)  # whole µs, as the states' time: the charge split then adds up exactly
        self.time_us[key] = self.time_us.get(key, 0) + us
        self.charge_mas += ma * us / 1e6
        self.total_mas += ma * us / 1e6

    def set(self, channel, key, t_us):
        self.advance(t_us)
        self.state[channel] = key

    def get(self, channel):
        return self.state.get(channel)

    def close_cycle(self, t_us):
        """End the cycle at t_us; return its figures and start the next one."""
        self.advance(t_us)
        rec = {"start_us": self.cycle_start, "end_us": max(self.t, self.cycle_start),
               "state_ms": {k: v / 1000.0 for k, v in sorted(self.time_us.items())},
               "charge_mah": self.charge_mas / 3600.0}
        self.cycle_start = self.t
        self.time_us = {}
        self.charge_mas = 0.0
        return rec
