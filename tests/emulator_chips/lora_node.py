"""A node-side SX1276 register sequence, as a MicroPython driver would write it (test helper)."""
from sen.emulator.chips.sx1276 import FSTEP


def w(sx, addr, *values):
    return sx.transfer(bytes([addr | 0x80]) + bytes(values))


def r(sx, addr, n=1):
    return sx.transfer(bytes([addr]) + bytes(n))[1:]


def configure(sx, freq_hz=921.4e6, sf=9, bw_code=7, cr=1, crc=True, sync=0x12, power_reg=0x8E,
              preamble=8, implicit=False, ldro=None):
    w(sx, 0x01, 0x80)  # LoRa + sleep
    w(sx, 0x01, 0x80)
    frf = int(round(freq_hz / FSTEP))
    w(sx, 0x06, (frf >> 16) & 0xFF, (frf >> 8) & 0xFF, frf & 0xFF)
    w(sx, 0x1D, (bw_code << 4) | (cr << 1) | (1 if implicit else 0))
    w(sx, 0x1E, (sf << 4) | (0x04 if crc else 0))
    if ldro is None:
        ldro = 1 if (1 << sf) * 1000 / (125000 if bw_code == 7 else 250000) > 16 else 0
    w(sx, 0x26, 0x04 | (0x08 if ldro else 0))
    w(sx, 0x20, preamble >> 8, preamble & 0xFF)
    w(sx, 0x39, sync)
    w(sx, 0x09, power_reg)
    w(sx, 0x01, 0x81)  # standby


def send(sx, payload):
    w(sx, 0x01, 0x81)
    w(sx, 0x0E, 0x00)
    w(sx, 0x0D, 0x00)
    w(sx, 0x00, *payload)
    w(sx, 0x22, len(payload))
    w(sx, 0x40, 0x40)  # DIO0 = TxDone
    w(sx, 0x12, 0xFF)
    w(sx, 0x01, 0x83)  # TX


def start_rx(sx, single=False):
    w(sx, 0x40, 0x00)  # DIO0 = RxDone
    w(sx, 0x0F, 0x00)
    w(sx, 0x0D, 0x00)
    w(sx, 0x12, 0xFF)
    w(sx, 0x01, 0x86 if single else 0x85)


def read_packet(sx):
    flags = r(sx, 0x12)[0]
    n = r(sx, 0x13)[0]
    cur = r(sx, 0x10)[0]
    w(sx, 0x0D, cur)
    data = r(sx, 0x00, n)
    w(sx, 0x12, 0xFF)
    return flags, bytes(data)
