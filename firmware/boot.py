# Runs first on every reset and deep-sleep wake. Kept tiny: everything that can fail
# lives in main.py/app.py, so a bad update still leaves a REPL. 80 MHz: the cycle's
# CPU time costs less charge at 80 MHz than at 240 MHz for this I/O-bound workload.
try:
    import machine
    machine.freq(80000000)
except KeyboardInterrupt:
    import bootflag
    bootflag.interrupted = True
except Exception:
    pass
