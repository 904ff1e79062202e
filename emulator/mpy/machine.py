# `machine` for the emulated ESP32 (MicroPython ESP32 port API, v1.27).
# Every operation is answered by the board host (emulator/board.py) through _board.call;
# constants carry the ESP32 port's values so firmware can compare or store them.
from _board import call, pin_id, heap
import _board

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6

SLEEP = 2
DEEPSLEEP = 4


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    PULL_HOLD = 4
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if type(id) is not int:
            id = pin_id(id)
        self._id = id
        self.init(mode, pull, value=value, drive=drive, hold=hold)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        call("pin_init", id=self._id, mode=mode, pull=pull,
             value=None if value is None else (1 if value else 0), hold=hold)

    def value(self, v=None):
        if v is None:
            return call("pin_value", id=self._id)
        call("pin_set", id=self._id, v=1 if v else 0)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        call("pin_set", id=self._id, v=1)

    def off(self):
        call("pin_set", id=self._id, v=0)

    def irq(self, handler=None, trigger=3, *, wake=None, hard=False):
        _board.irqs[self._id] = (self, handler)
        call("pin_irq", id=self._id, trigger=trigger if handler is not None else 0, wake=wake)
        return None

    def __repr__(self):
        return "Pin(%d)" % self._id


class Signal:
    def __init__(self, pin, *args, invert=False, **kw):
        if type(pin) is int or args or kw:
            pin = Pin(pin, *args, **kw)
        self._pin = pin
        self._inv = 1 if invert else 0

    def value(self, v=None):
        if v is None:
            return self._pin.value() ^ self._inv
        self._pin.value((1 if v else 0) ^ self._inv)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class I2C:
    """Hardware I2C. A missing or NACKing target raises OSError(ENODEV or ETIMEDOUT)."""

    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._h = call("i2c_init", id=id, scl=pin_id(scl), sda=pin_id(sda), freq=freq)

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._h = call("i2c_init", id=-2, h=self._h, scl=pin_id(scl), sda=pin_id(sda), freq=freq)

    def deinit(self):
        pass

    def scan(self):
        return call("i2c_scan", h=self._h)

    def readfrom(self, addr, nbytes, stop=True):
        return call("i2c_read", h=self._h, addr=addr, n=nbytes)

    def readfrom_into(self, addr, buf, stop=True):
        r = call("i2c_read", h=self._h, addr=addr, n=len(buf))
        buf[0:len(r)] = r

    def writeto(self, addr, buf, stop=True):
        return call("i2c_write", h=self._h, addr=addr, data=bytes(buf))

    def writevto(self, addr, vector, stop=True):
        return call("i2c_write", h=self._h, addr=addr, data=b"".join(bytes(b) for b in vector))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        return call("i2c_mem_read", h=self._h, addr=addr, reg=memaddr, n=nbytes, asz=addrsize)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        r = call("i2c_mem_read", h=self._h, addr=addr, reg=memaddr, n=len(buf), asz=addrsize)
        buf[0:len(r)] = r

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        call("i2c_mem_write", h=self._h, addr=addr, reg=memaddr, data=bytes(buf), asz=addrsize)


class SoftI2C(I2C):
    def __init__(self, scl, sda, *, freq=400000, timeout=50000):
        self._h = call("i2c_init", id=-1, scl=pin_id(scl), sda=pin_id(sda), freq=freq)


