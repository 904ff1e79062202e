"""Pins a chip model drives or watches, on top of emulator.devices.PinListener.

The board wires these to the `machine.Pin` shim: it asks level() for what the chip drives
and registers watch(callback) to hear about edges (IRQs, wake-ups) the moment the chip
makes them in virtual time.
"""
from ..devices import PinListener


class OutputPin(PinListener):
    """A pin the chip drives. level() is 0/1, or None while released (open drain)."""

    def __init__(self, name, level=0):
        self.name = name
        self._level = level
        self._watchers = []

    def level(self):
        return self._level

    def watch(self, callback):
        """callback(level) runs on every change, inside the clock step that caused it."""
        self._watchers.append(callback)

    def unwatch(self, callback):
        if callback in self._watchers:
            self._watchers.remove(callback)

    def set(self, level):
        if level == self._level:
            return
        self._level = level
        for cb in list(self._watchers):
            cb(level)


class InputPin(PinListener):
    """A pin the chip only watches (RESET, SET, ...). on_change(level) runs on each new level."""

    def __init__(self, name, on_change, initial=1):
        self.name = name
        self._on_change = on_change
        self.value = initial

    def driven(self, level):
        level = 1 if level else 0
        if level != self.value:
            self.value = level
            self._on_change(level)
