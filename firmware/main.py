# Node entry point. The maintenance escape is documented in app.py: Ctrl-C in the 3 s
# boot window after a reset (or during boot.py), the maintenance pin, or a file "maint".
import sys


def _tip_wake():
    # A rain tip before the cycle is due: the cheap path, no config, no node.
    import machine
    if machine.reset_cause() != machine.DEEPSLEEP_RESET or machine.wake_reason() != machine.EXT0_WAKE:
        return False
    import bootflag
    if bootflag.interrupted:
        return False
    import tipwake
    return tipwake.run()


def _gc_diag():
    # Diagnostics (sen bench node): a file "gcdiag" holding a byte count makes the GC run
    # after that much allocation, so gc.mem_alloc() read at sleep points is live data plus
    # at most that much garbage. Absent on deployed nodes.
    try:
        with open("gcdiag") as f:
            n = int(f.read())
        import gc
        gc.collect()
        gc.threshold(n)
    except (OSError, ValueError):
        pass


def _main():
    _gc_diag()
    try:
        if _tip_wake():
            return
        import app
        got = app.run()
        if type(got) is tuple and got[0] == "receiver":
            print("[sen] receiver node: run `import receiver` (firmware/receiver.py)")
            try:
                import receiver
            except ImportError:
                return
            receiver.run(got[1], got[2])
    except KeyboardInterrupt:
        print("[sen] maintenance: interrupted; REPL is yours (machine.reset() resumes)")
    except Exception as e:
        # A crash: count it (safe mode after repeated crashes) and restart, so the
        # gateway sees BOOT. A short pause leaves a chance to Ctrl-C into the REPL.
        try:
            sys.print_exception(e)
        except AttributeError:
            print("[sen] crash:", repr(e))
        try:
            import machine
            import state as st
            s = st.State(machine.RTC())
            s.load()
            s.buf[st.O_CRASHES] = min(s.buf[st.O_CRASHES] + 1, 255)
            s.buf[st.O_FLAGS] &= ~st.F_IN_CYCLE  # already counted here
            s.save()
            print("[sen] crash %d; restarting in 5 s (Ctrl-C = maintenance)" % s.buf[st.O_CRASHES])
            import time
            time.sleep(5)
            machine.reset()
        except KeyboardInterrupt:
            print("[sen] maintenance: REPL is yours")


_main()
