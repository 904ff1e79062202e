# The emulated board's door to its host, on the device (MicroPython, WebAssembly port).
# Loaded by emulator/runtime/board.mjs before boot.py; see emulator/board_signals.py.
import sys
import json
import io
import time as builtin_time  # the port's own modules, kept before the shims replace them
import micropython as builtin_micropython
import uselect as builtin_select  # the u-name is always the built-in (a select.py is on the path)
import _senhost
import _senfs


_work_seen = 0
_work_total = 0
_work_hidden = 0   # units spent in this runner's own Python (the flash VFS): C on a board
_hiding = False


def _work():
    global _work_seen, _work_total
    w = _senhost.work()
    _work_total += (w - _work_seen) & 0x3FFFFFFF
    _work_seen = w
    return _work_total


def work_units():
    """The firmware's work since this interpreter started, in counted units (function
    entries and loop iterations of its C code; emulator/work_counter.py): the same on any
    host. Work in the flash VFS below is left out: on a board that is C in the firmware."""
    return _work() - _work_hidden


def _hidden(fn):
    def run(*a):
        global _hiding, _work_hidden
        if _hiding:
            return fn(*a)
        _hiding = True
        w0 = _work()
        try:
            return fn(*a)
        finally:
            _work_hidden += _work() - w0
            _hiding = False
    return run


def _hide_methods(cls, names):
    for n in names:
        setattr(cls, n, _hidden(getattr(cls, n)))


def before_firmware():
    """Just before boot.py: let the board host take its heap baseline (emulator/mpy/_board.py)."""
    try:
        import _board
    except ImportError:
        return
    mark = getattr(_board, "mark_baseline", None)
    if mark is not None:
        mark()


def _enc(v):
    t = type(v)
    if t is bytes or t is bytearray or t is memoryview:
        return {"$b": bytes(v).hex()}
    if t is list or t is tuple:
        return [_enc(x) for x in v]
    if t is dict:
        return {k: _enc(x) for k, x in v.items()}
    return v


def _dec(v):
    t = type(v)
    if t is dict:
        if "$b" in v and len(v) == 1:
            return bytes.fromhex(v["$b"])
        return {k: _dec(x) for k, x in v.items()}
    if t is list:
        return [_dec(x) for x in v]
    return v


def call(op, **kw):
    """One synchronous call to the board host. Bytes pass both ways."""
    text = _senhost.call(op, json.dumps(_enc(kw)))
    r = json.loads(text)
    if "r" in r:
        return _dec(r["r"]) if '"$b"' in text else r["r"]
    if "k" in r:
        raise KeyboardInterrupt
    if "e" in r:
        raise OSError(r["e"])
    raise RuntimeError(r.get("x", "board host: bad reply"))


# ---- the board's flash: a host directory behind a Python-level VFS, so OSError carries
# the ESP32 port's errno values (ENOENT 2, EEXIST 17 ...), never Emscripten's.
def _fs(text):
    r = json.loads(text)
    if "e" in r:
        raise OSError(r["e"])
    return r.get("v")


def _norm(p):
    out = []
    for part in p.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if out:
                out.pop()
        else:
            out.append(part)
    return "/" + "/".join(out)


