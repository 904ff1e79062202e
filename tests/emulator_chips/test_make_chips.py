"""The construction API the board uses, on the shipped city-day scenario."""
import pytest

from sen.testkit import pi_doubles
from sen.emulator.chips import make_chips
from sen.emulator.clock import VirtualClock
from sen.emulator.scenario import load_scenario, parse_scenario
from sen.errors import SenError
from sen.paths import SCENARIOS

from .lora_node import configure, read_packet, send, start_rx


def test_city_day_chips_radio_and_faults_line_up():
    world = load_scenario(SCENARIOS / "city-day.toml")
    clock = VirtualClock(world.start_epoch_s)
    medium = world.make_medium(clock)
    import tomllib
    from sen.paths import BOARDS
    defs = {st.id: tomllib.loads((BOARDS / (st.board + ".toml")).read_text()) for st in world.stations.values()}
    chips = {sid: make_chips(defs[sid], sid, world, clock, medium) for sid in world.stations}
    assert set(chips["air-1"]) == {"sx1276", "bme280", "pms5003"}
    assert set(chips["water-1"]) == {"sx1276", "ph", "ec", "turbidity", "level", "water_temp"}
    assert set(chips["rain-1"]) == {"sx1276", "rain_gauge"}
    assert chips["air-1"]["bme280"].address == 0x76
    # a gateway chip on the medium at the scenario's gateway
    from sen.emulator.chips.sx1276 import SX1276
    gw = SX1276(clock, "gw")
    g = world.gateways[0]
    medium.attach(gw, g["xy"], g["antenna_gain_dbi"], g["id"])
    configure(gw)
    start_rx(gw)
    for sid in world.stations:
        link = medium.expected_link(chips[sid]["sx1276"], gw, 16.0, 921.4e6, 125000)
        assert link["snr_db"] > -12.5 + 3, (sid, link)  # every station is in range at SF9
    # BME280 detached between 5.0 and 5.5 h
    clock.advance_to(int(5.2 * 3600e6))
    with pytest.raises(OSError):
        chips["air-1"]["bme280"].write(b"\xD0")
    clock.advance_to(int(5.6 * 3600e6))
    chips["air-1"]["bme280"].write(b"\xD0")
    assert chips["air-1"]["bme280"].read(1) == b"\x60"
    # the river rise shows on the level probe
    clock.advance_to(int(6 * 3600e6))
    before = chips["water-1"]["level"].volts()
    clock.advance_to(int(14 * 3600e6))
    assert chips["water-1"]["level"].volts() > before + 0.4
    # frames from the rain station reach the gateway (20 % loss: send a handful)
    node = chips["rain-1"]["sx1276"]
    configure(node)
    got = 0
    for i in range(10):
        start_rx(gw)
        send(node, b"rain %d" % i)
        clock.advance(1_000_000)
        flags, data = read_packet(gw)
        got += bool(flags & 0x40 and data == b"rain %d" % i)
    assert 4 <= got <= 10


def test_sensor_not_fitted_on_the_board_is_a_sen_error():
    world = load_scenario(SCENARIOS / "city-day.toml")
    with pytest.raises(SenError, match="does not carry"):
        make_chips({"id": "tiny", "fitted": ["bme280"]}, "water-1", world, VirtualClock(), None)


def test_bad_sensor_parameter_is_a_sen_error():
    text = (SCENARIOS / "city-day.toml").read_text().replace("kappa = 0.4", "kapa = 0.4")
    world = parse_scenario(text)
    with pytest.raises(SenError, match="pms5003"):
        make_chips({}, "air-1", world, VirtualClock(), None)


def test_gpio_double_behaves_like_rpi_gpio():
    pi_doubles.install()
    import RPi.GPIO as GPIO
    pi_doubles.detach_all()
    with pytest.raises(RuntimeError):
        GPIO.setup(4, GPIO.IN)
    GPIO.setmode(GPIO.BCM)
    with pytest.raises(RuntimeError):
        GPIO.add_event_detect(4, GPIO.RISING, callback=lambda ch: None)
    GPIO.setup(4, GPIO.IN, pull_up_down=GPIO.PUD_UP)
    assert GPIO.input(4) == 1
    with pytest.raises(RuntimeError):
        GPIO.output(4, 1)
    GPIO.cleanup()
