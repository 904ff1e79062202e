"""sen.emulator: an emulated ESP32 node with real MicroPython as its CPU."""
