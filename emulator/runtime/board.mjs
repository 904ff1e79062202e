// One emulated ESP32's CPU: the official MicroPython WebAssembly port, driven byte by
// byte from the Python host (emulator/node_process.py) as a board's UART would be.
//
// fds:  0 = console input (pty bytes from the host)   1 = console output (CRLF, raw bytes)
//       cfg.req_fd = JSON lines to the host            cfg.rep_fd = JSON lines from the host
// Calls from MicroPython (_senhost.call) block on readSync: the firmware runs
// synchronously inside this process, exactly as it would on the chip.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const cfg = JSON.parse(process.argv[2]);
const { loadMicroPython } = await import(pathToFileURL(cfg.mp_module).href);
// The instance of the counting module (emulator/work_counter.py), for its work counter:
// Emscripten keeps its instance to itself, so take it as it is made.
let instance = null;
const instantiate = WebAssembly.instantiate;
WebAssembly.instantiate = async (...a) => {
  const r = await instantiate(...a);
  instance = r.instance || r;
  return r;
};
const RESET_CAUSE_ROM = {
  1: "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
  2: "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
  3: "rst:0x10 (RTCWDT_RTC_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
  4: "rst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
};

// ---- console output: LF -> CRLF as the ESP32 port's stdout does, written synchronously so
// nothing is lost when the host kills this process (power loss, deep sleep).
let outBuf = [];
let lastByte = 0;
// While Ctrl-C is off (micropython.kbd_intr(-1), as mpremote's mount protocol does) the
// console carries binary data: no LF -> CRLF then. (This port writes sys.stdout and
// sys.stdout.buffer alike, so the ESP32's text/binary distinction is made here.)
let rawOut = false;
let capture = null; // while non-null, output is collected here instead (banner rewrite)
function onOut(bytes) {
  for (const b of bytes) {
    if (b === 10 && lastByte !== 13 && !rawOut) pushOut(13);
    pushOut(b);
    lastByte = b;
  }
}
function pushOut(b) {
  if (capture) capture.push(b);
  else outBuf.push(b);
}
function writeOut(str) {
  for (const b of Buffer.from(str, "latin1")) pushOut(b);
  lastByte = str.length ? str.charCodeAt(str.length - 1) : lastByte;
}
// The port names itself "JS with Emscripten" (banner, Ctrl-B); a board names its own.
const BANNER_FROM = "; JS with Emscripten";
const BANNER_TO = Buffer.from("; " + cfg.board_name + " with ESP32", "utf8").toString("latin1");
// On a chip the shims are C; keep their Python frames out of firmware tracebacks.
const SHIM_FRAME = /  File "\/\.sen\/[^"\r\n]*", line \d+, in [^\r\n]*\r\n/g;
function filterOut(buf) {
  let s = buf.toString("latin1");
  const before = s;
  if (s.includes(BANNER_FROM)) s = s.split(BANNER_FROM).join(BANNER_TO);
  if (!cfg.shim_frames && s.includes('File "/.sen/')) s = s.replace(SHIM_FRAME, "");
  return s === before ? buf : Buffer.from(s, "latin1");
}
function flushOut() {
  if (!outBuf.length) return;
  const buf = filterOut(Buffer.from(outBuf));
  outBuf = [];
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

// ---- the request/reply channel to the host
const repBuf = { data: Buffer.alloc(0) };
function send(msg) {
  const line = Buffer.from(JSON.stringify(msg) + "\n");
  let off = 0;
  while (off < line.length) off += fs.writeSync(cfg.req_fd, line, off, line.length - off);
}
function readReply() {
  const chunk = Buffer.alloc(65536);
  for (;;) {
    const nl = repBuf.data.indexOf(10);
    if (nl >= 0) {
      const line = repBuf.data.subarray(0, nl).toString("utf8");
      repBuf.data = repBuf.data.subarray(nl + 1);
      return line;
    }
    let n;
    try {
      n = fs.readSync(cfg.rep_fd, chunk, 0, chunk.length, null);
    } catch (e) {
      if (e.code === "EAGAIN") {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
        continue;
      }
      throw e;
    }
    if (n === 0) process.exit(0); // host gone
    repBuf.data = Buffer.concat([repBuf.data, chunk.subarray(0, n)]);
  }
}
// A synchronous call to the host: MicroPython blocks here, like firmware waiting on hardware.
function hostCall(op, argsJson) {
  if (kbdPending) {
    // a Ctrl-C that came while the firmware read the console lands at this I/O point
    kbdPending = false;
    return '{"k":1}';
  }
  if (op === "_kbd_intr") rawOut = kbdOff = JSON.parse(argsJson).c < 0;
  if (op === "_stdin") {
    // no trip to the host when input is here, nor for a poll that must not wait (a
    // firmware loop polling the console, like the receiver board's)
    const ready = consoleReady();
    if (kbdPending) {
      kbdPending = false;
      return '{"k":1}';
    }
    if (ready) return '{"r":1}';
    if (JSON.parse(argsJson).ms === 0) return '{"r":0}';
  }
  flushOut();
  send({ t: "call", op, a: argsJson, n: consumed });
  const reply = readReply(); // JSON text; _sen.py decodes it and raises what it says
  // Deep sleep, reset, power cut: leave the VM at once, through all of its frames (a JS
  // exception crosses the wasm stack; Python code cannot catch it).
  if (reply.startsWith('{"off"')) throw new Off();
  // A KeyboardInterrupt answers a Ctrl-C byte still waiting in our input: the ESP32's
  // UART handler swallows that byte, so drop it when we get to it.
  if (reply.startsWith('{"k"')) dropCtrlC++;
  return reply;
}
let dropCtrlC = 0;
let kbdPending = false;
class Off extends Error {}

// ---- the firmware reading the console (sys.stdin; select.poll finds it always readable):
// bytes not yet taken by the REPL, then what is in the pipe, else park in virtual time
// until the host has more (op _stdin). Emscripten asks one byte at a time.
const stdinChunk = Buffer.alloc(4096);
let kbdOff = false; // micropython.kbd_intr(-1): Ctrl-C is data
function readPipe() {
  let n = 0;
  try {
    n = fs.readSync(0, stdinChunk, 0, stdinChunk.length, null);
  } catch (e) {
    if (e.code !== "EAGAIN") throw e;
  }
  if (n > 0) pending = Buffer.concat([pending, stdinChunk.subarray(0, n)]);
  return n > 0;
}
// A Ctrl-C at the head of the input is no data while kbd_intr is on: it was already
// delivered as KeyboardInterrupt (dropCtrlC), or it is one now (kbdPending).
function headCtrlC() {
  while (pending.length && pending[0] === 3 && (dropCtrlC > 0 || !kbdOff)) {
    pending = pending.subarray(1);
    consumed++;
    if (dropCtrlC > 0) dropCtrlC--;
    else kbdPending = true;
  }
}
function consoleReady() {
  if (!pending.length) readPipe();
  headCtrlC();
  return pending.length > 0;
}
function stdinByte() {
  for (;;) {
    const ready = consoleReady();
    if (kbdPending) return null;  // a short read; KeyboardInterrupt at the next I/O point
    if (ready) {
      const c = pending[0];
      pending = pending.subarray(1);
      consumed++;
      return c;
    }
    if (hostCall("_stdin", '{"ms":-1}').startsWith('{"k"')) kbdPending = true;
  }
}

// ---- filesystems: the board's flash (read-write) and the shims (read-only), both host
// directories, reached through a Python-level VFS (_sen.SenVfs) so errno values are the
// ESP32 port's, not Emscripten's.
const ERRNO = { EPERM: 1, ENOENT: 2, EIO: 5, EBADF: 9, EACCES: 13, EEXIST: 17, ENOTDIR: 20, EISDIR: 21,
  EINVAL: 22, ENOSPC: 28, EROFS: 30, ENOTEMPTY: 39, ENAMETOOLONG: 36 };
const roots = [[cfg.fs_root], cfg.shim_cache ? [cfg.shim_cache, ...cfg.shim_dirs] : cfg.shim_dirs];
const openFiles = new Map();
let nextHandle = 1;
function errOf(e) {
  return ERRNO[e.code] || 5;
}
function resolveIn(rootId, p, mustExist) {
  const rel = path.posix.normalize("/" + p);
  const dirs = roots[rootId];
  if (rootId === 1 && cfg.shim_cache && rel.endsWith(".py") &&
      fs.existsSync(path.join(cfg.shim_cache, rel.slice(0, -3) + ".mpy"))) {
    // compiled shim present: hide the source so the importer takes the bytecode
    throw Object.assign(new Error("hidden"), { code: "ENOENT" });
  }
  if (mustExist && dirs.length > 1) {
    for (const d of dirs) {
      const full = path.join(d, rel);
      if (fs.existsSync(full)) return full;
    }
  }
  return path.join(dirs[0], rel);
}
function wrap(fn) {
  return (...args) => {
    try {
      const v = fn(...args);
      return JSON.stringify({ v: v === undefined ? null : v });
    } catch (e) {
      if (e.code) return JSON.stringify({ e: errOf(e) });
      if (typeof e.errno_ === "number") return JSON.stringify({ e: e.errno_ });
      throw e;
    }
  };
}
function erofs() {
  const e = new Error("read-only");
  e.errno_ = ERRNO.EROFS;
  return e;
}
function statTuple(st) {
  const t = Math.max(0, Math.floor(st.mtimeMs / 1000) - 946684800); // ESP32 epoch is 2000
  return [st.isDirectory() ? 0x4000 : 0x8000, 0, 0, 0, 0, 0, st.isDirectory() ? 0 : st.size, t, t, t];
}
function dirBytes(d) {
  let n = 0;
  for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
    const f = path.join(d, ent.name);
    if (ent.isDirectory()) n += 4096 + dirBytes(f);
    else n += Math.ceil(fs.statSync(f).size / 4096) * 4096 || 4096;
  }
  return n;
}
const FLAGS = { r: "r", w: "w", a: "a", x: "wx", "r+": "r+", "w+": "w+", "a+": "a+" };
const senfs = {
  stat: wrap((r, p) => statTuple(fs.statSync(resolveIn(r, p, true)))),
  listdir: wrap((r, p) => {
    const seen = new Map();
    const dirs = roots[r];
    let found = false;
    for (const d of dirs) {
      const full = path.join(d, path.posix.normalize("/" + p));
      let ents;
      try {
        ents = fs.readdirSync(full, { withFileTypes: true });
      } catch (e) {
        if (e.code === "ENOENT" && dirs.length > 1) continue;
        throw e;
      }
      found = true;
      for (const ent of ents) {
        if (seen.has(ent.name) || (r === 0 && p === "/" && ent.name === ".sen")) continue;
        const isDir = ent.isDirectory();
        const size = isDir ? 0 : fs.statSync(path.join(full, ent.name)).size;
        seen.set(ent.name, [ent.name, isDir ? 0x4000 : 0x8000, 0, size]);
      }
    }
    if (!found) fs.readdirSync(path.join(dirs[0], p)); // raises ENOENT
    return [...seen.values()];
  }),
  mkdir: wrap((r, p) => {
    if (r) throw erofs();
    fs.mkdirSync(resolveIn(r, p));
  }),
  rmdir: wrap((r, p) => {
    if (r) throw erofs();
    if (path.posix.normalize("/" + p) === "/") throw Object.assign(new Error(), { errno_: ERRNO.EPERM });
    fs.rmdirSync(resolveIn(r, p));
  }),
  remove: wrap((r, p) => {
    if (r) throw erofs();
    const f = resolveIn(r, p);
    if (fs.statSync(f).isDirectory()) throw Object.assign(new Error(), { errno_: ERRNO.EISDIR });
    fs.unlinkSync(f);
  }),
  rename: wrap((r, a, b) => {
    if (r) throw erofs();
    fs.renameSync(resolveIn(r, a), resolveIn(r, b));
  }),
  statvfs: wrap((r) => {
    const blocks = Math.floor(cfg.fs_bytes / 4096);
    const used = r ? blocks : Math.min(blocks, Math.ceil(dirBytes(roots[0][0]) / 4096) + 2);
    return [4096, 4096, blocks, blocks - used, blocks - used, 0, 0, 0, 0, 255];
  }),
  open: wrap((r, p, mode) => {
    const m = mode.replace(/[bt]/g, "");
    const flags = FLAGS[m];
    if (!flags) throw Object.assign(new Error(), { errno_: ERRNO.EINVAL });
    if (r && flags !== "r") throw erofs();
    const f = resolveIn(r, p, true);
    if (fs.existsSync(f) && fs.statSync(f).isDirectory()) throw Object.assign(new Error(), { errno_: ERRNO.EISDIR });
    const fd = fs.openSync(f, flags);
    const h = nextHandle++;
    openFiles.set(h, { fd, pos: flags[0] === "a" ? fs.fstatSync(fd).size : 0, append: flags[0] === "a" });
    return h;
  }),
  read: wrap((h, n) => {
    const f = openFiles.get(h);
    if (!f) throw Object.assign(new Error(), { errno_: ERRNO.EBADF });
    if (n < 0) n = Math.max(0, fs.fstatSync(f.fd).size - f.pos);
    const buf = Buffer.alloc(n);
    const got = n ? fs.readSync(f.fd, buf, 0, n, f.pos) : 0;
    f.pos += got;
    return buf.subarray(0, got).toString("hex");
  }),
  write: wrap((h, hex) => {
    const f = openFiles.get(h);
    if (!f) throw Object.assign(new Error(), { errno_: ERRNO.EBADF });
    const buf = Buffer.from(hex, "hex");
    if (f.append) f.pos = fs.fstatSync(f.fd).size;
    const n = fs.writeSync(f.fd, buf, 0, buf.length, f.pos);
    f.pos += n;
    return n;
  }),
  seek: wrap((h, off, whence) => {
    const f = openFiles.get(h);
    if (!f) throw Object.assign(new Error(), { errno_: ERRNO.EBADF });
    const base = whence === 0 ? 0 : whence === 1 ? f.pos : fs.fstatSync(f.fd).size;
    f.pos = Math.max(0, base + off);
    return f.pos;
  }),
  close: wrap((h) => {
    const f = openFiles.get(h);
    if (f) {
      fs.closeSync(f.fd);
      openFiles.delete(h);
    }
  }),
};
function closeAllFiles() {
  for (const f of openFiles.values()) {
    try {
      fs.closeSync(f.fd);
    } catch (e) {}
  }
  openFiles.clear();
}

