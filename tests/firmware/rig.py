"""An emulated station for firmware tests: the scenario's chip models wired to a Board as the
board definition says, the firmware run in-process (sen.emulator.inprocess), and a pyLoRa
gateway radio on the same radio medium that logs (and, if asked, ACKs) what it hears."""
import json
import os
import secrets
from pathlib import Path

from sen.testkit import pi_doubles
from sen.emulator import board_signals as sig
from sen.emulator.board import Board
from sen.emulator.board_def import device_json, load_board
from sen.emulator.chips import StationWiring
from sen.emulator.chips.sx1276 import SX1276
from sen.emulator.clock import VirtualClock
from sen.emulator.inprocess import Device
from sen.emulator.scenario import load_scenario
from sen.gateway.downlink_encode import encode_downlink
from sen.gateway.frame_decode import FrameRejected, decode_uplink, parse_header

pi_doubles.install()
from SX127x.LoRa import BW, CODING_RATE, MODE, LoRa  # noqa: E402
from SX127x.board_config import BOARD  # noqa: E402

BOARD.low_band = False
HERE = Path(__file__).parent


class Gateway(LoRa):
    """pyLoRa on the spidev/RPi.GPIO doubles: verifies each frame with the gateway decoder
    and, for CONFIRMED uplinks, transmits the ACK `ack_delay_ms` after the uplink ended."""

    def __init__(self, clock, keys, ack=True, ack_delay_ms=100, config_for=None):
        self.clock = clock
        self.keys = keys
        self.ack = ack
        self.ack_delay_ms = ack_delay_ms
        self.config_for = config_for or (lambda node_id, counter: None)
        self.heard = []  # (t_s, bytes, rssi)
        self.last = {}   # node id -> last full counter
        self.acks = 0
        self.crc_errors = []
        super().__init__(verbose=False)

    def __del__(self):
        # pyLoRa's __del__ puts "its" chip to sleep over spidev, which by then is routed to
        # a later test's gateway chip: an old instance collected mid-test would deafen it.
        pass

    def setup_radio(self, freq_mhz=921.4, sf=9):
        self.set_mode(MODE.SLEEP)
        self.set_dio_mapping([0] * 6)
        self.set_freq(freq_mhz)
        self.set_spreading_factor(sf)
        self.set_bw(BW.BW125)
        self.set_low_data_rate_optim(sf >= 11)  # as the node does: symbols > 16 ms
        self.set_coding_rate(CODING_RATE.CR4_5)
        self.set_sync_word(0x12)
        self.set_rx_crc(True)
        self.set_preamble(8)
        self.set_pa_config(pa_select=1, max_power=7, output_power=12)
        self.reset_ptr_rx()
        self.set_mode(MODE.RXCONT)

    def on_rx_done(self):
        flags = self.get_irq_flags()
        self.clear_irq_flags(RxDone=1, PayloadCrcError=1, ValidHeader=1)
        payload = bytes(self.read_payload(nocheck=True))
        if flags.get("crc_error"):
            self.crc_errors.append((self.clock.now_s(), payload))
            self.reset_ptr_rx()
            self.set_mode(MODE.RXCONT)
            return
        self.heard.append((self.clock.now_s(), payload, self.get_pkt_rssi_value()))
        self.set_mode(MODE.STDBY)
        self.reset_ptr_rx()
        try:
            h = parse_header(payload)
        except FrameRejected:
            self.set_mode(MODE.RXCONT)
            return
        if self.ack and h.flags & 1 and h.node_id in self.keys:
            c32 = self.full_counter(h)
            try:
                decode_uplink(payload, self.keys[h.node_id], c32)
            except FrameRejected:
                self.set_mode(MODE.RXCONT)
                return
            dl = encode_downlink(h.node_id, self.keys[h.node_id], c32, self.config_for(h.node_id, c32))
            self.clock.call_at(self.clock.now_us() + self.ack_delay_ms * 1000, lambda: self._tx(dl))
            return
        self.set_mode(MODE.RXCONT)

    def full_counter(self, h):
        if h.flags & 8:
            c = h.counter_field
        else:
            last = self.last.get(h.node_id, 0)
            d = (h.counter_field - last) & 0xFFFF
            c = last + d if 0 < d <= 32768 else last - ((0x10000 - d) & 0xFFFF)
        self.last[h.node_id] = max(c, self.last.get(h.node_id, 0))
        return c

    def _tx(self, data):
        self.set_dio_mapping([1] + [0] * 5)
        self.write_payload(list(data))
        self.set_mode(MODE.TX)
        self.acks += 1

    def on_tx_done(self):
        self.clear_irq_flags(TxDone=1)
        self.set_dio_mapping([0] * 6)
        self.reset_ptr_rx()
        self.set_mode(MODE.RXCONT)


