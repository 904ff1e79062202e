"""Board GPIO: pin modes, levels (device, ESP32 output, pulls), edge IRQs and the control
pins that end SPI transactions or switch the sensor rail. Mixed into board.Board."""
from .board_def import GPIOS, INPUT_ONLY

IN, OUT, OPEN_DRAIN = 1, 3, 7
PULL_DOWN, PULL_UP = 1, 2
IRQ_RISING, IRQ_FALLING = 1, 2


class _Bad(Exception):
    """Bad argument from firmware: becomes ValueError(msg) in MicroPython."""


class PinsMixin:
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

