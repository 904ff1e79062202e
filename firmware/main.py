# Node entry point. The maintenance escape is documented in app.py: Ctrl-C or any key in
# the 3 s boot window after a reset, serial input waiting at a wake, the strap pin, or a
# file named "maint".
import sys


def _main():
    try:
        import app
        app.run()
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
