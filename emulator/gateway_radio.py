"""The gateway side of an emulated radio: an SX1276 chip model of the emulator on its radio
medium, driven at register level (as the node's MicroPython driver drives its own chip).
Runs inside the emulator's process, in virtual time: frames arrive in the clock step that
ends them, and their rx time is the simulated world's clock.

Several emulated radios (or gateways) can share one medium; each is its own chip.

This is a mixin, not a backend: the emulator does not import the gateway. The host tools
combine it with the gateway's Backend (host_tools/emulated_gateway.py) and register it as
the gateway's "emulated" radio backend.
"""
from .chips.sx1276 import FSTEP, SX1276

REG_FIFO, REG_OPMODE, REG_FRF, REG_FIFO_PTR, REG_RX_BASE, REG_RX_CUR = 0x00, 0x01, 0x06, 0x0D, 0x0F, 0x10
REG_IRQ, REG_NB, REG_SNR, REG_RSSI, REG_MC1, REG_MC2, REG_MC3 = 0x12, 0x13, 0x19, 0x1A, 0x1D, 0x1E, 0x26
REG_PREAMBLE, REG_LEN, REG_SYNC, REG_DIO1, REG_TX_BASE = 0x20, 0x22, 0x39, 0x40, 0x0E
LORA_SLEEP, LORA_STDBY, LORA_TX, LORA_RXCONT = 0x80, 0x81, 0x83, 0x85
IRQ_RX_DONE, IRQ_CRC, IRQ_TX_DONE = 0x40, 0x20, 0x08
BW_CODE = {125_000: 7, 250_000: 8, 500_000: 9}


class EmulatedRadio:
    """Mixed in before a backend base that provides __init__(rc, gateway_id, on_frame),
    deliver(frame, rssi, snr, t) and stop()."""

    def __init__(self, rc, gateway_id, on_frame, medium, position=None, chip=None):
        super().__init__(rc, gateway_id, on_frame)
        self.medium = medium
        self.clock = medium.clock
        self.fstep = FSTEP
        self.chip = chip or SX1276(self.clock, f"{gateway_id}.{rc.name}")
        if getattr(self.chip, "medium", None) is None:
            pos = position or tuple(rc.options.get("position", (0.0, 0.0)))
            medium.attach(self.chip, pos, float(rc.options.get("antenna_gain_dbi", 3.0)), f"{gateway_id}.{rc.name}")
        self.crc_errors = 0
        self._tx = False

    def _w(self, addr, *values):
        self.chip.transfer(bytes([addr | 0x80]) + bytes(values))

    def _r(self, addr, n=1):
        return self.chip.transfer(bytes([addr]) + bytes(n))[1:]

    def _configure(self):
        rc = self.rc
        self._w(REG_OPMODE, LORA_SLEEP)
        frf = int(round(rc.frequency_hz / self.fstep))
        self._w(REG_FRF, (frf >> 16) & 0xFF, (frf >> 8) & 0xFF, frf & 0xFF)
        self._w(REG_MC1, (BW_CODE[rc.bw_hz] << 4) | (1 << 1))
        self._w(REG_MC2, (rc.sf << 4) | 0x04)
        ldro = (1 << rc.sf) * 1000 / rc.bw_hz > 16
        self._w(REG_MC3, 0x04 | (0x08 if ldro else 0))
        self._w(REG_PREAMBLE, 0, 8)
        self._w(REG_SYNC, rc.sync_word)
        self._w(0x09, 0x8E)  # PA_BOOST, 16 dBm: Vietnam's 25 mW ERP limit
        self._w(REG_OPMODE, LORA_STDBY)
        self._listen()

    def _listen(self):
        self._tx = False
        self._w(REG_DIO1, 0x00)  # DIO0 = RxDone
        self._w(REG_RX_BASE, 0x00)
        self._w(REG_FIFO_PTR, 0x00)
        self._w(REG_IRQ, 0xFF)
        self._w(REG_OPMODE, LORA_RXCONT)

    def _on_dio0(self, level):
        if not level:
            return
        flags = self._r(REG_IRQ)[0]
        if self._tx or flags & IRQ_TX_DONE:
            self._listen()
            return
        if flags & IRQ_RX_DONE:
            if flags & IRQ_CRC:
                self.crc_errors += 1
            else:
                n = self._r(REG_NB)[0]
                self._w(REG_FIFO_PTR, self._r(REG_RX_CUR)[0])
                frame = self._r(REG_FIFO, n)
                snr_raw = self._r(REG_SNR)[0]
                snr = (snr_raw - 256 if snr_raw > 127 else snr_raw) / 4
                pkt = self._r(REG_RSSI)[0]
                rssi = -157 + pkt + (snr if snr < 0 else 0)
                self.deliver(frame, rssi, snr, self.clock.epoch_s())
            self._w(REG_IRQ, 0xFF)

    def start(self):
        self.chip.dio[0].watch(self._on_dio0)
        self._configure()
        return self

    def transmit(self, frame: bytes):
        self._w(REG_OPMODE, LORA_STDBY)
        self._w(REG_TX_BASE, 0x00)
        self._w(REG_FIFO_PTR, 0x00)
        self._w(REG_FIFO, *frame)
        self._w(REG_LEN, len(frame))
        self._w(REG_DIO1, 0x40)  # DIO0 = TxDone
        self._w(REG_IRQ, 0xFF)
        self._tx = True
        self._w(REG_OPMODE, LORA_TX)

    def transmit_at(self, frame: bytes, at: float, deadline: float | None = None) -> bool:
        # virtual time: the service runs while the clock is held, so schedule on the clock
        now_s = self.clock.epoch_s()
        if deadline is not None and now_s > deadline:
            self.ack_window_missed += 1
            return False
        due_us = self.clock.now_us() + int(round((at - now_s) * 1e6))
        if due_us <= self.clock.now_us():
            self.transmit(frame)
        else:
            self.clock.call_at(due_us, lambda: self.transmit(frame))
        return True

    def stop(self):
        super().stop()
        self.chip.dio[0].unwatch(self._on_dio0)
        self._w(REG_OPMODE, LORA_SLEEP)
