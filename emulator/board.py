"""The emulated board's host side: pins, buses, RTC, NVS, watchdog, sleep and power.

Board is this module's core (wiring, the bridge contract, CPU time, dispatch) with one mixin
per concern: board_pins, board_buses, board_adc, board_rtc (RTC, NVS, misc), board_sleep
(sleep and watchdog), board_report. Handlers are found by name (`_op_<op>`) on the class.

The MicroPython shims (emulator/mpy/: machine, esp32, time) send every operation here as
Board.call(op, args); the bridge (emulator/bridge.py) or sen.emulator.inprocess carries the
calls and acts on the signals this module raises (emulator/board_signals.py):
Wait (block the firmware in virtual time), DeepSleep, HardReset, PowerLoss, Interrupt.

API for other parts of the emulator
    b = Board(board_def, world, clock, fs_root, *, cpu_scale=1.0, settle_us=2000)
        board_def: dict (board_def.load_board, plus the bridge's _index/_name) or a board id.
        world: None, a scenario World (the board takes the _index-th station whose `board`
        is this board's id, builds its chips with chips.make_chips on the world's shared
        medium and schedules its power-loss windows), or any object with wire(board).
        fs_root: the flash directory; committed NVS is kept next to it in <fs_root>.nvs.json.
    b.attach(host); b.on_boot(cause); b.call(op, args); b.close()   -- the bridge contract
    Wiring chip models (without a world only an SX1276 and a 3.95 V battery are fitted):
      b.attach_i2c(sda, scl, dev)           dev: devices.I2CDevice with .address
      b.attach_spi(sck, mosi, miso, cs, dev, reset=None)   dev: devices.SPIDevice; bytes
                                            written while CS is low form one transfer()
      b.attach_uart(tx, rx, dev)            tx/rx seen from the ESP32; dev: UARTDevice
                                            (optional .baud must match the firmware's)
      b.attach_pin(pin, listener)           PinListener; .watch(cb) is used when present,
                                            .driven(level) hears the ESP32, .released() (optional)
                                            hears an output let go in deep sleep
      b.attach_adc(pin, source)             AnalogSource (volts at the pin)
      b.attach_radio(sx)                    SX1276 model: wires SPI/RESET/DIO0/DIO1 from the
                                            board's [lora] table, meters its modes, counts frames
      b.set_load(channel, key)              e.g. set_load("pms", "pms_fan") from a chip model
      b.cut_power(off_ms=0)                 power cut now (scenario faults); meters "off"
      b.level(pin)                          the level on a pin now
    b.sx, b.pms, b.chips, b.station, b.meter (power_meter.PowerMeter), b.nvs (NvsStore),
    b.rtc_mem, b.cycles (closed cycle records), b.report() -> dict for emulator/report.py.

CPU time. MicroPython work between two shim calls is CPU time; each call carries it
(`cpu`, measured on the device side so the bridge's IPC is not counted). In the emulator it
is counted work units of the interpreter (emulator/work_counter.py: function entries and
loop iterations of its C code), the same on every host and under any load, and
    esp32_us = units * US_PER_UNIT_240 * (240 / cpu_MHz)
with US_PER_UNIT_240 calibrated on published ESP32 pystone figures (docs/boards.md).
Under CPython (sen.emulator.inprocess) it is host µs of the process CPU clock, scaled by
this host's speed on a reference loop (op "cpu_ref"), a rough figure that depends on the
host; cpu_scale=0 turns the charge off there. The charge moves the board's own
"busy-until" time forward; ticks_us() includes it, and it is settled into the shared clock
(a Wait) whenever it exceeds SETTLE_US or the firmware sleeps.
"""
import hashlib
from pathlib import Path

from . import board_signals as sig
from .board_adc import ADC_CONVERSION_US, ADC_FLOOR_MV, ADC_FULL_MV, AdcMixin  # noqa: F401  (kept as board.* names)
from .board_buses import _I2C_DEFAULT, _SPI_DEFAULT, _UART_DEFAULT, BusesMixin  # noqa: F401
from .board_def import load_board
from .board_pins import (IN, IRQ_FALLING, IRQ_RISING, OPEN_DRAIN, OUT, PULL_DOWN, PULL_UP,  # noqa: F401
                         PinsMixin, _Bad)
from .board_report import ReportMixin
from .board_rtc import EPOCH_2000_UNIX, RTC_MEM_MAX, RtcNvsMixin  # noqa: F401
from .board_sleep import (EXT0_WAKE, EXT1_WAKE, GPIO_WAKE, TIMER_WAKE, WAKE_DEEPSLEEP,  # noqa: F401
                          WAKE_SLEEP, SleepMixin)
