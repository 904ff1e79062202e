"""`sen bench frame`: bytes and time on air, Sen v1 versus LoRaWAN + Cayenne LPP.

Sen frames are made by the firmware encoder itself. LPP sizes follow the LPP layout:
[channel 1 B][type 1 B][data], temperature 2 B (0.1 °C), humidity 1 B (0.5 %),
barometer 2 B (0.1 hPa), analog input 2 B (0.01, signed, so it wraps above 327.67) and,
where a value does not fit analog, the LPP v2 generic sensor (4 B unsigned). LoRaWAN adds
13 B: MHDR 1, DevAddr 4, FCtrl 1, FCnt 2, FPort 1, MIC 4.
"""
import json
import os
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sen.emulator.node_runtime import find_micropython_mjs, find_node
from sen.errors import SenError
from sen.firmware_modules import load
from sen.paths import FIRMWARE

RUN_IN_MP = Path(__file__).resolve().parents[1] / "host_tools" / "run_in_micropython.mjs"

LORAWAN_OVERHEAD = 13
SETS = {
    "air": [("air_temp", 31.2), ("rh", 65), ("pressure", 1008.5), ("pm25", 35), ("pm10", 52), ("battery", 3.96)],
    "water": [("battery", 3.62), ("water_temp", 27.35), ("ph", 7.21), ("conductivity", 512), ("turbidity", 48.7),
              ("water_level", 1.234), ("dissolved_oxygen", 7.56)],
    "rain": [("battery", 4.1), ("rain_tips", 1234), ("rain_depth", 3.2), ("rain_intensity", 48.0)],
}
LPP_FIXED = {"air_temp": 2, "water_temp": 2, "rh": 1, "pressure": 2}
ALLOC_SCRIPT = """\
import gc, frame
f = frame.Framer(42, bytes(16))
rd = [(1, 312, 0), (2, 130, 0), (3, 10085, 0), (5, 35, 0), (6, 52, 0), (7, 198, 0)]
f.begin(1, 0)
for r in rd: f.reading(r[0], r[1], r[2])
f.end()
gc.collect(); gc.disable(); a = gc.mem_alloc()
for c in range(2, 102):
    f.begin(c, 0)
    for r in rd: f.reading(r[0], r[1], r[2])
    f.end()
print('ALLOC', (gc.mem_alloc() - a) // 100)
"""


def lpp_item_bytes(name: str, value: float) -> int:
    if name in LPP_FIXED:
        return 2 + LPP_FIXED[name]
    return 2 + (2 if abs(value) <= 327.67 else 4)


def sen_frame(readings, counter=1234):
    frame, channels = load("frame"), load("channels")
    rd = sorted((channels.CHANNELS[n][0],) + channels.scaled(n, v) for n, v in readings)
    return frame.Framer(42, bytes(16)).encode(counter, 0, [(0, rd)])


def device_alloc_per_frame() -> int | None:
    """Heap bytes the encoder allocates per frame in real MicroPython (gc.mem_alloc delta)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "alloc.py"
        script.write_text(ALLOC_SCRIPT)
        try:
            env = dict(os.environ, SEN_MP_MODULE=str(find_micropython_mjs()))
            out = subprocess.run([find_node(), str(RUN_IN_MP), str(FIRMWARE), str(script)],
                                 capture_output=True, text=True, timeout=120, env=env).stdout
            return int(out.split("ALLOC")[1].split()[0])
        except (OSError, IndexError, ValueError, subprocess.TimeoutExpired, SenError):
            return None


def run() -> dict:
    airtime = load("airtime")
    console = Console()
    table = Table(title="Bytes and time on air (125 kHz, CR 4/5, preamble 8, CRC on)")
    for col in ["set", "Sen B", "LoRaWAN+LPP B", "Sen SF7 ms", "LPP SF7 ms", "Sen SF9 ms", "LPP SF9 ms",
                "Sen SF12 ms", "LPP SF12 ms"]:
        table.add_column(col, justify="right")
    result = {}
    for name, readings in SETS.items():
        sen = len(sen_frame(readings))
        lpp = LORAWAN_OVERHEAD + sum(lpp_item_bytes(n, v) for n, v in readings)
        toa = {f"{who}_sf{sf}_ms": round(airtime.time_on_air_us(size, sf=sf) / 1000, 3)
               for who, size in (("sen", sen), ("lpp", lpp)) for sf in (7, 9, 12)}
        result[name] = {"sen_bytes": sen, "lpp_lorawan_bytes": lpp, **toa}
        table.add_row(name, str(sen), str(lpp), *[f"{toa[f'{w}_sf{sf}_ms']:.1f}" for sf in (7, 9, 12) for w in ("sen", "lpp")])
    console.print(table)
    alloc = device_alloc_per_frame()
    console.print(f"firmware encoder heap allocation per air frame in MicroPython 1.27: {alloc} bytes")
    summary = {
        "air_bytes": result["air"]["sen_bytes"],
        "lpp_lorawan_air_bytes": result["air"]["lpp_lorawan_bytes"],
        "water_bytes": result["water"]["sen_bytes"],
        "lpp_lorawan_water_bytes": result["water"]["lpp_lorawan_bytes"],
        "rain_bytes": result["rain"]["sen_bytes"],
        "lpp_lorawan_rain_bytes": result["rain"]["lpp_lorawan_bytes"],
        "air_sf9_ms": result["air"]["sen_sf9_ms"],
        "lpp_lorawan_air_sf9_ms": result["air"]["lpp_sf9_ms"],
        "device_alloc_bytes_per_frame": alloc,
        "sets": result,
    }
    print(json.dumps(summary))
    return summary