// ---- interpreter life cycle
let mp = null;
let mode = "friendly"; // which REPL the board is in: "friendly" or "raw"
let booting = true;

// A fresh VM with the runtime mounted. Nothing here touches the Board, so it is done
// before the host's go: while the chip is off (deep sleep) or still being started.
async function prepare() {
  closeAllFiles();
  mp = await loadMicroPython({ stdout: onOut, stderr: onOut, linebuffer: false,
    heapsize: cfg.heap_bytes, pystack: 4096, url: cfg.mp_wasm, stdin: stdinByte });
  // the counting module's work units (work_counter.py), modulo 2^30: the proxy passes
  // integers as int32, and _sen.work() accumulates the steps
  const count = instance.exports.sen_work;
  mp.registerJsModule("_senhost", { call: hostCall, work: () => count() % 1073741824 });
  mp.registerJsModule("_senfs", senfs);
  mp.runPython(BOOTSTRAP);
}

async function boot(cause, soft) {
  rawOut = kbdOff = false;
  kbdPending = false;
  if (soft) await prepare();
  if (soft) writeOut("MPY: soft reboot\r\n");
  else writeOut("ets Jul 29 2019 12:21:46\r\n\r\n" + (RESET_CAUSE_ROM[cause] || RESET_CAUSE_ROM[1]) + "\r\n");
  hostCall("_boot", JSON.stringify({ cause, soft })); // the Board's on_boot, for soft resets
  for (const step of ["_sen.install_shims()", "_sen.before_firmware()"]) {
    try {
      mp.runPython(step);
    } catch (e) {
      if (e instanceof Off) throw e;
      writeOut("emulator: " + step + " failed:\r\n" + String(e.message || e) + "\r\n");
    }
  }
  hostCall("_firmware", "{}");
  mp.runPython("_sen.run_file('boot.py')");
  if (mode === "friendly") mp.runPython("_sen.run_file('main.py')");
  if (mode === "raw") {
    // After a soft reset from the raw REPL the ESP32 comes back in the raw REPL.
    capture = [];
    mp.replInit();
    mp.replProcessChar(1);
    capture = null;
    writeOut("raw REPL; CTRL-B to exit\r\n>");
  } else {
    mp.replInit();
  }
  flushOut();
  booting = false;
}

