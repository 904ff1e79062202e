"""Drivers against the emulator's chip models (datasheet register maps), on machine only."""
import contextlib
import io
from pathlib import Path

from tests.firmware.rig import Station

QUIET = Path(__file__).parent / "scenarios" / "quiet.toml"


def _exec(st, src):
    with st.device:
        st.device.boot()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            g = st.device.exec(src)
    return g, out.getvalue()


def test_sx127x_reset_version_settings_and_automatic_ldro(tmp_path):
    st = Station(tmp_path, QUIET, "water")
    lora = st.board.defn["lora"]
    g, _ = _exec(st, f"""
from machine import SPI, Pin
from drivers.sx127x import SX127x
spi = SPI({lora['spi_id']}, sck=Pin({lora['sck']}), mosi=Pin({lora['mosi']}), miso=Pin({lora['miso']}))
r = SX127x(spi, {lora['cs']}, {lora['reset']}, {lora['dio0']})
version = r.reset()
res = {{}}
for sf in (7, 9, 11, 12):
    r.configure(922000000, sf, 125000, 1, 14, 0x12, 8)
    res[sf] = r.ldro()
r.configure(921400000, 9, 250000, 1, 14, 0x12, 8)
ldro_250 = r.ldro()
freq = r.frequency()
""")
    assert g["version"] == 0x12
    assert g["res"] == {7: False, 9: False, 11: True, 12: True}  # T_sym > 16 ms at 125 kHz
    assert g["ldro_250"] is False  # SF9 at 250 kHz: 2 ms symbols
    assert abs(g["freq"] - 921.4e6) < 61.1  # one FSTEP
    sx = st.board.sx
    assert sx.sf == 9 and sx.bw_hz == 250000 and sx.sync_word == 0x12 and sx.crc_on
    assert sx.tx_power_dbm() == 14.0


def test_bme280_forced_reading_matches_truth_and_detached_raises(tmp_path):
    st = Station(tmp_path, QUIET, "air")
    i2c = st.board.defn["i2c"]
    g, _ = _exec(st, f"""
from machine import I2C, Pin
from drivers.bme280 import BME280
b = BME280(I2C({i2c['id']}, sda=Pin({i2c['sda']}), scl=Pin({i2c['scl']})), {i2c['bme280_address']})
cid = b.init()
t, p, h = b.read()
wrong = BME280(I2C({i2c['id']}, sda=Pin({i2c['sda']}), scl=Pin({i2c['scl']})), 0x77)
try:
    wrong.init()
    err = None
except OSError as e:
    err = e
""")
    w = st.world
    now = st.clock.now_s()
    assert g["cid"] == 0x60
    assert abs(g["t"] - w.truth("air", "air_temp", now)) < 0.05
    assert abs(g["p"] - w.truth("air", "pressure", now)) < 0.05
    assert abs(g["h"] - w.truth("air", "rh", now)) < 0.3
    assert isinstance(g["err"], OSError)


def test_pms5003_checksum_rejects_a_corrupted_frame():
    from drivers import pms5003
    f = bytearray(32)
    f[0], f[1], f[3] = 0x42, 0x4D, 0x1C
    f[13] = 35  # PM2.5 atmospheric
    s = sum(f[:30])
    f[30], f[31] = s >> 8, s & 0xFF
    assert pms5003.parse(bytes(f))[4] == 35
    f[13] ^= 0x01
    assert pms5003.parse(bytes(f)) is None
    f[13] ^= 0x01
    f[3] = 0x04  # an 8-byte command ack is not a data frame
    assert pms5003.parse(bytes(f)) is None


def test_pms5003_reads_through_the_uart_after_wake(tmp_path):
    st = Station(tmp_path, QUIET, "air")
    d = st.board.defn["pms5003"]
    g, _ = _exec(st, f"""
import time
from machine import UART, Pin
from drivers.pms5003 import PMS5003
p = PMS5003(UART({d['uart_id']}, baudrate=9600, tx={d['tx']}, rx={d['rx']}), Pin({d['set']}, Pin.OUT, value=0))
p.wake()
p.passive()
time.sleep(40)
rows = [p.read() for _ in range(3)]
p.sleep()
bad = p.bad_frames
""")
    rows = g["rows"]
    assert len(rows) == 3 and all(len(r) == 6 for r in rows)
    assert all(r[4] > 0 for r in rows)
