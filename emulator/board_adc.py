"""Board ADC: the ESP32's attenuation ranges applied to the attached analog sources.
Mixed into board.Board."""
from .board_def import ADC1, ADC2
from .board_pins import _Bad


# ADC full-scale input per attenuation (mV). ESP-IDF quotes the accurate ranges of the
# ESP32 as 100-950 / 100-1250 / 150-1750 / 150-2450 mV; with 11 dB the reading keeps rising
# (less linearly) to about 3.1 V. Inputs below the floor read 0.
ADC_FULL_MV = (950.0, 1250.0, 1750.0, 3100.0)
ADC_FLOOR_MV = (100.0, 100.0, 150.0, 150.0)


class AdcMixin:
    def _op_adc_init(self, a):
        pin = self._check_pin(a["pin"])
        if pin not in ADC1 and pin not in ADC2:
            raise _Bad("invalid Pin for ADC")

    def _op_adc_read(self, a):
        pin = a["pin"]
        atten = int(a.get("atten", 0))
        src = self._adc.get(pin)
        mv = src.volts() * 1000.0 if src is not None else 0.0
        full, floor = ADC_FULL_MV[atten], ADC_FLOOR_MV[atten]
        raw = 0 if mv < floor else min(4095, max(0, int(round(mv / full * 4095))))
        kind = a.get("kind", "raw")
        if kind == "u16":
            return (raw * 65535 + 2047) // 4095
        if kind == "uv":
            return int(round(raw * full * 1000.0 / 4095))
        return raw

