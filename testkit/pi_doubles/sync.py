"""One lock between the threads that touch the emulated chips: a RealtimePump advancing the
clock (and firing GPIO callbacks from it) and the caller's threads doing SPI/GPIO."""
import threading
import time

lock = threading.RLock()


class RealtimePump:
    """Advance a VirtualClock along wall time (times `speed`) on a background thread, so
    threaded code on the doubles (pyLoRa's DIO callbacks, a gateway's watchdog, time.sleep
    loops) sees virtual time pass. Callbacks run on the pump's thread, as RPi.GPIO runs
    them on its own thread."""

    def __init__(self, clock, speed=1.0, tick_s=0.002):
        self.clock = clock
        self.speed = float(speed)
        self.tick_s = float(tick_s)
        self._stop = threading.Event()
        self._thread = None
        self.error = None

    def start(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sen-realtime-pump", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        t0_wall = time.monotonic()
        with lock:
            t0_virt = self.clock.now_us()
        while not self._stop.wait(self.tick_s):
            target = t0_virt + int((time.monotonic() - t0_wall) * self.speed * 1e6)
            try:
                with lock:
                    self.clock.advance_to(target)
            except Exception as e:  # surfaced by stop()
                self.error = e
                return
