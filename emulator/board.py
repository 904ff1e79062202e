"""The emulated board's host side: pins, buses, RTC, NVS, watchdog, sleep and power.

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
from .board_def import ADC1, ADC2, GPIOS, INPUT_ONLY, RTC_GPIOS, load_board
from .clock import VirtualClock
from .devices import ENODEV
from .nvs_store import NvsStore
from .power_meter import PowerMeter
from .work_counter import US_PER_UNIT_240

# Host-clock path only (CPython): the reference loop on an ESP32 at 240 MHz, from the same
# calibration as US_PER_UNIT_240 (28 units an iteration), and a typical host's figure.
ESP32_LOOP_US_240 = 28 * US_PER_UNIT_240
DEFAULT_HOST_LOOP_US = 0.23
SETTLE_US = 2000
EPOCH_2000_UNIX = 946684800
RTC_MEM_MAX = 2048

IN, OUT, OPEN_DRAIN = 1, 3, 7
PULL_DOWN, PULL_UP = 1, 2
IRQ_RISING, IRQ_FALLING = 1, 2
WAKE_SLEEP, WAKE_DEEPSLEEP = 2, 4
EXT0_WAKE, EXT1_WAKE, TIMER_WAKE, GPIO_WAKE = 2, 3, 4, 7

# ADC full-scale input per attenuation (mV). ESP-IDF quotes the accurate ranges of the
# ESP32 as 100-950 / 100-1250 / 150-1750 / 150-2450 mV; with 11 dB the reading keeps rising
# (less linearly) to about 3.1 V. Inputs below the floor read 0.
ADC_FULL_MV = (950.0, 1250.0, 1750.0, 3100.0)
ADC_FLOOR_MV = (100.0, 100.0, 150.0, 150.0)

RADIO_KEYS = {"tx": "radio_tx", "rxcont": "radio_rx", "rxsingle": "radio_rx", "cad": "radio_rx",
              "fsrx": "radio_rx", "fstx": "radio_standby", "stdby": "radio_standby",
              "sleep": "radio_sleep", "reset": "radio_sleep"}

# default bus pins of the ESP32 port when firmware passes none
_I2C_DEFAULT = {0: (19, 18), 1: (26, 25)}           # id -> (sda, scl)
_SPI_DEFAULT = {1: (14, 13, 12), 2: (18, 23, 19)}   # id -> (sck, mosi, miso)
_UART_DEFAULT = {0: (1, 3), 1: (10, 9), 2: (17, 16)}  # id -> (tx, rx)


class _Bad(Exception):
    """Bad argument from firmware: becomes ValueError(msg) in MicroPython."""


class _Battery:
    """Default battery source when the world fits none: a LiPo at 3.95 V behind the divider."""

    def __init__(self, ratio, volts=3.95):
        self.ratio = ratio
        self.v = volts

    def volts(self):
        return self.v / self.ratio


class Board:
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
            from .chips.sx1276 import SX1276
            self.attach_radio(SX1276(self.clock, name=self.name + ".sx1276"))
        adc = self.defn["adc"]
        if adc["battery"] not in self._adc:
            self.attach_adc(adc["battery"], _Battery(adc["battery_ratio"]))

    def _wire_station(self):
        from .chips import make_chips
        stations = list(self.world.stations.values())
        mine = [s for s in stations if s.board == self.defn["id"]] or stations
        idx = int(self.defn.get("_index", 0))
        if idx >= len(mine):
            return
        st = self.station = mine[idx]
        medium = getattr(self.world, "_sen_medium", None)
        if medium is None:
            medium = self.world._sen_medium = self.world.make_medium(self.clock)
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
        if self._cycle_info is not None:
            self._cycle_info["cpu_us"] += us
        self._busy_until = self.vnow() + int(us)

    def _active_key(self):
        return "active_%dmhz" % self._freq_mhz

    # ------------------------------------------------------------------ dispatch
    def call(self, op, args):
        args = dict(args or {})
        self._charge_cpu(args.pop("cpu", 0))
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

    # ------------------------------------------------------------------ watchdog
    def _check_wdt(self):
        if self._wdt_deadline is not None and self.vnow() >= self._wdt_deadline:
            self._wdt_deadline = None
            self._wdt_timeout_us = None
            raise sig.HardReset(sig.WDT_RESET)

    def _arm_wdt_timer(self):
        # a clock step exactly at the deadline, so a sleeping firmware is reset on time
        self._wdt_gen += 1
        gen = self._wdt_gen
        self.clock.call_at(self._wdt_deadline, lambda: gen)

    def _op_wdt_init(self, a):
        ms = int(a["timeout_ms"])
        if ms < 1:
            raise _Bad("WDT timeout too short")
        self._wdt_timeout_us = ms * 1000
        self._wdt_deadline = self.vnow() + self._wdt_timeout_us
        self._arm_wdt_timer()

    def _op_wdt_feed(self, a):
        if self._wdt_timeout_us is not None:
            self._wdt_deadline = self.vnow() + self._wdt_timeout_us
            self._arm_wdt_timer()

    # ------------------------------------------------------------------ pins
    def _pin_state(self, pin):
        return self._pins.get(pin) or {"mode": None, "pull": None, "out": 0, "trig": 0, "wake": None, "hold": False}

    def _esp_level(self, pin):
        """What the ESP32 itself puts on the pin (None = high impedance)."""
        st = self._pins.get(pin)
        if st is None:
            return None
        if st["mode"] == OUT and (self._powered or st["hold"]):
            return st["out"]
        if st["mode"] == OPEN_DRAIN and st["out"] == 0 and (self._powered or st["hold"]):
            return 0
        return None

    def level(self, pin):
        """The level on a pin: a driving device wins, then the ESP32 output, then the pull."""
        for dev in self._listeners.get(pin, ()):
            lv = dev.level()
            if lv is not None:
                return 1 if lv else 0
        lv = self._esp_level(pin)
        if lv is not None:
            return lv
        st = self._pins.get(pin)
        if st is not None and st["pull"] == PULL_UP and pin not in INPUT_ONLY:
            return 1
        if st is not None and st["pull"] == PULL_DOWN and pin not in INPUT_ONLY:
            return 0
        return self._ext_pull.get(pin, 0)

    def _check_pin(self, pin):
        if type(pin) is not int or pin not in GPIOS:
            raise _Bad("invalid pin")
        return pin

    def _notify_driven(self, pin):
        lv = self._esp_level(pin)
        if lv is None:
            st = self._pins.get(pin)
            lv = 1 if (st and st["pull"] == PULL_UP) else None
        if lv is None:
            return
        for dev in self._listeners.get(pin, ()):
            if hasattr(dev, "driven"):
                dev.driven(lv)
        self._on_ctrl_pin(pin, lv)
        self._update_pms_load()

    def _op_pin_init(self, a):
        pin = self._check_pin(a["id"])
        st = self._pins.setdefault(pin, self._pin_state(pin))
        mode, pull = a.get("mode", -1), a.get("pull", -1)
        if mode is not None and mode != -1:
            if mode not in (IN, OUT, OPEN_DRAIN):
                raise _Bad("invalid pin mode")
            if mode != IN and pin in INPUT_ONLY:
                raise _Bad("pin can only be input")
            st["mode"] = mode
        if pull is not None and pull != -1:
            st["pull"] = pull
        if a.get("value") is not None:
            st["out"] = a["value"]
        if a.get("hold") is not None:
            st["hold"] = bool(a["hold"])
        self._notify_driven(pin)
        self._edge_last[pin] = self.level(pin)

    def _op_pin_value(self, a):
        return self.level(self._check_pin(a["id"]))

    def _op_pin_set(self, a):
        pin = self._check_pin(a["id"])
        st = self._pins.setdefault(pin, self._pin_state(pin))
        st["out"] = a["v"]
        self._notify_driven(pin)

    def _op_pin_irq(self, a):
        pin = self._check_pin(a["id"])
        st = self._pins.setdefault(pin, self._pin_state(pin))
        st["trig"] = int(a.get("trigger") or 0)
        st["wake"] = a.get("wake")
        self._edge_last[pin] = self.level(pin)

    def _pin_event(self, pin):
        self._poll_edge(pin)

    def _poll_edge(self, pin):
        st = self._pins.get(pin)
        lv = self.level(pin)
        last = self._edge_last.get(pin)
        self._edge_last[pin] = lv
        if st is None or last is None or lv == last or not self._powered:
            return
        trig = st["trig"]
        if (lv and trig & IRQ_RISING) or (not lv and trig & IRQ_FALLING):
            if len(self._pending) < 32:   # the port's schedule queue is finite too
                self._pending.append(pin)

    def _poll_edges(self):
        for pin, st in self._pins.items():
            if st["trig"]:
                self._poll_edge(pin)

    def _on_ctrl_pin(self, pin, lv):
        # chip selects: a rising CS ends the SPI transaction
        if lv:
            for sck, mosi, miso, cs, dev in self._spi:
                if cs == pin:
                    buf = self._spi_txn.pop(id(dev), None)
                    if buf:
                        dev.transfer(bytes(buf))
        sp = self.defn["sensor_power"]
        if pin == sp["pin"]:
            self._update_sensor_load()

    def _update_sensor_load(self):
        sp = self.defn["sensor_power"]
        on = self._powered and self._esp_level(sp["pin"]) == sp["active"]
        self.meter.set("sensors", "sensors" if on else None, self.clock.now_us())

    def _op_pulse_us(self, a):
        raise _Bad("time_pulse_us is not emulated")

    # ------------------------------------------------------------------ I2C
    def _handle(self, h, kind):
        if type(h) is not int or not 0 <= h < len(self._handles) or self._handles[h][0] != kind:
            raise _Bad("bus not initialised")
        return self._handles[h]

    def _op_i2c_init(self, a):
        bus_id = a.get("id", 0)
        sda, scl = a.get("sda"), a.get("scl")
        if bus_id >= 0:
            if bus_id not in _I2C_DEFAULT:
                raise _Bad("I2C(%s) doesn't exist" % bus_id)
            dsda, dscl = _I2C_DEFAULT[bus_id]
            sda = dsda if sda is None else sda
            scl = dscl if scl is None else scl
        elif sda is None or scl is None:
            raise _Bad("SoftI2C needs scl and sda")
        self._check_pin(sda)
        self._check_pin(scl)
        if a.get("h") is not None:
            self._handles[a["h"]] = ("i2c", sda, scl)
            return a["h"]
        self._handles.append(("i2c", sda, scl))
        return len(self._handles) - 1

    def _i2c_dev(self, a):
        _, sda, scl = self._handle(a["h"], "i2c")
        dev = self._i2c.get((sda, scl), {}).get(a["addr"])
        if dev is None:
            raise OSError(ENODEV, "ENODEV")
        return dev

    def _op_i2c_scan(self, a):
        _, sda, scl = self._handle(a["h"], "i2c")
        found = []
        for addr, dev in sorted(self._i2c.get((sda, scl), {}).items()):
            try:
                dev.write(b"")
            except OSError:
                continue
            found.append(addr)
        return found

    def _op_i2c_write(self, a):
        data = bytes(a["data"])
        self._i2c_dev(a).write(data)
        return len(data)

    def _op_i2c_read(self, a):
        return bytes(self._i2c_dev(a).read(int(a["n"])))

    def _reg(self, a):
        reg, asz = int(a["reg"]), int(a.get("asz", 8))
        return reg.to_bytes(2, "big") if asz == 16 else bytes([reg & 0xFF])

    def _op_i2c_mem_read(self, a):
        dev = self._i2c_dev(a)
        dev.write(self._reg(a))
        return bytes(dev.read(int(a["n"])))

    def _op_i2c_mem_write(self, a):
        self._i2c_dev(a).write(self._reg(a) + bytes(a["data"]))

    # ------------------------------------------------------------------ SPI
    def _op_spi_init(self, a):
        bus_id = a.get("id", 1)
        pins = [a.get("sck"), a.get("mosi"), a.get("miso")]
        if bus_id >= 0:
            if bus_id not in _SPI_DEFAULT:
                raise _Bad("SPI(%s) doesn't exist" % bus_id)
            pins = [d if p is None else p for p, d in zip(pins, _SPI_DEFAULT[bus_id])]
        for p in pins:
            if p is not None:
                self._check_pin(p)
        entry = ("spi",) + tuple(pins)
        if a.get("h") is not None:
            self._handles[a["h"]] = entry
            return a["h"]
        self._handles.append(entry)
        return len(self._handles) - 1

    def _op_spi_xfer(self, a):
        _, sck, mosi, miso = self._handle(a["h"], "spi")
        data = bytes(a["data"])
        read = a.get("rd", 1)
        for dsck, dmosi, dmiso, cs, dev in self._spi:
            if (dsck, dmosi, dmiso) != (sck, mosi, miso):
                continue
            if cs is not None and self.level(cs) != 0:
                continue
            if cs is None:
                return bytes(dev.transfer(data)) if read else None
            buf = self._spi_txn.setdefault(id(dev), bytearray())
            if not read:
                buf.extend(data)
                return None
            # a read needs MISO now: clock out everything buffered so far plus this part
            full = bytes(buf) + data
            self._spi_txn[id(dev)] = bytearray()
            out = bytes(dev.transfer(full))
            return out[len(full) - len(data):]
        return bytes(len(data)) if read else None   # nothing selected: MISO floats low

    # ------------------------------------------------------------------ UART
    def _op_uart_init(self, a):
        uid = a.get("id", 1)
        if uid not in _UART_DEFAULT:
            raise _Bad("UART(%s) does not exist" % uid)
        dtx, drx = _UART_DEFAULT[uid]
        tx = dtx if a.get("tx") is None else a["tx"]
        rx = drx if a.get("rx") is None else a["rx"]
        self._check_pin(tx)
        self._check_pin(rx)
        entry = ("uart", tx, rx, int(a.get("baudrate", 115200)), max(int(a.get("rxbuf", 256)), 128))
        h = a.get("h")
        if h is not None:
            self._handles[h] = entry
        else:
            self._handles.append(entry)
            h = len(self._handles) - 1
        self._uart_rx.setdefault(h, bytearray())
        return h

    def _uart_dev(self, entry, side):
        _, tx, rx, baud, _ = entry
        for (dtx, drx), dev in self._uart.items():
            if (side == "tx" and dtx == tx) or (side == "rx" and drx == rx):
                if getattr(dev, "baud", baud) != baud:
                    return None   # wrong baud rate: framing errors, nothing usable
                return dev
        return None

    def _uart_pull(self, h):
        entry = self._handle(h, "uart")
        buf = self._uart_rx.setdefault(h, bytearray())
        dev = self._uart_dev(entry, "rx")
        if dev is not None:
            data = dev.read_available()
            if data:
                room = entry[4] - len(buf)
                buf.extend(bytes(data)[:max(room, 0)])
        return buf

    def _op_uart_write(self, a):
        entry = self._handle(a["h"], "uart")
        data = bytes(a["data"])
        dev = self._uart_dev(entry, "tx")
        if dev is not None:
            dev.write(data)
            self._update_pms_load()
        return len(data)

    def _op_uart_any(self, a):
        return len(self._uart_pull(a["h"]))

    def _op_uart_read(self, a):
        h = a["h"]
        n = int(a["n"])
        buf = self._uart_pull(h)
        until = a.get("until")
        if until is None:
            until = self.vnow() + int(a.get("timeout_us", 0))

        def ready():
            self._uart_pull(h)
            if n == -1:
                return len(buf) > 0
            if n == -2:
                return b"\n" in buf
            return len(buf) >= n

        if ready() or self.vnow() >= until:
            if not buf:
                return None
            if n == -1:
                k = len(buf)
            elif n == -2:
                k = buf.index(b"\n") + 1 if b"\n" in buf else len(buf)
            else:
                k = min(n, len(buf))
            out = bytes(buf[:k])
            del buf[:k]
            return out
        return self._block(until, lambda: ready(), tick_us=1000)

    # ------------------------------------------------------------------ ADC
    def _op_adc_init(self, a):
        pin = self._check_pin(a["pin"])
        if pin not in ADC1 and pin not in ADC2:
            raise _Bad("invalid Pin for ADC")

    def _op_adc_read(self, a):
        pin = a["pin"]
        atten = int(a.get("atten", 0))
        src = self._adc.get(pin)
        mv = src.volts() * 1000.0 if src is not None else 0.0
        full, floor = ADC_FULL_MV[atten], ADC_FLOOR_MV[atten]
        raw = 0 if mv < floor else min(4095, max(0, int(round(mv / full * 4095))))
        kind = a.get("kind", "raw")
        if kind == "u16":
            return (raw * 65535 + 2047) // 4095
        if kind == "uv":
            return int(round(raw * full * 1000.0 / 4095))
        return raw

    # ------------------------------------------------------------------ RTC, NVS, misc
    def _rtc_us(self):
        return self.vnow() + self._rtc_offset_us

    def _op_epoch_us(self, a):
        return self._rtc_us()

    def _op_rtc_datetime(self, a):
        from datetime import datetime, timedelta, timezone
        base = datetime(2000, 1, 1, tzinfo=timezone.utc)
        dt = a.get("dt")
        if dt is None:
            t = base + timedelta(microseconds=self._rtc_us())
            return [t.year, t.month, t.day, t.weekday(), t.hour, t.minute, t.second, t.microsecond]
        try:
            y, mo, d = dt[0], dt[1], dt[2]
            hh, mm, ss = (list(dt[4:7]) + [0, 0, 0])[:3]
            us = dt[7] if len(dt) > 7 else 0
            target = datetime(y, mo, d, hh, mm, ss, us, tzinfo=timezone.utc)
        except (TypeError, ValueError, IndexError):
            raise _Bad("invalid datetime tuple") from None
        self._rtc_offset_us = int((target - base) / timedelta(microseconds=1)) - self.vnow()

    def _op_rtc_memory(self, a):
        data = a.get("data")
        if data is None:
            return bytes(self.rtc_mem)
        if len(data) > RTC_MEM_MAX:
            raise _Bad("buffer too long")
        self.rtc_mem = bytes(data)

    def _op_nvs_open(self, a):
        self.nvs.open(a["ns"])

    def _op_nvs_set(self, a):
        try:
            self.nvs.set(a["ns"], a["key"], a["kind"], a["value"])
        except OverflowError as e:
            raise _Bad(str(e)) from None

    def _op_nvs_get(self, a):
        return self.nvs.get(a["ns"], a["key"], a["kind"], a.get("size"))

    def _op_nvs_erase(self, a):
        self.nvs.erase(a["ns"], a["key"])

    def _op_nvs_commit(self, a):
        self.nvs.commit(a["ns"])

    def _op_ticks_us(self, a):
        return self.vnow() - self._boot_us

    def _op_ticks_cpu(self, a):
        return (self.vnow() - self._boot_us) * self._freq_mhz

    def _op_unique_id(self, a):
        return self._uid

    def _op_freq(self, a):
        hz = a.get("hz")
        if hz is None:
            return self._freq_mhz * 1000000
        self._freq_mhz = int(hz) // 1000000
        self.meter.set("mcu", self._active_key(), self.clock.now_us())

    def _op_reset_cause(self, a):
        return self.reset_cause

    def _op_wake_reason(self, a):
        return self.wake_reason

    def _op_reset(self, a):
        raise sig.HardReset(sig.HARD_RESET)

    def _op_gpio_hold(self, a):
        pass

    def _op_cpu_ref(self, a):
        """The shim says what `cpu` counts: work units, or host µs, with this host's µs per
        reference loop iteration (first figure kept)."""
        self.cpu_unit = a.get("unit", "us")
        if self.cpu_unit == "work":
            return False
        if a.get("us") is None:
            return self.host_loop_us is None
        if self.host_loop_us is None and a["us"] > 0:
            self.host_loop_us = float(a["us"])

    def _op_heap_base(self, a):
        if self._cycle_info is not None:
            self._cycle_info["heap_base"] = a.get("heap")

    def _note_heap(self, a):
        h = a.get("heap")
        if h is not None and h >= 0 and self._cycle_info is not None:
            p = self._cycle_info["peak_heap"]
            self._cycle_info["peak_heap"] = h if p is None else max(p, h)

    # ------------------------------------------------------------------ sleep
    def _block(self, until, done, tick_us=None):
        """Block the firmware until `until` or until done() / a pin IRQ / the watchdog; the
        shim then asks again (reply {"a": until})."""
        until = int(until)
        if tick_us:
            self._tick(tick_us, until)

        def wake():
            self._poll_edges()
            if self._pending:
                return {"a": until, "i": self._take_pending()}
            if done is not None and done():
                return {"a": until}
            if self._wdt_deadline is not None and self.clock.now_us() >= self._wdt_deadline:
                return {"a": until}
            if tick_us:
                self._tick(tick_us, until)
            return None
        return self._raise_wait(until, {"a": until}, wake)

    def _raise_wait(self, until, result, wake):
        raise sig.Wait(until, result=result, wake=wake)

    def _tick(self, tick_us, until):
        t = min(self.clock.now_us() + tick_us, until)
        self.clock.call_at(t, lambda: None)

    def _op_sleep(self, a):
        self._note_heap(a)
        until = a.get("until")
        if until is None:
            until = self.vnow() + max(0, int(a.get("us", 0)))
        if self._pending:
            return {"a": until, "i": self._take_pending()}
        if self.clock.now_us() >= until:
            self._busy_until = max(self._busy_until, until)
            return None
        return self._block(until, None)

    def _wake_now(self):
        """The ext0/ext1 level condition, if configured and met: the wake reason, else 0."""
        if self._ext0 is not None:
            pin, lvl = self._ext0
            if self.level(pin) == lvl:
                return EXT0_WAKE
        if self._ext1 is not None:
            pins, lvl = self._ext1
            levels = [self.level(p) for p in pins]
            if pins and ((lvl == 1 and any(levels)) or (lvl == 0 and not any(levels))):
                return EXT1_WAKE
        return 0

    def _op_lightsleep(self, a):
        self._note_heap(a)
        ms = int(a.get("ms") or 0)
        start = self.vnow()
        until = start + ms * 1000 if ms > 0 else start + 10 ** 15
        self._light = (start, until)
        self._sleep_state_at(start, "light_sleep")

        def wake():
            # light sleep ends on ext0/ext1, or on an edge at a pin whose IRQ has wake=SLEEP
            self._poll_edges()
            reason = self._wake_now()
            if not reason:
                for p in self._pending:
                    st = self._pins.get(p)
                    if st and st["wake"] and (st["wake"] & WAKE_SLEEP):
                        reason = GPIO_WAKE
                        break
            if reason and self.clock.now_us() >= start:
                self.wake_reason = reason
                return {"i": self._take_pending()} if self._pending else {"v": None}
            return None
        self.wake_reason = TIMER_WAKE
        raise sig.Wait(until, result=None, wake=wake)

    def _sleep_state_at(self, t, key):
        if t <= self.clock.now_us():
            self.meter.set("mcu", key, self.clock.now_us())
        else:
            self.clock.call_at(t, lambda: self.meter.set("mcu", key, t) if self._powered else None)

    def _end_lightsleep(self):
        start, until = self._light
        self._light = None
        now = self.clock.now_us()
        self.meter.set("mcu", self._active_key(), now)
        self._busy_until = max(self._busy_until, now)
        if self._wdt_deadline is not None:
            # the task watchdog's timer is clock-gated in light sleep
            self._wdt_deadline += max(0, now - max(start, 0))
            self._arm_wdt_timer()

    def _op_wake_ext0(self, a):
        pin = a.get("pin")
        if pin is None:
            self._ext0 = None
            return
        if self._check_pin(pin) not in RTC_GPIOS:
            raise _Bad("invalid pin for wake")
        self._ext0 = (pin, int(a["level"]))

    def _op_wake_ext1(self, a):
        pins = list(a.get("pins") or [])
        for p in pins:
            if self._check_pin(p) not in RTC_GPIOS:
                raise _Bad("invalid pin for wake")
        self._ext1 = (pins, int(a["level"])) if pins else None

    def _op_deepsleep(self, a):
        self._note_heap(a)
        ms = int(a.get("ms") or 0)
        start = self.vnow()
        lag_ms = (start - self.clock.now_us() + 999) // 1000
        self._sleep_state_at(start, "deep_sleep")
        timer_ms = lag_ms + ms if ms > 0 else None   # None: only a wake source ends it
        self._wake_reason_next = TIMER_WAKE
        has_ext = self._ext0 is not None or self._ext1 is not None

        def wake():
            if self.clock.now_us() < start:
                return None
            reason = self._wake_now()
            if reason:
                self._wake_reason_next = reason
                return True
            return None
        if has_ext and self._wake_now():
            # ext0/ext1 are level-triggered: a condition already met wakes at once
            self._wake_reason_next = self._wake_now()
            timer_ms = lag_ms
        self._deep_sleeping()
        raise sig.DeepSleep(timer_ms, wake=wake if has_ext else None)

    def _deep_sleeping(self):
        # outputs without hold are released in deep sleep; what the parts see follows
        self._powered_outputs_release = True
        for pin, st in self._pins.items():
            if st["mode"] in (OUT, OPEN_DRAIN) and not st["hold"]:
                for dev in self._listeners.get(pin, ()):
                    if hasattr(dev, "released"):
                        dev.released()
        sp = self.defn["sensor_power"]
        st = self._pins.get(sp["pin"])
        if not (st and st["hold"]):
            self.meter.set("sensors", None, self.clock.now_us())

    # ------------------------------------------------------------------ report
    def _close_cycle(self):
        info = self._cycle_info
        self._cycle_info = None
        rec = self.meter.close_cycle(self.clock.now_us())
        log = getattr(self.sx, "tx_log", [])
        frames = log[info["tx_from"]:]
        rec.update({"cycle": len(self.cycles), "reset_cause": info["reset_cause"],
                    "wake_reason": info["wake_reason"], "peak_heap": info["peak_heap"],
                    "heap_base": info["heap_base"],
                    "cpu_ms": info["cpu_us"] / 1000.0,
                    # what the firmware's CPU work was measured in: counted work units
                    # (the same on any host), or host µs under CPython
                    "cpu_measure": {"unit": self.cpu_unit, "amount": info["cpu_raw"]},
                    "frames": len(frames), "airtime_ms": sum(f[1] for f in frames) / 1000.0})
        base, peak = info["heap_base"], info["peak_heap"]
        rec["firmware_heap"] = (peak - base) if (base is not None and peak is not None) else None
        awake = sum(v for k, v in rec["state_ms"].items() if k.startswith("active_"))
        rec["awake_ms"] = awake
        rec["boot_ms"] = float(self.defn.get("boot_ms", 0))   # part of awake_ms
        self.cycles.append(rec)
        return rec

    def report(self):
        """Per-cycle figures so far (the open cycle is shown up to now, not closed)."""
        cycles = list(self.cycles)
        total_mah = sum(c["charge_mah"] for c in cycles)
        total_s = sum((c["end_us"] - c["start_us"]) for c in cycles) / 1e6
        return {"board": self.name, "board_id": self.defn["id"], "cycles": cycles,
                "total_charge_mah": total_mah, "total_time_s": total_s,
                "average_current_ma": (total_mah * 3600.0 / total_s) if total_s > 0 else None}


# ---------------------------------------------------------------------- CLI hooks
def load_world(scenario_path, clock):
    """The world for `sen emulate --scenario FILE` (None without a scenario)."""
    if scenario_path is None:
        return None
    from .scenario import load_scenario
    world = load_scenario(scenario_path)
    if clock is not None and clock.now_us() == 0:
        clock.start_epoch_s = world.start_epoch_s   # the chips read truth at the world's time
    return world


def write_report(report_path, boards, clock):
    from .report import write_report as _write
    return _write(report_path, boards, clock)
