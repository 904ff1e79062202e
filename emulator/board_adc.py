"""Board ADC: the ESP32's attenuation ranges applied to the attached analog sources.
Mixed into board.Board."""
from .board_def import ADC1, ADC2
from .board_pins import _Bad


# ADC full-scale input per attenuation (mV). ESP-IDF quotes the accurate ranges of the
# ESP32 as 100-950 / 100-1250 / 150-1750 / 150-2450 mV; with 11 dB the reading keeps rising
# (less linearly) to about 3.1 V. Inputs below the floor read 0.
ADC_FULL_MV = (950.0, 1250.0, 1750.0, 3100.0)
ADC_FLOOR_MV = (100.0, 100.0, 150.0, 150.0)
# One ADC1 conversion as the firmware's read_uv()/read_u16() waits for it: adc1_get_raw()
# runs at 27.2 ksps on an ESP32 at 240 MHz, at any width (labfruits.com "ESP32 ADC Speed",
# ESP-IDF driver). CPU-active time, charged for each conversion the shim serves (op
# argument "adc", emulator/mpy/machine.py ADC).
ADC_CONVERSION_US = 36.8
ADC_BURST_MAX = 64


class AdcMixin:
    def _op_adc_init(self, a):
        pin = self._check_pin(a["pin"])
        if pin not in ADC1 and pin not in ADC2:
            raise _Bad("invalid Pin for ADC")

    def _op_adc_read(self, a):
        """A list of n conversions (the shim serves them last first); kind 0 raw, 1 u16, 2 µV."""
        n = a.get("n", 1)
        if type(n) is not int or not 1 <= n <= ADC_BURST_MAX:
            raise _Bad("invalid burst size")
        out = [self._convert(a) for _ in range(n)]
        out.reverse()
        return out

    def _convert(self, a):
        pin = a["pin"]
        atten = int(a.get("atten", 0))
        src = self._adc.get(pin)
        mv = src.volts() * 1000.0 if src is not None else 0.0
        full, floor = ADC_FULL_MV[atten], ADC_FLOOR_MV[atten]
        raw = 0 if mv < floor else min(4095, max(0, int(round(mv / full * 4095))))
        kind = a.get("kind", 0)
        if kind == 1:
            return (raw * 65535 + 2047) // 4095
        if kind == 2:
            return int(round(raw * full * 1000.0 / 4095))
        return raw

