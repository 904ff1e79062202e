"""Shared test set-up: firmware modules import as the device imports them (root = firmware/)."""
import sys

from sen.paths import FIRMWARE

if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))
