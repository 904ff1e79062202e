"""SX127x backend on a Raspberry Pi through pyLoRa (package `SX127x`: spidev + RPi.GPIO).

DIO0 = RxDone fires pyLoRa's on_rx_done in the GPIO callback thread; the frame, its packet
RSSI/SNR and the IRQ time go straight to the service. Frames with a payload CRC error are
dropped and counted (the node will be heard again). A watchdog re-initialises the chip
(reset pin, full register setup) when nothing has arrived for `watchdog_s`, because
SX127x receivers are known to stop receiving after hours with DIO0 stuck.

Options under [[radio]]: board = "BOARD" | "BOARD2" (pyLoRa's two wirings),
low_band = false (920 MHz is the HF port), tx_dbm = 14 (ACK power on PA_BOOST, 2..17;
Vietnam allows 16 dBm EIRP, so subtract the antenna gain).
"""
import logging
import threading
import time

from sen.errors import SenError
from sen.gateway.radio.base import Backend

log = logging.getLogger("sen.gateway.radio.sx127x")
_BW = {125_000: "BW125", 250_000: "BW250", 500_000: "BW500"}


def _import_pylora():
    try:
        from SX127x import board_config
        from SX127x.constants import BW, CODING_RATE, MODE
        from SX127x.LoRa import LoRa
    except ImportError as exc:
        raise SenError(f"pyLoRa cannot load its Raspberry Pi modules ({exc.name} missing)",
                       "on a Pi: apt install python3-spidev python3-rpi.gpio; elsewhere use backend = \"serial\"") from None
    except (OSError, FileNotFoundError) as exc:
        raise SenError(f"pyLoRa cannot open the SPI device ({exc})",
                       "enable SPI with raspi-config and run the gateway as a user in group spi/gpio") from None
    return board_config, LoRa, BW, CODING_RATE, MODE


class Sx127xBackend(Backend):
    def __init__(self, rc, gateway_id, on_frame):
        super().__init__(rc, gateway_id, on_frame)
        board_config, LoRa, BW, CR, MODE = _import_pylora()
        self.MODE, self.BW, self.CR = MODE, BW, CR
        board_name = rc.options.get("board", "BOARD")
        if board_name not in ("BOARD", "BOARD2"):
            raise SenError(f"[[radio]] {rc.name}: board '{board_name}' is unknown", "use board = \"BOARD\" or \"BOARD2\"")
        self.board = getattr(board_config, board_name)
        self.board.low_band = bool(rc.options.get("low_band", False))
        self.crc_errors = 0
        self.tx_lock = threading.Lock()
        backend = self

        class _Radio(LoRa):
            def on_rx_done(self):
                t = time.time()
                flags = self.get_irq_flags()
                self.clear_irq_flags(RxDone=1, PayloadCrcError=1, ValidHeader=1)
                if flags.get("crc_error"):
                    backend.crc_errors += 1
                else:
                    payload = self.read_payload(nocheck=True)
                    backend.deliver(bytes(payload), *backend.packet_rssi_snr(), t)
                self.set_mode(MODE.SLEEP)
                self.reset_ptr_rx()
                self.set_mode(MODE.RXCONT)

            def on_tx_done(self):
                self.clear_irq_flags(TxDone=1)
                backend._listen()

        self.board.setup()
        self.lora = _Radio(verbose=False)
        self.watchdog = threading.Thread(target=self._watch, name=f"watchdog-{self.name}", daemon=True)

    def packet_rssi_snr(self) -> tuple[float, float]:
        """Packet RSSI/SNR per the datasheet (5.5.5). pyLoRa's get_pkt_snr_value() computes
        (256 - v) / 4, wrong for every positive SNR, and its RSSI ignores the SNR < 0 term."""
        v = self.lora.get_register(0x19)
        snr = (v - 256 if v > 127 else v) / 4
        rssi = self.lora.get_register(0x1A) - (164 if self.board.low_band else 157)
        return float(rssi + snr if snr < 0 else rssi), snr

    def _configure(self):
        rc, lora, MODE = self.rc, self.lora, self.MODE
        lora.set_mode(MODE.SLEEP)
        lora.set_freq(rc.frequency_hz / 1e6)
        lora.set_spreading_factor(rc.sf)
        lora.set_bw(getattr(self.BW, _BW[rc.bw_hz]))
        lora.set_coding_rate(self.CR.CR4_5)
        lora.set_sync_word(rc.sync_word)
        lora.set_rx_crc(True)
        lora.set_preamble(8)
        lora.set_low_data_rate_optim((1 << rc.sf) * 1000 / rc.bw_hz > 16)
        # ACKs go out on PA_BOOST (the only PA most HF modules wire): Pout = 17 - (15 - OutputPower)
        tx_dbm = int(rc.options.get("tx_dbm", 14))
        lora.set_pa_config(pa_select=1, max_power=7, output_power=max(0, min(15, tx_dbm - 2)))
        self._listen()

    def _listen(self):
        lora, MODE = self.lora, self.MODE
        lora.set_mode(MODE.STDBY)
        lora.set_dio_mapping([0] * 6)  # DIO0 = RxDone
        lora.reset_ptr_rx()
        lora.set_mode(MODE.RXCONT)

    def start(self):
        self._configure()
        self.last_rx = time.monotonic()
        self.watchdog.start()
        return self

    def check_watchdog(self) -> bool:
        """Re-initialise the chip after watchdog_s of silence; True when it did."""
        if not self.rc.watchdog_s or self.silent_for() <= self.rc.watchdog_s:
            return False
        log.warning("radio %s silent for %.0fs; resetting and re-initialising the SX127x", self.name, self.silent_for())
        with self.tx_lock:
            self.board.reset()
            self.lora.mode = None  # the chip forgot everything; make pyLoRa write the mode again
            self._configure()
        self.reinits += 1
        self.last_rx = time.monotonic()
        return True

    def _watch(self):
        while not self.stop_event.wait(1.0):
            try:
                self.check_watchdog()
            except Exception:
                log.exception("radio %s: watchdog re-initialisation failed; trying again", self.name)

    def transmit(self, frame: bytes):
        with self.tx_lock:
            lora = self.lora
            lora.set_mode(self.MODE.STDBY)
            lora.set_dio_mapping([1, 0, 0, 0, 0, 0])  # DIO0 = TxDone
            lora.write_payload(list(frame))
            lora.set_mode(self.MODE.TX)

    def stop(self):
        super().stop()
        try:
            self.lora.set_mode(self.MODE.SLEEP)
        except Exception:
            pass
