"""Acceptance: the unmodified pyLoRa package, on spidev/RPi.GPIO doubles, is the gateway radio."""
import math

from sen.testkit import pi_doubles
from sen.emulator.chips.sx1276 import SX1276, packet_rssi_from_registers, snr_from_register
from sen.emulator.clock import VirtualClock
from sen.emulator.path_loss import LinkBudget
from sen.emulator.radio_medium import RadioMedium

from . import lora_node

pi_doubles.install()
from SX127x.LoRa import BW, CODING_RATE, MODE, LoRa  # noqa: E402  (needs the doubles first)
from SX127x.board_config import BOARD  # noqa: E402

BOARD.low_band = False  # 920 MHz is the SX1276 HF port: RSSI offset -157 (pyLoRa's own switch)


class Gateway(LoRa):
    def __init__(self):
        self.received = []
        super().__init__(verbose=False)

    def on_rx_done(self):
        self.clear_irq_flags(RxDone=1)
        payload = self.read_payload(nocheck=True)
        self.received.append({
            "payload": bytes(payload),
            "pylora_rssi": self.get_pkt_rssi_value(),
            "pylora_snr": self.get_pkt_snr_value(),
            "snr_reg": self.get_register(0x19),
            "rssi_reg": self.get_register(0x1A),
        })
        self.set_mode(MODE.SLEEP)
        self.reset_ptr_rx()
        self.set_mode(MODE.RXCONT)


def _world(node_xy, exponent=3.0):
    clock = VirtualClock()
    medium = RadioMedium(clock, LinkBudget(exponent=exponent), loss_percent=0.0, seed=7)
    gw_chip = SX1276(clock, "gw")
    node = SX1276(clock, "node")
    medium.attach(gw_chip, (0.0, 0.0), 3.0, "gw")
    medium.attach(node, node_xy, 0.0, "node")
    pi_doubles.detach_all()
    pi_doubles.attach_radio(gw_chip)
    BOARD.setup()
    lora = Gateway()
    lora.set_mode(MODE.SLEEP)
    lora.set_dio_mapping([0] * 6)
    lora.set_freq(921.4)
    lora.set_spreading_factor(9)
    lora.set_bw(BW.BW125)
    lora.set_coding_rate(CODING_RATE.CR4_5)
    lora.set_sync_word(0x12)
    lora.set_rx_crc(True)
    lora.set_preamble(8)
    lora.reset_ptr_rx()
    lora.set_mode(MODE.RXCONT)
    return clock, medium, gw_chip, node, lora


def _send_and_check(node_xy, payload):
    clock, medium, gw_chip, node, lora = _world(node_xy)
    lora_node.configure(node, sf=9, power_reg=0x8E)  # PA_BOOST, 16 dBm
    assert node.tx_power_dbm() == 16.0
    lora_node.send(node, payload)
    assert node.dio[0].level() == 0
    airtime_us = node.tx_log[-1][1]
    clock.advance(int(airtime_us) - 10)
    assert lora.received == [] and node.dio[0].level() == 0
    clock.advance(20)
    assert node.dio[0].level() == 1  # TxDone on DIO0 exactly after the time on air
    assert len(lora.received) == 1
    got = lora.received[0]
    assert got["payload"] == payload
    expected = medium.expected_link(node, gw_chip, 16.0, 921.4e6, 125000)
    snr = snr_from_register(got["snr_reg"])
    rssi = packet_rssi_from_registers(got["rssi_reg"], got["snr_reg"], hf=True)
    return expected, got, snr, rssi


def test_pylora_receives_with_model_rssi_snr_positive_snr():
    expected, got, snr, rssi = _send_and_check((600.0, 300.0), b"\x01sen-frame\xff" * 3)
    assert expected["snr_db"] > 0
    assert abs(snr - expected["snr_db"]) <= 0.125 + 1e-9  # SNR register step 0.25 dB
    assert abs(rssi - expected["rssi_dbm"]) <= 0.5 + 1e-9  # RSSI register step 1 dB
    # pyLoRa's own RSSI reading (HF offset) is the same figure
    assert abs(got["pylora_rssi"] - expected["rssi_dbm"]) <= 0.5 + 1e-9
    print("\npyLoRa check (SNR>0): model RSSI %.2f dBm SNR %.2f dB | pyLoRa RSSI %d dBm, "
          "SNR register %.2f dB (pyLoRa get_pkt_snr_value() says %.2f)"
          % (expected["rssi_dbm"], expected["snr_db"], got["pylora_rssi"], snr, got["pylora_snr"]))


def test_pylora_receives_below_noise_floor():
    expected, got, snr, rssi = _send_and_check((4000.0, 1800.0), bytes(range(40)))
    assert -12.5 <= expected["snr_db"] < 0
    assert abs(snr - expected["snr_db"]) <= 0.125 + 1e-9
    # datasheet: RSSI = -157 + PktRssi + PktSnr/4 when SNR < 0 (1 dB + 0.25 dB quantisation)
    assert abs(rssi - expected["rssi_dbm"]) <= 0.5 + 0.125 + 1e-9
    print("\npyLoRa check (SNR<0): model RSSI %.2f dBm SNR %.2f dB | registers give RSSI %.2f dBm SNR %.2f dB"
          % (expected["rssi_dbm"], expected["snr_db"], rssi, snr))


def test_out_of_range_node_is_not_heard():
    clock, medium, gw_chip, node, lora = _world((9000.0, 0.0))
    exp = medium.expected_link(node, gw_chip, 16.0, 921.4e6, 125000)
    assert exp["snr_db"] < -12.5
    lora_node.configure(node, sf=9)
    lora_node.send(node, b"far away")
    clock.advance(2_000_000)
    assert lora.received == []


def test_wrong_sync_word_or_sf_is_not_heard():
    for kw in ({"sync": 0x34}, {"sf": 10}, {"freq_hz": 922.0e6}):
        clock, medium, gw_chip, node, lora = _world((300.0, 0.0))
        lora_node.configure(node, **kw)
        lora_node.send(node, b"mismatch")
        clock.advance(3_000_000)
        assert lora.received == [], kw
        assert node.dio[0].level() == 1  # it was sent, just not heard
    assert math.isfinite(exp_noise := LinkBudget().noise_floor_dbm(125000)) and abs(exp_noise + 117.03) < 0.01


def test_threaded_gateway_on_a_realtime_pump():
    """pyLoRa as a threaded gateway runs it: callbacks fire on the pump thread, in wall time."""
    import time as _time

    clock, medium, gw_chip, node, lora = _world((600.0, 300.0))
    lora_node.configure(node, sf=7)
    lora.set_mode(MODE.STDBY)
    lora.set_spreading_factor(7)
    lora.reset_ptr_rx()
    lora.set_mode(MODE.RXCONT)
    with pi_doubles.RealtimePump(clock, speed=1.0):
        with pi_doubles.lock:
            lora_node.send(node, b"threaded")
        deadline = _time.monotonic() + 5.0
        while not lora.received and _time.monotonic() < deadline:
            _time.sleep(0.005)
    assert lora.received and lora.received[0]["payload"] == b"threaded"
    assert clock.now_us() >= node.tx_log[-1][1]  # virtual time followed the wall clock
