# `select` for the emulated board: the port's own module, except that the console
# (sys.stdin, sys.stdin.buffer) is polled through the board host, which answers in virtual
# time (a poll with a timeout waits that long on the virtual clock unless input comes),
# as a UART's readiness would. The port alone reports the console always readable.
import sys

import _sen

_s = _sen.builtin_select
POLLIN = _s.POLLIN
POLLOUT = _s.POLLOUT
POLLERR = _s.POLLERR
POLLHUP = _s.POLLHUP


def _is_console(obj):
    return obj is sys.stdin or obj is getattr(sys.stdin, "buffer", None)


def _console_ready(ms):
    return _sen.call("_stdin", ms=ms)


class poll:
    def __init__(self):
        self._real = _s.poll()
        self._n_real = 0
        self._console = None  # (obj, mask)

    def register(self, obj, mask=POLLIN | POLLOUT):
        if _is_console(obj):
            self._console = (obj, mask)
        else:
            self._real.register(obj, mask)
            self._n_real += 1

    def modify(self, obj, mask):
        if _is_console(obj):
            if self._console is None:
                raise OSError(2)  # ENOENT, as the port's poll says for an unknown object
            self._console = (obj, mask)
        else:
            self._real.modify(obj, mask)

    def unregister(self, obj):
        if _is_console(obj):
            self._console = None
        else:
            self._real.unregister(obj)
            self._n_real -= 1

    def poll(self, timeout=-1):
        return list(self.ipoll(timeout))

    def ipoll(self, timeout=-1, flags=0):
        con = self._console
        if con is None:
            return self._real.ipoll(timeout, flags)
        obj, mask = con
        out = []
        if self._n_real:
            out = list(self._real.ipoll(0, flags))
        ready = mask & POLLOUT
        if mask & POLLIN and _console_ready(0 if (out or ready) else timeout):
            ready |= POLLIN
        if ready:
            out.append((obj, ready))
        return iter(out)


def select(rlist, wlist, xlist, timeout=None):
    p = poll()
    for o in rlist:
        p.register(o, POLLIN)
    for o in wlist:
        p.register(o, POLLOUT)
    ms = -1 if timeout is None else int(timeout * 1000)
    got = p.poll(ms)
    r = [o for o, m in got if m & POLLIN]
    w = [o for o, m in got if m & POLLOUT]
    return r, w, []
