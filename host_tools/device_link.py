"""A link to a MicroPython board over a serial port, through mpremote's SerialTransport.

It turns every way a port can fail into one SenError line naming the fix, and it gets
past a node that is running its cycle through the firmware's maintenance escape: Ctrl-C
during the boot window after a reset, or serial input waiting when it wakes from deep
sleep (docs/node-config.md).
"""
import os
import time

import serial
from mpremote.transport import TransportError
from mpremote.transport_serial import SerialTransport

from sen.errors import SenError

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"


class DeviceError(Exception):
    """Code run on the device raised; .remote holds its traceback text."""

    def __init__(self, remote: str):
        self.remote = remote
        lines = [ln for ln in remote.strip().splitlines() if ln.strip()]
        super().__init__(lines[-1] if lines else "device error")


def _is_url(port: str) -> bool:
    return "://" in port


class DeviceLink:
    def __init__(self, port: str):
        self.port = port
        if not _is_url(port) and not os.path.exists(port):
            raise SenError(f"no serial port {port}",
                           "check the USB cable and `ls /dev/ttyUSB* /dev/ttyACM*`; for an emulated board use the "
                           "PORT line `sen emulate` printed")
        try:
            self.t = SerialTransport(port, baudrate=115200, exclusive=True)
        except TransportError:
            raise SenError(f"serial port {port} is busy or cannot be opened",
                           "close the other program using it (mpremote, screen, `sen node logs`, a gateway) and retry") from None
        except serial.SerialException as exc:
            raise SenError(f"serial port {port} cannot be opened ({exc})", "check permissions (dialout group) and retry") from None

    def close(self):
        try:
            if self.t.in_raw_repl:
                self.t.exit_raw_repl()
            self.t.close()
        except (OSError, serial.SerialException):
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_for(self, seconds: float) -> bytes:
        end = time.monotonic() + seconds
        data = b""
        while time.monotonic() < end:
            n = self.t.serial.in_waiting
            if n:
                data += self.t.serial.read(n)
            else:
                time.sleep(0.01)
        return data

    def enter(self, wait_s: float = 30.0) -> bytes:
        """Get to the raw REPL without a soft reset, interrupting a running cycle.

        Returns what the board printed meanwhile (the cycle log up to the interrupt).
        """
        seen = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            # Ctrl-C reaches the firmware at its next sleep or I/O point, or in its boot
            # window; a key press also counts as the escape in that window.
            self.t.serial.write(b"\r\x03\x03")
            seen += self._read_for(0.2)
            self.t.serial.write(b"\r\x01")
            seen += self._read_for(0.3)
            if RAW_BANNER in seen:
                # The cycle is stopped; let mpremote enter cleanly so its prompt bookkeeping holds.
                self.t.enter_raw_repl(soft_reset=False, timeout_overall=10)
                return seen
        if b">>>" in seen or b"MicroPython" in seen:
            raise SenError(f"the board on {self.port} answers but does not enter the raw REPL",
                           "press the reset button and retry within the 3 s boot window")
        raise SenError(f"no MicroPython REPL answered on {self.port} within {wait_s:.0f} s",
                       "flash MicroPython 1.27 for ESP32 first (esptool.py write_flash 0x1000 ESP32_GENERIC-*.bin), "
                       "or check that this is the board's port")

    def exec(self, code: str, timeout: float = 30) -> str:
        try:
            out, err = self.t.exec_raw(code, timeout=timeout)
        except TransportError as exc:
            raise SenError(f"lost the board on {self.port} ({exc})", "check the cable and run the command again") from None
        except (OSError, serial.SerialException):
            raise SenError(f"the serial port {self.port} went away", "reconnect the board and run the command again") from None
        if err:
            raise DeviceError(err.decode(errors="replace"))
        return out.decode(errors="replace")

    def soft_reset_and_capture(self, seconds: float) -> str:
        """Leave the raw REPL and soft-reset from the friendly REPL, as a power-on would run
        boot.py and main.py; return what the board prints in the next `seconds`."""
        self.t.exit_raw_repl()
        self._read_for(0.1)
        self.t.serial.write(b"\x04")
        return self._read_for(seconds).decode(errors="replace")
