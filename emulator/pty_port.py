"""The emulated board's serial port: a pty in raw mode, as a USB-UART bridge would appear.

The host keeps its own handle on the slave side, so a client (mpremote, pytest-embedded)
may close and reopen the port at any time without the master seeing a hang-up. Output
written while nobody reads fills the pty buffer and is then dropped, as bytes sent to an
unplugged UART are.
"""
import errno
import os
import tty


class PtyPort:
    def __init__(self):
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self.master)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.dropped = 0

    def read(self) -> bytes:
        try:
            return os.read(self.master, 4096)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.EIO:  # no client right now
                return b""
            raise

    def write(self, data: bytes) -> None:
        while data:
            try:
                n = os.write(self.master, data)
            except BlockingIOError:
                self.dropped += len(data)
                return
            except OSError as e:
                if e.errno == errno.EIO:
                    self.dropped += len(data)
                    return
                raise
            data = data[n:]

    def close(self) -> None:
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