const BOOTSTRAP = `
import sys, vfs, io
def _mk():
    import _senfs, json
    class Ro:
        def mount(self, ro, mk): pass
        def umount(self): pass
        def chdir(self, p): pass
        def getcwd(self): return ''
        def ilistdir(self, p):
            r = json.loads(_senfs.listdir(1, p))
            if 'e' in r: raise OSError(r['e'])
            return iter([tuple(e) for e in r['v']])
        def stat(self, p):
            r = json.loads(_senfs.stat(1, p))
            if 'e' in r: raise OSError(r['e'])
            return tuple(r['v'])
        def open(self, p, m):
            if 'w' in m or 'a' in m or '+' in m: raise OSError(30)
            r = json.loads(_senfs.open(1, p, 'r'))
            if 'e' in r: raise OSError(r['e'])
            d = json.loads(_senfs.read(r['v'], -1))['v']
            _senfs.close(r['v'])
            d = bytes.fromhex(d)
            return io.BytesIO(d) if 'b' in m else io.StringIO(d.decode())
    return Ro()
vfs.umount('/')
vfs.mount(_mk(), '/.sen')
del _mk
sys.path[:] = ['', '.frozen', '/.sen', '/lib']
import _sen
_sen.mount_flash()
`;

// ---- console input
let pending = Buffer.alloc(0);
let consumed = 0; // bytes taken from stdin so far (the host uses it to know we are idle)
let processing = false;
let pasteState = 0; // raw-paste request \x05 A \x01 seen so far
let rawBufEmpty = true;

