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
import { makeSenfs } from "./senfs.mjs";

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

// ---- filesystems (senfs.mjs): errno values are the ESP32 port's, not Emscripten's
const { senfs, closeAllFiles } = makeSenfs(cfg);

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