class SPI:
    """SPI master. Chip select is an ordinary Pin the firmware drives; the board host groups
    the bytes clocked while a device's CS is low into one transaction."""
    MSB = 0
    LSB = 1

    def __init__(self, id=1, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        self._id = id
        self._h = None
        self.init(baudrate, polarity=polarity, phase=phase, bits=bits, firstbit=firstbit,
                  sck=sck, mosi=mosi, miso=miso)

    def init(self, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
             sck=None, mosi=None, miso=None):
        self._h = call("spi_init", id=self._id, h=self._h, baudrate=baudrate, polarity=polarity,
                       phase=phase, sck=pin_id(sck), mosi=pin_id(mosi), miso=pin_id(miso))

    def deinit(self):
        pass

    def read(self, nbytes, write=0):
        return call("spi_xfer", h=self._h, data=bytes([write]) * nbytes)

    def readinto(self, buf, write=0):
        r = call("spi_xfer", h=self._h, data=bytes([write]) * len(buf))
        buf[0:len(r)] = r

    def write(self, buf):
        call("spi_xfer", h=self._h, data=bytes(buf), rd=0)

    def write_readinto(self, write_buf, read_buf):
        r = call("spi_xfer", h=self._h, data=bytes(write_buf))
        read_buf[0:len(r)] = r


class SoftSPI(SPI):
    def __init__(self, baudrate=500000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        self._id = -1
        self._h = None
        self.init(baudrate, polarity=polarity, phase=phase, bits=bits, firstbit=firstbit,
                  sck=sck, mosi=mosi, miso=miso)


class UART:
    INV_TX = 1
    INV_RX = 2
    RTS = 1
    CTS = 2

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None,
                 rxbuf=256, timeout=0, timeout_char=0, **kw):
        self._id = id
        self._h = None
        self.init(baudrate, bits, parity, stop, tx=tx, rx=rx, rxbuf=rxbuf, timeout=timeout,
                  timeout_char=timeout_char)

    def init(self, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None,
             rxbuf=256, timeout=0, timeout_char=0, **kw):
        self._timeout = timeout
        self._h = call("uart_init", id=self._id, h=self._h, baudrate=baudrate, tx=pin_id(tx),
                       rx=pin_id(rx), rxbuf=rxbuf)

    def deinit(self):
        pass

    def any(self):
        return call("uart_any", h=self._h)

    def read(self, nbytes=None):
        return call("uart_read", h=self._h, n=-1 if nbytes is None else nbytes,
                    timeout_us=self._timeout * 1000)

    def readinto(self, buf, nbytes=None):
        n = len(buf) if nbytes is None else nbytes
        r = call("uart_read", h=self._h, n=n, timeout_us=self._timeout * 1000)
        if r is None:
            return None
        buf[0:len(r)] = r
        return len(r)

    def readline(self):
        return call("uart_read", h=self._h, n=-2, timeout_us=self._timeout * 1000)

    def write(self, buf):
        return call("uart_write", h=self._h, data=bytes(buf))

    def flush(self):
        pass

    def txdone(self):
        return True

    def sendbreak(self):
        pass


class ADC:
    """ADC1/ADC2 pin. read_uv() is the calibrated reading; the input clips at the top of the
    attenuation's range (0 dB 950 mV, 2.5 dB 1250, 6 dB 1750, 11 dB 3100)."""
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 0
    WIDTH_10BIT = 1
    WIDTH_11BIT = 2
    WIDTH_12BIT = 3

    def __init__(self, pin, *, atten=None):
        self._pin = pin_id(pin)
        self._atten = 0 if atten is None else atten
        self._width = 3
        self._raw = self._u16 = self._uv = None  # the burst being served, by kind
        call("adc_init", pin=self._pin, atten=self._atten)

    def init(self, *, atten=None):
        if atten is not None:
            self.atten(atten)

    def atten(self, atten):
        if atten not in (0, 1, 2, 3):
            raise ValueError("invalid attenuation")
        self._atten = atten
        self._raw = self._u16 = self._uv = None  # a burst converted at the old attenuation

    def width(self, width):
        if width not in (0, 1, 2, 3):
            raise ValueError("invalid width")
        self._width = width

    # One host round trip per burst of ADC_BURST conversions, not per conversion (firmware
    # oversamples: a water cycle takes hundreds, and each trip costs the host ~0.5 ms). The
    # next host call of any kind, which may change what the pin sees, charges the
    # conversions served (the chip's time each, board_adc.ADC_CONVERSION_US) and empties the
    # burst (_board.call). The served path is kept to a list pop: on a chip it is C.
    def _fetch(self, kind):
        v = call("adc_read", pin=self._pin, atten=self._atten, kind=kind, n=ADC_BURST)
        self._raw = v if kind == 0 else None
        self._u16 = v if kind == 1 else None
        self._uv = v if kind == 2 else None
        _board.adc_open, _board.adc_got = v, len(v)
        return v.pop()

    def read(self):
        q = self._raw
        return (q.pop() if q else self._fetch(0)) >> (3 - self._width)

    def read_u16(self):
        q = self._u16
        return q.pop() if q else self._fetch(1)

    def read_uv(self):
        q = self._uv
        return q.pop() if q else self._fetch(2)


ADC_BURST = 32


class ADCBlock:
    def __init__(self, id, *, bits=12):
        self._id = id

    def connect(self, *args, **kw):
        pin = args[-1]
        return ADC(pin, atten=kw.get("atten"))


class RTC:
    """RTC.datetime() keeps running through deep sleep and resets; memory() keeps up to
    2048 bytes through deep sleep and resets but not through power loss."""

    def __init__(self, id=0):
        pass

    def init(self, datetime):
        self.datetime(datetime)

    def datetime(self, datetimetuple=None):
        if datetimetuple is None:
            return tuple(call("rtc_datetime"))
        call("rtc_datetime", dt=list(datetimetuple))

    def memory(self, data=None):
        if data is None:
            return call("rtc_memory")
        if len(data) > 2048:
            raise ValueError("buffer too long")
        call("rtc_memory", data=bytes(data))


class WDT:
    def __init__(self, id=0, timeout=5000):
        call("wdt_init", timeout_ms=timeout)

    def feed(self):
        call("wdt_feed")


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=0, **kw):
        raise NotImplementedError("machine.Timer is not emulated; use time.sleep_ms / lightsleep")


def deepsleep(time_ms=0):
    call("deepsleep", ms=time_ms, heap=heap())


def lightsleep(time_ms=0):
    call("lightsleep", ms=time_ms, heap=heap())


def sleep(time_ms=0):
    lightsleep(time_ms)


def reset():
    call("reset")


def soft_reset():
    raise SystemExit


def reset_cause():
    return call("reset_cause")


def wake_reason():
    return call("wake_reason")


def unique_id():
    return call("unique_id")


def freq(hz=None):
    if hz is None:
        return call("freq")
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    call("freq", hz=hz)


def idle():
    call("sleep", us=1000, heap=heap())


def disable_irq():
    _board._irq_off += 1
    return _board._irq_off - 1


def enable_irq(state=0):
    _board._irq_off = state
    if not state:
        _board.run_deferred()


def time_pulse_us(pin, pulse_level, timeout_us=1000000):
    return call("pulse_us", id=pin_id(pin), level=pulse_level, timeout_us=timeout_us)