async function processPending() {
  if (processing || booting) return;
  processing = true;
  try {
    while (pending.length) {
      const c = pending[0];
      pending = pending.subarray(1);
      consumed++;
      if (c === 3 && dropCtrlC > 0) { dropCtrlC--; continue; }
      if (mode === "raw") {
        // Raw-paste needs stdin reads from inside the interpreter, which this port stubs
        // out (it would spin forever): refuse it, so mpremote falls back to plain raw REPL.
        if (pasteState === 0 && c === 5 && rawBufEmpty) { pasteState = 1; continue; }
        if (pasteState === 1) {
          if (c === 0x41) { pasteState = 2; continue; }
          mp.replProcessChar(5); pasteState = 0;
        } else if (pasteState === 2) {
          pasteState = 0;
          if (c === 1) { writeOut("R\x00"); continue; }
          mp.replProcessChar(5); mp.replProcessChar(0x41);
        }
      }
      const before = outBuf.length;
      let ret;
      try {
        ret = mp.replProcessChar(c);
      } catch (e) {
        if (!(e instanceof Off)) throw e;
        booting = true;
        await bootSafely(await powerDown(), false);
        continue;
      }
      if (mode === "raw") {
        if (c === 4 || c === 3 || c === 1) rawBufEmpty = true;  // Ctrl-A restarts the raw REPL with an empty line
        else if (c === 2) { mode = "friendly"; }
        else if (c !== 1) rawBufEmpty = false;
      } else if (c === 1) {
        const said = Buffer.from(outBuf.slice(before)).toString("latin1");
        if (said.includes("raw REPL; CTRL-B to exit")) { mode = "raw"; rawBufEmpty = true; }
      }
      if (ret & 0x100) {
        // Soft reset (Ctrl-D on an empty line, or sys.exit()): the wasm port only prints
        // OK; a real ESP32 tears the VM down and starts again, so build a fresh one.
        flushOut();
        booting = true;
        await bootSafely(5, true);
      }
    }
  } finally {
    processing = false;
  }
  flushOut();
  send({ t: "idle", n: consumed });
}

