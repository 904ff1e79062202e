"""The emulated ADC's CPU charge: machine.ADC serves oversampling from bursts of host
conversions (emulator/mpy/machine.py). Each conversion served is charged the chip's 36.8 µs
(board_adc.ADC_CONVERSION_US), once, plus the counted work of the shim's served path, which
stands for the call (C on a chip, so it must stay small)."""
from sen.emulator.board_adc import ADC_CONVERSION_US
from sen.emulator.work_counter import US_PER_UNIT_240

# The CPU work each host call carries (`cpu`, what the board charges) is summed here, and
# the host calls are counted, over 640 conversions in a firmware-like oversampling loop.
PROBE = """
import _sen, _board
from machine import ADC, Pin
charged = [0, 0, 0]
real = _sen.call
def count(op, **kw):
    charged[0] += kw.get('cpu', 0)
    charged[1] += 1
    charged[2] += kw.get('adc', 0)
    return real(op, **kw)
_sen.call = count
a = ADC(Pin(34), atten=ADC.ATTN_11DB)
r = a.read_uv
p = Pin(2, Pin.OUT)
buf = [0] * 64
def conversions():
    for k in range(10):
        for i in range(64):
            buf[i] = r()
def stores():
    for k in range(10):
        for i in range(64):
            buf[i] = 0
def charge(f):
    p.value()  # a host call: what came before is charged
    charged[0] = charged[1] = charged[2] = 0
    f()
    p.value()  # and one to carry the loop's work
    return charged[0], charged[1], charged[2]
c, n, k = charge(conversions)
s, _, _ = charge(stores)
print(c, s, n, k)
"""


def test_a_served_conversion_costs_what_the_chip_takes(emu):
    out = emu.mp("exec", PROBE).split()
    loop_units, idle_units, host_calls, conversions = map(int, out)
    assert host_calls <= 640 // 32 + 2  # bursts, not a round trip a conversion
    assert conversions == 640  # each served conversion charged, once
    call_us = (loop_units - idle_units) / 640 * US_PER_UNIT_240
    print(f"emulated read_uv(): {ADC_CONVERSION_US} µs conversion + {call_us:.1f} µs counted for the call, at 240 MHz")
    # MicroPython's own call of a C method is a few µs on the chip; the shim's served path
    # is Python here (attribute loads, a list pop), so it counts somewhat more
    assert 2 <= call_us <= 20
