"""A Board built for a scenario station carries that station's chips on the board's pins:
the shims reach the BME280 over I2C, the PMS5003 over UART, the probes through the ADC and
the rain gauge on its ext0 pin; the station's power-loss window cuts the board's power."""
import pytest

from sen.emulator import board_signals as sig
from sen.emulator.board import load_world
from sen.emulator.board_def import load_board
from sen.emulator.clock import VirtualClock
from sen.emulator.inprocess import Device
from sen.paths import SCENARIOS

CITY = SCENARIOS / "city-day.toml"


@pytest.fixture
def world_clock():
    clock = VirtualClock()
    world = load_world(CITY, clock)
    assert clock.start_epoch_s == world.start_epoch_s
    return world, clock


def _device(board_id, world, clock, tmp_path):
    fw = tmp_path / "fw"
    fw.mkdir(exist_ok=True)
    return Device(dict(load_board(board_id), _index=0), world=world, clock=clock,
                  fs_root=tmp_path / "flash", firmware=fw)


def test_air_station_bme280_and_pms5003_on_the_ttgo_pins(world_clock, tmp_path):
    world, clock = world_clock
    dev = _device("ttgo-lora32-v21", world, clock, tmp_path)
    assert dev.board.station.id == "air-1"
    with dev:
        dev.boot()
        import machine
        i2c = machine.I2C(0, sda=machine.Pin(21), scl=machine.Pin(22))
        assert 0x76 in i2c.scan()
        assert i2c.readfrom_mem(0x76, 0xD0, 1) == b"\x60"          # BME280 chip id
        setp = machine.Pin(14, machine.Pin.OUT, value=1)
        assert dev.board.meter.get("pms") == "pms_fan"
        uart = machine.UART(2, 9600, tx=15, rx=13, timeout=3000)
        frame = uart.read(32)
        assert frame is not None and frame[:2] == b"BM"              # PMS5003 active-mode frame
        setp.off()
        assert dev.board.meter.get("pms") == "pms_sleep"


def test_water_station_probes_read_through_the_adc(world_clock, tmp_path):
    world, clock = world_clock
    dev = _device("esp32-rfm95", world, clock, tmp_path)
    assert dev.board.station.id == "water-1"
    with dev:
        dev.boot()
        import machine
        uv = {}
        for name, pin in dev.board.defn["adc"]["probes"].items():
            a = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)
            uv[name] = a.read_uv()
            src = dev.board._adc[pin]
            assert uv[name] == pytest.approx(min(src.volts(), 3.1) * 1e6, abs=20000)   # probe noise
        assert any(v > 100_000 for v in uv.values())


def test_rain_station_power_loss_window_cuts_the_board(world_clock, tmp_path):
    world, clock = world_clock
    dev = _device("heltec-wifi-lora32-v2", world, clock, tmp_path)
    assert dev.board.station.id == "rain-1"
    (start_s, end_s), = world.power_loss_windows("rain-1")
    with dev:
        dev.boot()
        import machine
        # the gauge's input has an external pull-up on this board: open contact reads 1
        assert machine.Pin(38, machine.Pin.IN).value() == 1
        s = dev.exec("import machine\nmachine.RTC().memory(b'x')\nmachine.deepsleep(%d)\n" % int(86400e3))
        assert isinstance(s, sig.PowerLoss)
        assert dev.clock.now_s() == pytest.approx(end_s, abs=0.01)   # off for the whole window
        dev.boot()
        import machine
        assert machine.reset_cause() == machine.PWRON_RESET and machine.RTC().memory() == b""
    rec = dev.board.cycles[0]
    assert rec["end_us"] / 1e6 == pytest.approx(end_s, abs=0.01)
    # nothing drawn while the power was off
    assert rec["state_ms"]["deep_sleep"] == pytest.approx(start_s * 1000 - dev.board.defn["boot_ms"], abs=50)


def test_adc_bursts_serve_oversampling_in_one_host_call_until_any_other_call(world_clock, tmp_path):
    # machine.ADC asks the host for 32 conversions at once (one round trip, not 32) and serves
    # them until the next host call of any kind, after which it converts afresh
    world, clock = world_clock
    dev = _device("esp32-rfm95", world, clock, tmp_path)
    with dev:
        dev.boot()
        import machine
        ops = []
        real = dev.board.call
        dev.board.call = lambda op, args: (ops.append(op), real(op, args))[1]
        pin = dev.board.defn["adc"]["probes"]["ph"]
        src = dev.board._adc[pin]
        a = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)
        ops.clear()
        first = [a.read_uv() for _ in range(40)]  # 32 + 8 of a second burst
        assert ops == ["adc_read", "adc_read"]
        assert len(set(first)) > 5  # each a conversion of its own (probe noise), not one value repeated
        assert sum(first) / 40 == pytest.approx(src.volts() * 1e6, abs=5000)
        src.set_powered(False)  # the probe's rail drops (in the host: no call made)
        assert a.read_uv() > 100_000  # still the burst taken before
        machine.Pin(2, machine.Pin.OUT, value=0)  # any host call ends the burst
        assert a.read_uv() < 50_000  # a fresh conversion: the unpowered probe
        assert ops.count("adc_read") == 3