process.stdin.on("data", (chunk) => {
  pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
  processPending().catch(fatal);
});
process.stdin.on("end", () => process.exit(0));

function fatal(e) {
  flushOut();
  try {
    send({ t: "fatal", msg: String(e && e.stack || e) });
  } catch (e2) {}
  process.exit(3);
}

// Boot; if the firmware deep-sleeps or resets during boot, power down and boot again.
async function bootSafely(cause, soft) {
  for (;;) {
    try {
      await boot(cause, soft);
      return;
    } catch (e) {
      if (!(e instanceof Off)) throw e;
      cause = await powerDown();
      soft = false;
    }
  }
}

// The chip is off: what it was doing and what sat in its UART are gone. Prepare a fresh
// VM and wait (blocked, like the chip) for the host's go with the next reset cause.
async function powerDown() {
  capture = null;
  flushOut();
  consumed += pending.length;
  pending = Buffer.alloc(0);
  pasteState = 0;
  rawBufEmpty = true;
  dropCtrlC = 0;
  mode = "friendly";
  mp = null;
  await prepare();
  send({ t: "off", n: consumed });
  return JSON.parse(readReply()).go.cause;
}

mode = cfg.mode || "friendly";
// Prepared, this process waits for the host's go (with the reset cause) before it boots.
prepare().then(() => {
  const go = JSON.parse(readReply()).go;
  return bootSafely(go.cause, false);
}).then(() => {
  send({ t: "idle", n: consumed });
  processPending().catch(fatal);
}).catch(fatal);
