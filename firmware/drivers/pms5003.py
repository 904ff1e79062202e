# Plantower PMS5003 on machine.UART (9600 8N1), passive mode, with sleep/wake.
# Protocol: PMS5003 data manual v2.3 (host commands 42 4D cmd dH dL sumH sumL; 32-byte
# data frames 42 4D 00 1C ... with a 16-bit sum over the first 30 bytes).
import time
import struct

CMD_MODE = 0xE1  # data 0 = passive, 1 = active
CMD_READ = 0xE2  # passive read request
CMD_SLEEP = 0xE4  # data 0 = sleep, 1 = wake
FRAME_LEN = 32
WARMUP_S = 30  # fan run before readings settle (datasheet)


class PMSError(OSError):
    pass


def checksum_ok(frame):
    if len(frame) != FRAME_LEN or frame[0] != 0x42 or frame[1] != 0x4D:
        return False
    if frame[2] != 0x00 or frame[3] != 0x1C:
        return False
    s = 0
    for i in range(30):
        s += frame[i]
    return s & 0xFFFF == (frame[30] << 8) | frame[31]


def parse(frame):
    """32-byte frame -> (pm1_cf1, pm25_cf1, pm10_cf1, pm1, pm25, pm10) in ug/m3, or None."""
    if not checksum_ok(frame):
        return None
    return struct.unpack_from(">HHHHHH", frame, 4)


class PMS5003:
    def __init__(self, uart, set_pin=None):
        """uart: machine.UART at 9600; set_pin: optional machine.Pin on SET (high = run)."""
        self.uart = uart
        self.set_pin = set_pin
        self._cmd = bytearray(7)
        self._acc = bytearray(2 * FRAME_LEN)
        self.bad_frames = 0

    def _send(self, cmd, data):
        c = self._cmd
        c[0] = 0x42
        c[1] = 0x4D
        c[2] = cmd
        c[3] = 0
        c[4] = data
        s = 0x42 + 0x4D + cmd + data
        c[5] = s >> 8
        c[6] = s & 0xFF
        self.uart.write(c)

    def _drain(self):
        while self.uart.any():
            self.uart.read()

    def wake(self):
        if self.set_pin is not None:
            self.set_pin.value(1)
        self._send(CMD_SLEEP, 1)

    def sleep(self):
        self._send(CMD_SLEEP, 0)
        if self.set_pin is not None:
            self.set_pin.value(0)

    def passive(self):
        # The 8-byte ack this gets is drained, or skipped by its length, in read().
        self._send(CMD_MODE, 0)

    def read(self, timeout_ms=300):
        """Request one passive reading. Returns the parse() tuple; PMSError when the sensor
        does not answer or every frame fails its checksum."""
        self._drain()
        self._send(CMD_READ, 0)
        t0 = time.ticks_ms()
        acc = self._acc
        n = 0
        # 32 bytes at 9600 baud take 33.3 ms after the sensor starts answering.
        time.sleep_ms(34)
        while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
            k = self.uart.any()
            if not k:
                time.sleep_ms(2)
                continue
            room = len(acc) - n
            got = self.uart.readinto(memoryview(acc)[n:], min(k, room))
            if got:
                n += got
            # Scan for a header with a whole frame behind it.
            i = 0
            while i + FRAME_LEN <= n:
                if acc[i] == 0x42 and acc[i + 1] == 0x4D:
                    r = parse(memoryview(acc)[i:i + FRAME_LEN])
                    if r is not None:
                        return r
                    self.bad_frames += 1
                i += 1
            # Keep only a possible partial frame at the tail.
            keep = min(n, FRAME_LEN - 1)
            acc[0:keep] = acc[n - keep:n]
            n = keep
        raise PMSError(110, "PMS5003 did not answer")
