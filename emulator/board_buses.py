"""Board buses: I2C, SPI (transactions framed by chip select) and UART. Mixed into board.Board."""
from .devices import ENODEV
from .board_pins import _Bad

# default bus pins of the ESP32 port when firmware passes none
_I2C_DEFAULT = {0: (19, 18), 1: (26, 25)}           # id -> (sda, scl)
_SPI_DEFAULT = {1: (14, 13, 12), 2: (18, 23, 19)}   # id -> (sck, mosi, miso)
_UART_DEFAULT = {0: (1, 3), 1: (10, 9), 2: (17, 16)}  # id -> (tx, rx)


class BusesMixin:
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