class Station:
    """One node of a scenario, its board, firmware and a gateway listening."""

    def __init__(self, tmp_path, scenario, station_id, node_cfg=None, board=None, gateway_ack=True,
                 ack_delay_ms=100, config_for=None):
        self.world = load_scenario(scenario)
        self.clock = VirtualClock(start_epoch_s=self.world.start_epoch_s)
        self.medium = self.world.make_medium(self.clock)
        st = self.world.station(station_id)
        self.station = st
        board_id = board or st.board
        self.wiring = StationWiring(self.world, station_id, self.clock, self.medium)
        self.fs = Path(tmp_path) / ("flash-" + station_id)
        self.fs.mkdir(parents=True, exist_ok=True)
        self.board = Board(board_id, self.wiring, self.clock, self.fs, cpu_scale=0.0)
        key = secrets.token_bytes(16)
        cfg = {"node_id": 100 + len(station_id), "key": key.hex(), "kind": st.kind, "interval_s": 900}
        cfg.update(node_cfg or {})
        self.node_id = cfg["node_id"]
        self.key = bytes.fromhex(cfg["key"])
        (self.fs / "node.json").write_text(json.dumps(cfg))
        (self.fs / "board.json").write_bytes(device_json(load_board(board_id)))
        # the gateway's radio, on the same medium
        gw = self.world.gateways[0]
        self.gw_chip = SX1276(self.clock, "gw")
        self.medium.attach(self.gw_chip, gw["xy"], gw["antenna_gain_dbi"], "gw")
        pi_doubles.detach_all()
        pi_doubles.attach_radio(self.gw_chip)
        BOARD.setup()
        self.gw = Gateway(self.clock, {self.node_id: self.key}, ack=gateway_ack, ack_delay_ms=ack_delay_ms,
                          config_for=config_for)
        self.gw.setup_radio()
        for a, b in self.world.power_loss_windows(station_id):
            self.clock.call_at(int(a * 1e6), lambda off=int((b - a) * 1000): self.board.cut_power(off))
        self.device = Device(self.board, clock=self.clock, fs_root=self.fs)
        # Spy on the medium: every frame the node put on air, heard or not.
        self.sent = []  # (t_s, payload)
        node_sx = self.board.sx
        real_transmit = self.medium.transmit

        def transmit(sender, payload, params, airtime_us):
            if sender is node_sx:
                self.sent.append((self.clock.now_s(), bytes(payload), airtime_us))
            return real_transmit(sender, payload, params, airtime_us)
        self.medium.transmit = transmit

    def run_until(self, t_s, max_boots=100000, on_end=None):
        """Boot/run main.py until virtual time t_s (after the scenario start)."""
        ends = []
        dev = self.device
        n = 0
        cwd = os.getcwd()
        os.chdir(self.fs)  # the device's working directory is its flash root
        try:
            while self.clock.now_s() < t_s and n < max_boots:
                dev.boot()
                end = dev.run("main")
                ends.append(end)
                if on_end is not None:
                    on_end(end)
                n += 1
                if end is None:
                    break
        finally:
            os.chdir(cwd)
        return ends

    def decoded(self, frames=None):
        """Every frame the gateway heard (or `frames`: [(t_s, payload, ...)]), MIC-verified:
        [(t_s, counter, Uplink)], in order, exact copies dropped."""
        out = []
        last = None
        seen = set()
        for t, payload, *_ in (self.gw.heard if frames is None else frames):
            h = parse_header(payload)
            if h.flags & 8:
                c = h.counter_field
            elif last is None:
                continue  # no full counter heard yet: the gateway cannot place this one
            else:
                d = (h.counter_field - last) & 0xFFFF
                c = last + d if 0 < d <= 32768 else last - ((0x10000 - d) & 0xFFFF)
            up = decode_uplink(payload, self.key, c)
            last = c if last is None else max(last, c)
            if (c, payload) in seen:
                continue
            seen.add((c, payload))
            out.append((t, c, up))
        return out