from .clock import VirtualClock
from .nvs_store import NvsStore
from .power_meter import PowerMeter
from .radio_medium import world_medium
from .report import write_report as _write_report
from .work_counter import US_PER_UNIT_240

# Host-clock path only (CPython): the reference loop on an ESP32 at 240 MHz, from the same
# calibration as US_PER_UNIT_240 (28 units an iteration), and a typical host's figure.
ESP32_LOOP_US_240 = 28 * US_PER_UNIT_240
DEFAULT_HOST_LOOP_US = 0.23
SETTLE_US = 2000

RADIO_KEYS = {"tx": "radio_tx", "rxcont": "radio_rx", "rxsingle": "radio_rx", "cad": "radio_rx",
              "fsrx": "radio_rx", "fstx": "radio_standby", "stdby": "radio_standby",
              "sleep": "radio_sleep", "reset": "radio_sleep"}


class _Battery:
    """Default battery source when the world fits none: a LiPo at 3.95 V behind the divider."""

    def __init__(self, ratio, volts=3.95):
        self.ratio = ratio
        self.v = volts

    def volts(self):
        return self.v / self.ratio


class Board(PinsMixin, BusesMixin, AdcMixin, RtcNvsMixin, SleepMixin, ReportMixin):
    def __init__(self, board_def, world=None, clock=None, fs_root=None, *, cpu_scale=1.0,
                 settle_us=SETTLE_US, host_loop_us=None):
        if isinstance(board_def, str):
            board_def = load_board(board_def)
        self.defn = board_def
        self.name = board_def.get("_name", board_def["id"])
        self.clock = clock if clock is not None else VirtualClock()
        self.world = world
        self.fs_root = Path(fs_root) if fs_root else None
        self.cpu_scale = float(cpu_scale)
        self.settle_us = int(settle_us)
        self.host_loop_us = host_loop_us
        self.cpu_unit = "us"       # what the shim's `cpu` counts (op cpu_ref): "work" or "us"
        self.host = None
        nvs_path = None
        if self.fs_root is not None:
            nvs_path = self.fs_root.parent / (self.fs_root.name + ".nvs.json")
        self.nvs = NvsStore(nvs_path)
        self.meter = PowerMeter(board_def["current_ma"], self.clock.now_us())
        self.cycles = []
        self.sx = None
        self.pms = None
        self.chips = {}
        # wiring (physical, survives resets)
        self._listeners = {}     # pin -> [PinListener]
        self._i2c = {}           # (sda, scl) -> {addr: dev}
        self._spi = []           # [sck, mosi, miso, cs, dev]
        self._uart = {}          # (tx, rx) -> dev
        self._adc = {}           # pin -> AnalogSource
        self._spi_txn = {}       # id(dev) -> bytearray pending while CS is low
        # resistors fitted on the board (documented in the TOML as external_pull)
        self._ext_pull = {}
        for sect in ("rain_gauge", "maintenance"):
            t = board_def.get(sect, {})
            if t.get("external_pull") in ("up", "down"):
                self._ext_pull[t["pin"]] = 1 if t["external_pull"] == "up" else 0
        # state kept through resets but not power loss
        self.rtc_mem = b""
        self._rtc_offset_us = -self.clock.now_us()   # RTC µs since 2000 = now + offset
        self._powered = False
        self._wdt_timeout_us = None
        self._uid = hashlib.sha256(self.name.encode()).digest()[:6]
        self._cycle_info = None
        self.reset_cause = sig.PWRON_RESET
        self.wake_reason = 0
        self._boot_us = self._busy_until = self.clock.now_us()
        self._reset_boot_state()
        self._wire()

    # ------------------------------------------------------------------ wiring
    def attach_pin(self, pin, listener):
        self._listeners.setdefault(pin, []).append(listener)
        if hasattr(listener, "watch"):
            listener.watch(lambda level, p=pin: self._pin_event(p))

    def attach_i2c(self, sda, scl, dev):
        self._i2c.setdefault((sda, scl), {})[dev.address] = dev

    def attach_spi(self, sck, mosi, miso, cs, dev, reset=None):
        self._spi.append([sck, mosi, miso, cs, dev])
        if reset is not None and hasattr(dev, "nreset"):
            self.attach_pin(reset, dev.nreset)

    def attach_uart(self, tx, rx, dev):
        self._uart[(tx, rx)] = dev
        if hasattr(dev, "awake"):   # a PMS5003 model: meter its fan
            self.pms = dev
            self._update_pms_load()

    def attach_adc(self, pin, source):
        self._adc[pin] = source

    def attach_radio(self, sx):
        lora = self.defn["lora"]
        self.sx = sx
        self.attach_spi(lora["sck"], lora["mosi"], lora["miso"], lora["cs"], sx, reset=lora["reset"])
        if hasattr(sx, "dio"):
            self.attach_pin(lora["dio0"], sx.dio[0])
            if lora.get("dio1") is not None:
                self.attach_pin(lora["dio1"], sx.dio[1])
        if hasattr(sx, "mode_watchers"):
            sx.mode_watchers.append(lambda mode: self.set_load("radio", RADIO_KEYS.get(mode, "radio_standby")))
            self.set_load("radio", RADIO_KEYS.get(sx.mode_name(), "radio_sleep"))

    def set_load(self, channel, key):
        self.meter.set(channel, key if self._powered or channel == "mcu" else None, self.clock.now_us())

    def _wire(self):
        """Fit the chip models. A world with wire(board) does it itself; a scenario World
        gets its station's chips from chips.make_chips (station = the n-th station whose
        board is this board's id, n = board_def["_index"]); otherwise only the radio."""
        self.station = None
        if self.world is not None and hasattr(self.world, "wire"):
            self.world.wire(self)
        elif self.world is not None and hasattr(self.world, "stations"):
            self._wire_station()
        if self.sx is None:
            from .chips.sx1276 import SX1276  # lazy: the chips package loads numpy (start-up)
            self.attach_radio(SX1276(self.clock, name=self.name + ".sx1276"))
        adc = self.defn["adc"]
        if adc["battery"] not in self._adc:
            self.attach_adc(adc["battery"], _Battery(adc["battery_ratio"]))

    def _wire_station(self):
        from .chips import make_chips  # lazy: numpy, needed only with a world (start-up)
        stations = list(self.world.stations.values())
        mine = [s for s in stations if s.board == self.defn["id"]] or stations
        idx = int(self.defn.get("_index", 0))
        if idx >= len(mine):
            return
        st = self.station = mine[idx]
        medium = world_medium(self.world, self.clock)
        self.attach_chips(make_chips(self.defn, st, self.world, self.clock, medium,
                                     radio_name=self.defn.get("_radio_name")))
        t0 = self.clock.now_us()
        for start_s, end_s in self.world.power_loss_windows(st.id):
            off_ms = int((end_s - start_s) * 1000)
            self.clock.call_at(t0 + int(start_s * 1e6), lambda off=off_ms: self.cut_power(off))

    def attach_chips(self, chips: dict) -> None:
        """Fit chip models (as chips.make_chips returns them) on this board's pins and buses."""
        d = self.defn
        self.chips = chips
        self.attach_radio(chips["sx1276"])
        if "bme280" in chips:
            self.attach_i2c(d["i2c"]["sda"], d["i2c"]["scl"], chips["bme280"])
        if "pms5003" in chips:
            pms = chips["pms5003"]
            self.attach_uart(d["pms5003"]["tx"], d["pms5003"]["rx"], pms)
            self.attach_pin(d["pms5003"]["set"], pms.set_pin)
        for name, pin in d["adc"]["probes"].items():
            if name in chips:
                self.attach_adc(pin, chips[name])
        if "battery" in chips:
            self.attach_adc(d["adc"]["battery"], chips["battery"])
        if "rain_gauge" in chips:
            self.attach_pin(d["rain_gauge"]["pin"], chips["rain_gauge"])

    def _update_pms_load(self):
        pms = getattr(self, "pms", None)
        if pms is not None:
            self.set_load("pms", "pms_fan" if pms.awake else "pms_sleep")

    # ------------------------------------------------------------------ bridge contract
    def attach(self, host):
        self.host = host

    def close(self):
        if self._cycle_info is not None:
            self._close_cycle()

    def cut_power(self, off_ms=0):
        """Power cut now (call from a clock callback): metered as off, then the bridge kills
        the interpreter and boots with PWRON_RESET after off_ms."""
        self._power_off()
        if self.host is not None:
            self.host.power_cut(off_ms)

    def _power_off(self):
        now = self.clock.now_us()
        for ch in list(self.meter.state):
            self.meter.set(ch, None, now)
        self._powered = False
        self.nvs.drop_pending()

    def on_boot(self, reset_cause):
        now = self.clock.now_us()
        if self._cycle_info is not None:
            self._close_cycle()
        if reset_cause == sig.PWRON_RESET:
            self.rtc_mem = b""
            self._rtc_offset_us = -now
            self._wdt_timeout_us = None
            if self.sx is not None and hasattr(self.sx, "reset"):
                self.sx.reset()   # the radio loses power too
        elif reset_cause != sig.SOFT_RESET:
            self._wdt_timeout_us = None
        wake = self._wake_reason_next if reset_cause == sig.DEEPSLEEP_RESET else 0
        self.nvs.drop_pending()
        self._reset_boot_state()
        self._powered = True
        self.reset_cause = reset_cause
        self.wake_reason = wake
        # ROM + bootloader + MicroPython start-up before boot.py: awake, not yet ticking
        boot_us = int(self.defn.get("boot_ms", 0) * 1000)
        self._boot_us = now + boot_us
        self._busy_until = now + boot_us
        if self._wdt_timeout_us is not None:
            self._wdt_deadline = now + self._wdt_timeout_us
            self._arm_wdt_timer()
        self.meter.set("mcu", self._active_key(), now)
        if self.sx is not None and hasattr(self.sx, "mode_name"):
            self.meter.set("radio", RADIO_KEYS.get(self.sx.mode_name(), "radio_sleep"), now)
        self._update_sensor_load()
        self._update_pms_load()
        self._cycle_info = {"reset_cause": reset_cause, "wake_reason": wake, "peak_heap": None,
                            "heap_base": None,
                            "cpu_raw": 0, "cpu_us": 0, "tx_from": len(getattr(self.sx, "tx_log", []))}

    def _reset_boot_state(self):
        self._pins = {}          # pin -> dict(mode, pull, out, trig, wake, hold)
        self._edge_last = {}     # pin -> last level seen (IRQ / wake pins)
        self._pending = []       # pin ids with IRQs to deliver
        self._handles = []       # bus handles: ("i2c", sda, scl) | ("spi", sck, mosi, miso) | ("uart", ...)
        self._uart_rx = {}
        self._spi_txn = {}
        self._ext0 = None
        self._ext1 = None
        self._freq_mhz = 160     # ESP32 port default after reset
        self._light = None       # (start_us, until_us) while in lightsleep
        self._wake_reason_next = 0
        self._wdt_deadline = None
        self._wdt_gen = 0
        self._sensor_pin_driven = None

    # ------------------------------------------------------------------ time
    def vnow(self):
        """Virtual time as the firmware sees it: the clock, or later while CPU work is unpaid."""
        return max(self.clock.now_us(), self._busy_until)

    def _charge_cpu(self, cpu):
        if not cpu or cpu < 0:
            return
        if self._cycle_info is not None:
            self._cycle_info["cpu_raw"] += cpu
        if self.cpu_scale <= 0:
            return
        if self.cpu_unit == "work":
            us = cpu * self.cpu_scale * US_PER_UNIT_240 * (240.0 / self._freq_mhz)
        else:
            ref = self.host_loop_us or DEFAULT_HOST_LOOP_US
            us = cpu * self.cpu_scale * ESP32_LOOP_US_240 * (240.0 / self._freq_mhz) / ref
        self._charge_busy(us)

    def _charge_busy(self, us):
        """CPU-active time: the firmware's work, or its wait on a peripheral (ADC conversions)."""
        if us <= 0:
            return
        if self._cycle_info is not None:
            self._cycle_info["cpu_us"] += us
        self._busy_until = self.vnow() + int(us)

    def _active_key(self):
        return "active_%dmhz" % self._freq_mhz

    # ------------------------------------------------------------------ dispatch
    def call(self, op, args):
        args = dict(args or {})
        self._charge_cpu(args.pop("cpu", 0))
        self._charge_busy(args.pop("adc", 0) * ADC_CONVERSION_US)
        if self._light is not None:
            self._end_lightsleep()
        self._check_wdt()
        fn = getattr(self, "_op_" + op, None)
        if fn is None:
            raise RuntimeError("unknown board op %r" % op)
        self._poll_edges()
        try:
            r = fn(args)
        except _Bad as e:
            return {"x": str(e)}
        if self._pending and not (type(r) is dict):
            r = {"v": r, "i": self._take_pending()}
        if self._busy_until - self.clock.now_us() >= self.settle_us:
            raise sig.Wait(self._busy_until, result=r, wake=self._settle_wake(r))
        return r

    def _settle_wake(self, r):
        def wake():
            self._poll_edges()
            if self._pending:
                if type(r) is dict:
                    out = dict(r)
                    out["i"] = list(out.get("i") or []) + self._take_pending()
                    return out
                return {"v": r, "i": self._take_pending()}
            return None
        return wake

    def _take_pending(self):
        p = self._pending
        self._pending = []
        return p


# ---------------------------------------------------------------------- CLI hooks
def load_world(scenario_path, clock):
    """The world for `sen emulate --scenario FILE` (None without a scenario)."""
    if scenario_path is None:
        return None
    from .scenario import load_scenario  # lazy: numpy, needed only with --scenario (start-up)
    world = load_scenario(scenario_path)
    if clock is not None and clock.now_us() == 0:
        clock.start_epoch_s = world.start_epoch_s   # the chips read truth at the world's time
    return world


def write_report(report_path, boards, clock):
    return _write_report(report_path, boards, clock)
