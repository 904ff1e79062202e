"""LoRa time on air, from the firmware's own module (firmware/airtime.py), so the node, the
emulator's chip model and the gateway's duty-cycle accounting use one formula."""
import importlib.util

from sen.paths import FIRMWARE


def _load():
    spec = importlib.util.spec_from_file_location("sen_fw_airtime", FIRMWARE / "airtime.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_fw = _load()
ldro = _fw.ldro


def time_on_air_us(payload_len, sf=9, bw_hz=125_000, cr=1, preamble=8, crc=True, implicit=False, ldro=None):
    """Microseconds on air; cr 1..4 for coding rate 4/5..4/8."""
    return _fw.time_on_air_us(payload_len, sf=sf, bw_hz=bw_hz, cr=cr, preamble=preamble, crc=crc,
                              implicit=implicit, de=ldro)
