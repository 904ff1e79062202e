"""Import firmware modules (MicroPython sources) into CPython, as the device imports them.

The device's import root is firmware/, so firmware code says `import frame`. Host code
that must run the very same encoder (benchmarks, the demo, tests) goes through here.
"""
import importlib
import sys

from sen.paths import FIRMWARE


def load(name: str):
    root = str(FIRMWARE)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(name)
