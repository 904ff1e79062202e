"""Virtual time: a node on a 15-minute cycle through 24 simulated hours in the real
emulator (`sen emulate`: MicroPython under Node, the bridge, the board host), at --speed max.

Run:  .venv/bin/python -m sen.bench.virtual_time [--board esp32-rfm95] [--hours 24]
The node (NODE_MAIN_PY, reading its pins from board.json) counts boots in RTC memory, reserves a counter in NVS, reads the
battery, sends one 20-byte LoRa frame at SF9 (DIO0 IRQ), sleeps the radio and deep-sleeps to
the next 15-minute slot. Printed: wall time, boots, the board's run report summary
(charge, average current, time on air, awake time per cycle); last line one JSON object.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sen.emulator.board_def import write_device_json

NODE_MAIN_PY = r'''
import machine, esp32, time, struct, json

INTERVAL_MS = 15 * 60 * 1000
t0 = time.ticks_ms()
wdt = machine.WDT(timeout=30000)
with open("board.json") as f:
    bd = json.loads(f.read())
lora = bd["lora"]
rtc = machine.RTC()
mem = rtc.memory()
boots = struct.unpack("<I", mem)[0] + 1 if len(mem) == 4 else 1
rtc.memory(struct.pack("<I", boots))

nvs = esp32.NVS("sen")
try:
    ctr = nvs.get_i32("ctr")
except OSError:
    ctr = 0
nvs.set_i32("ctr", ctr + 1)
nvs.commit()

adc = bd["adc"]
bat = int(machine.ADC(machine.Pin(adc["battery"]), atten=machine.ADC.ATTN_11DB).read_uv() * adc["battery_ratio"]) // 1000

spi = machine.SPI(lora["spi_id"], baudrate=5000000, sck=machine.Pin(lora["sck"]),
                  mosi=machine.Pin(lora["mosi"]), miso=machine.Pin(lora["miso"]))
cs = machine.Pin(lora["cs"], machine.Pin.OUT, value=1)
rst = machine.Pin(lora["reset"], machine.Pin.OUT, value=1)
dio0 = machine.Pin(lora["dio0"], machine.Pin.IN)

def wr(reg, val):
    cs(0)
    spi.write(bytes([reg | 0x80, val]))
    cs(1)

def rd(reg):
    cs(0)
    spi.write(bytes([reg]))
    v = spi.read(1)[0]
    cs(1)
    return v

assert rd(0x42) == 0x12
print('BOOT', time.time(), ctr + 1)
wr(0x01, 0x80)            # LoRa, sleep
wr(0x01, 0x81)            # standby
frf = int(921.4e6 / 61.03515625)
wr(0x06, frf >> 16); wr(0x07, (frf >> 8) & 0xFF); wr(0x08, frf & 0xFF)
wr(0x1D, 0x72)            # BW 125 kHz, CR 4/5, explicit header
wr(0x1E, 0x94)            # SF9, CRC on
wr(0x26, 0x04)            # AGC auto
wr(0x09, 0x8E)            # PA_BOOST, 16 dBm
wr(0x40, 0x40)            # DIO0 = TxDone
payload = struct.pack("<IIH", 0x53454E31, ctr, bat) + bytes(10)
wr(0x0E, 0x00); wr(0x0D, 0x00)
cs(0)
spi.write(b"\x80")
spi.write(payload)
cs(1)
wr(0x22, len(payload))
done = []
dio0.irq(lambda p: done.append(time.ticks_ms()), machine.Pin.IRQ_RISING)
wr(0x01, 0x83)            # TX
while not done:
    time.sleep_ms(10)
wr(0x12, 0xFF)            # clear IRQs
wr(0x01, 0x80)            # radio to sleep
wdt.feed()
elapsed = time.ticks_diff(time.ticks_ms(), t0)
machine.deepsleep(INTERVAL_MS - elapsed)
'''


def run_day(board="esp32-rfm95", hours=24.0, timeout_s=600):
    """Run the node in `sen emulate` until its RTC passes `hours`; return the figures."""
    import serial
    sen = str(Path(sys.executable).parent / "sen")
    with tempfile.TemporaryDirectory(prefix="sen-vt-") as tmp:
        flash = Path(tmp) / "flash"
        flash.mkdir()
        (flash / "main.py").write_text(NODE_MAIN_PY)
        write_device_json(board, flash)
        report = Path(tmp) / "report.json"
        p = subprocess.Popen([sen, "emulate", "--board", board, "--flash", str(flash), "--speed", "max",
                              "--report", str(report)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        boots, last_t, buf = 0, 0, b""
        try:
            line = p.stdout.readline().strip()
            if not line.startswith("PORT "):
                raise RuntimeError("sen emulate did not start: %r" % line)
            port = serial.Serial(line.split()[1], 115200, timeout=0.2)
            t0 = time.monotonic()
            while last_t < hours * 3600 and time.monotonic() - t0 < timeout_s:
                buf += port.read(65536)
                *lines, rest = buf.split(b"\n")
                buf = rest
                for ln in lines:
                    if ln.startswith(b"BOOT "):
                        boots += 1
                        last_t = int(ln.split()[1])
            wall = time.monotonic() - t0
            port.close()
        finally:
            os.killpg(p.pid, signal.SIGINT)
            p.communicate(timeout=60)
        rep = json.loads(report.read_text())
        text = Path(str(report) + ".txt").read_text()
    b = rep["boards"][0]
    cycles = [c for c in b["cycles"] if c["frames"]]
    return {"board": board, "simulated_h": last_t / 3600.0, "wall_s": round(wall, 2), "boots": boots,
            "x_real_time": round(last_t / wall) if wall else None,
            "average_current_ua": round(b["average_current_ma"] * 1000, 2) if b["average_current_ma"] else None,
            "awake_ms_per_cycle": round(sum(c["awake_ms"] for c in cycles) / len(cycles), 1) if cycles else None,
            "cpu_ms_per_cycle": round(sum(c["cpu_ms"] for c in cycles) / len(cycles), 1) if cycles else None,
            "airtime_ms_per_frame": round(cycles[0]["airtime_ms"], 2) if cycles else None,
            "frames": sum(c["frames"] for c in b["cycles"])}, text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="esp32-rfm95")
    ap.add_argument("--hours", type=float, default=24.0)
    a = ap.parse_args(argv)
    fig, text = run_day(a.board, a.hours)
    print(text.rstrip())
    print("%.1f simulated hours (%d boots) in %.2f s wall: %sx real time"
          % (fig["simulated_h"], fig["boots"], fig["wall_s"], fig["x_real_time"]))
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
