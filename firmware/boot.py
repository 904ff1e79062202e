# Runs first on every reset and deep-sleep wake. Kept tiny: everything that can fail
# lives in main.py/app.py, so a bad update still leaves a REPL. Frequency first, since
# the cycle's CPU time at 80 MHz costs less charge than at 240 MHz for this workload.
try:
    import machine
    machine.freq(80000000)
except Exception:
    pass