class SenFile(io.IOBase):
    # Reads go ahead in blocks: the importer asks for a few dozen bytes at a time, and
    # each trip to the host costs more than the bytes do.
    BLOCK = 2048

    def __init__(self, h, text):
        self._h = h
        self._t = text
        self._buf = b""
        self._off = 0

    def _chk(self):
        if self._h is None:
            raise OSError(9)  # EBADF, as on the ESP32 after close()

    def _drop(self):
        # forget read-ahead, putting the host's position back where the reader is
        left = len(self._buf) - self._off
        if left:
            _senfs.seek(self._h, -left, 1)
        self._buf = b""
        self._off = 0

    def _take(self, n):
        """n bytes, fewer only at end of file (the importer takes a short read as EOF);
        n < 0: all the rest."""
        if n < 0:
            out = self._buf[self._off:] + bytes.fromhex(_fs(_senfs.read(self._h, -1)))
            self._buf = b""
            self._off = 0
            return out
        out = b""
        while n > 0:
            left = len(self._buf) - self._off
            if left == 0:
                if n >= self.BLOCK:
                    return out + bytes.fromhex(_fs(_senfs.read(self._h, n)))
                self._buf = bytes.fromhex(_fs(_senfs.read(self._h, self.BLOCK)))
                self._off = 0
                left = len(self._buf)
                if left == 0:
                    break
            k = n if n < left else left
            out += self._buf[self._off:self._off + k]
            self._off += k
            n -= k
        return out

    def readinto(self, buf):
        self._chk()
        d = self._take(len(buf))
        n = len(d)
        buf[:n] = d
        return n

    def read(self, n=-1):
        self._chk()
        d = self._take(-1 if n is None else n)
        return d.decode() if self._t else d

    def readline(self, limit=-1):
        self._chk()
        line = b""
        while True:
            if self._off >= len(self._buf):
                self._buf = bytes.fromhex(_fs(_senfs.read(self._h, self.BLOCK)))
                self._off = 0
                if not self._buf:
                    break
            i = self._buf.find(b"\n", self._off)
            if i >= 0:
                line += self._buf[self._off:i + 1]
                self._off = i + 1
                break
            line += self._buf[self._off:]
            self._off = len(self._buf)
        return line.decode() if self._t else line

    def readlines(self):
        out = []
        while True:
            ln = self.readline()
            if not ln:
                return out
            out.append(ln)

    def __iter__(self):
        return self

    def __next__(self):
        ln = self.readline()
        if not ln:
            raise StopIteration
        return ln

    def write(self, b):
        self._chk()
        if self._buf:
            self._drop()
        if type(b) is str:
            b = b.encode()
        if not len(b):
            return 0  # MicroPython's b"".hex() is b"", not "": the host side would choke on it
        return _fs(_senfs.write(self._h, bytes(b).hex()))

    def seek(self, off, whence=0):
        self._chk()
        self._drop()
        return _fs(_senfs.seek(self._h, off, whence))

    def tell(self):
        return self.seek(0, 1)

    def flush(self):
        self._chk()

    def close(self):
        if self._h is not None:
            _senfs.close(self._h)
            self._h = None

    def ioctl(self, req, arg):
        if req == 4:  # MP_STREAM_CLOSE
            self.close()
        elif req == 11:  # MP_STREAM_GET_BUFFER_SIZE: the importer reads whole blocks, as
            return self.BLOCK  # it does from littlefs, not 32-byte pieces
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class SenVfs:
    # The shims (machine, esp32, time ...) sit in a read-only host directory that appears
    # at /.sen but is never listed, so the user's flash looks like a real board's.
    def __init__(self):
        self._cwd = "/"

    def _p(self, p):
        if not p.startswith("/"):
            p = self._cwd + "/" + p
        p = _norm(p)
        if p == "/.sen" or p.startswith("/.sen/"):
            self._r = 1
            return p[5:] or "/"
        self._r = 0
        return p

    def _rp(self, p):
        q = self._p(p)
        return (self._r, q)

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def ilistdir(self, p):
        return iter([tuple(e) for e in _fs(_senfs.listdir(*self._rp(p)))])

    def chdir(self, p):
        p = self._p(p)
        if not _fs(_senfs.stat(*self._rp(p)))[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self._cwd = p

    def getcwd(self):
        return self._cwd

    def mkdir(self, p):
        _fs(_senfs.mkdir(*self._rp(p)))

    def rmdir(self, p):
        _fs(_senfs.rmdir(*self._rp(p)))

    def remove(self, p):
        _fs(_senfs.remove(*self._rp(p)))

    def rename(self, a, b):
        _fs(_senfs.rename(*(self._rp(a) + (self._rp(b)[1],))))

    def stat(self, p):
        return tuple(_fs(_senfs.stat(*self._rp(p))))

    def statvfs(self, p):
        self._p(p)
        return tuple(_fs(_senfs.statvfs(self._r)))

    def open(self, p, mode):
        return SenFile(_fs(_senfs.open(*(self._rp(p) + (mode,)))), "b" not in mode)


_hide_methods(SenFile, ("readinto", "read", "readline", "readlines", "__next__", "write", "seek",
                        "tell", "flush", "close", "ioctl", "__exit__"))
_hide_methods(SenVfs, ("ilistdir", "chdir", "getcwd", "mkdir", "rmdir", "remove", "rename", "stat",
                       "statvfs", "open"))


def mount_flash():
    import vfs
    import os

    vfs.umount("/.sen")
    vfs.mount(SenVfs(), "/")
    os.chdir("/")


def install_shims():
    """Make `import time` give the board host's virtual-clock module, `import micropython`
    the port's own with kbd_intr told to the host, and `import select` one that polls the
    console in virtual time (emulator/mpy/time.py, _micropython.py, select.py). micropython
    is not an extensible built-in, so its shim has another file name and goes straight into
    sys.modules, which every import looks in first."""
    import os

    for mod, fname in (("time", "time"), ("micropython", "_micropython"), ("select", "select")):
        for name in ("/.sen/%s.mpy" % fname, "/.sen/%s.py" % fname):
            try:
                os.stat(name)
                break
            except OSError:
                pass
        else:
            continue
        saved = sys.path[:]
        had = sys.modules.pop(mod, None)
        sys.path[:] = ["/.sen"]
        try:
            sys.modules[mod] = __import__(fname)  # /.sen/<fname>.py, only that on the path
        except BaseException:
            if had is not None:
                sys.modules[mod] = had
            raise
        finally:
            sys.path[:] = saved


def _print_exc(e):
    # A real ESP32 runs boot.py/main.py from C; drop this runner's own frame.
    buf = io.StringIO()
    sys.print_exception(e, buf)
    lines = buf.getvalue().split("\n")
    keep = [ln for ln in lines if "/.sen/_sen.py" not in ln]
    sys.stdout.write("\n".join(keep))


def run_file(name):
    """pyexec_file_if_exists(): run boot.py / main.py in __main__, traceback on error."""
    try:
        with open(name) as f:
            src = f.read()
    except OSError:
        return
    g = __import__("__main__").__dict__
    try:
        exec(compile(src, name, "exec"), g)
    except SystemExit:
        pass
    except BaseException as e:
        _print_exc(e)
