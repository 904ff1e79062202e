"""A minimal node main.py (MicroPython) used by the board tests: count boots in RTC memory,
reserve frame counters in NVS, read the battery, send one LoRa frame at SF9 with the
SX1276 (DIO0 IRQ + lightsleep), put the radio to sleep and deep-sleep to the next slot."""

MAIN_PY = r'''
import machine, esp32, time, struct

INTERVAL_MS = 15 * 60 * 1000
t0 = time.ticks_ms()
wdt = machine.WDT(timeout=30000)
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

bat = machine.ADC(machine.Pin(35), atten=machine.ADC.ATTN_11DB).read_uv() * 2 // 1000

spi = machine.SPI(2, baudrate=5000000, sck=machine.Pin(18), mosi=machine.Pin(23), miso=machine.Pin(19))
cs = machine.Pin(5, machine.Pin.OUT, value=1)
rst = machine.Pin(14, machine.Pin.OUT, value=1)
dio0 = machine.Pin(26, machine.Pin.IN)

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
