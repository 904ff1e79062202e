# `micropython` for the emulated board: the port's own module, with kbd_intr() also told to
# the board host, which then passes Ctrl-C bytes to the firmware as data instead of raising
# KeyboardInterrupt (mpremote's mount protocol turns Ctrl-C off while it sends binary data).
import _sen

_m = _sen.builtin_micropython
for _n in dir(_m):
    if not _n.startswith("__"):
        globals()[_n] = getattr(_m, _n)


def kbd_intr(c):
    _m.kbd_intr(c)
    _sen.call("_kbd_intr", c=c)
