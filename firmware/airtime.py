# LoRa time on air, SX1276 datasheet section 4.1.1.7 (Semtech formula).
# Shared by the node (duty-cycle budget), the emulator's radio and the benchmarks.


def ldro(sf, bw_hz):
    """LowDataRateOptimize is mandated when a symbol lasts more than 16 ms."""
    return 1 if (1 << sf) * 1000 / bw_hz > 16 else 0


def time_on_air_us(payload_len, sf=9, bw_hz=125000, cr=1, preamble=8, crc=True, implicit=False, de=None):
    """Microseconds on air for one packet. cr is 1..4 for coding rate 4/5..4/8."""
    if de is None:
        de = ldro(sf, bw_hz)
    t_sym_us = (1 << sf) * 1000000 / bw_hz
    num = 8 * payload_len - 4 * sf + 28 + (16 if crc else 0) - (20 if implicit else 0)
    den = 4 * (sf - 2 * de)
    n = -(-num // den)  # ceil for ints, MicroPython has no math.ceil on big ints issue
    if n < 0:
        n = 0
    n_payload = 8 + n * (cr + 4)
    return (preamble + 4.25) * t_sym_us + n_payload * t_sym_us
