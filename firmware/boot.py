# Runs first on every reset and deep-sleep wake. Kept tiny: everything that can fail
# lives in main.py/app.py, so a bad update still leaves a REPL.
# 240 MHz: the cycle's compute costs ~1 us x 50 mA per bytecode step at 240 MHz against
# ~3 us x 25 mA at 80 MHz, and the long waits are light sleep, where the clock is off.
try:
    import machine
    machine.freq(240000000)
except KeyboardInterrupt:
    import bootflag
    bootflag.interrupted = True
except Exception:
    pass
