"""The contract between the CPU bridge (emulator/bridge.py, emulator/runtime/) and the
board host (emulator/board.py).

One Board per emulated board, built by the bridge as
    Board(board_def, world, clock, fs_root)
  board_def  the board's TOML as a dict, plus two keys the bridge adds:
             "_index" (0-based position with --count) and "_name" (e.g. "ttgo-lora32-v21#0");
             optional "_radio_name": the radio's name on the medium (default: the station id;
             the city runner sets it so two boards at one station stay apart in its records).
  world      whatever load_world() returned (None when board.py has no load_world).
  clock      the one VirtualClock all boards share.
  fs_root    host directory holding the board's flash filesystem (it survives resets).

Hooks the bridge calls on the Board:
  board.attach(host)          once, before the first boot; `host` is a BoardHost (below).
  board.on_boot(reset_cause)  before each interpreter start (cause: the constants below).
  board.call(op, args)        for each call the MicroPython shims make (see "On the device").
                              Return anything JSON-able; bytes/bytearray are allowed anywhere
                              in the result (the bridge carries them). Or raise:
                                Wait / DeepSleep / HardReset / PowerLoss / Interrupt (below),
                                OSError(errno, msg) -> the same OSError in MicroPython,
                                anything else -> RuntimeError("board: ...") in MicroPython
                                (the REPL stays up; the bridge logs the host traceback).
  board.close()               once, when the emulator stops (optional).
Module-level functions the CLI looks for in emulator/board.py (each optional):
  load_world(scenario_path_or_None, clock) -> world   (raise SenError for a broken file)
  write_report(report_path, boards, clock)            (after all boards closed)

BoardHost (what the bridge gives the board through attach):
  host.ctrl_c_pending() -> bool  a Ctrl-C byte arrived and has not been delivered yet.
                                 The bridge already checks before every call and while
                                 waiting, so boards rarely need this.
  host.power_cut(off_ms=0)       cut power now (e.g. from a clock timer set by the
                                 scenario): the Node process is killed wherever the firmware
                                 is, the clock may advance off_ms, then the board boots
                                 with PWRON_RESET. Safe to call from a clock callback.
  host.name                      same as board_def["_name"].

Time: board.call never sleeps in wall time. A call that must block the firmware until
virtual time T raises Wait(T). The bridge advances the shared clock only when every
board that is running firmware is blocked (so several boards stay causal), paces it
against wall time for --speed X, and delivers Ctrl-C while waiting.

On the device (MicroPython side), the bridge provides before boot.py runs:
  import _sen; _sen.call(op, **kwargs) -> result    (bytes pass both ways)
  _sen.call raises KeyboardInterrupt / OSError / RuntimeError as described above.
  _sen.cpu_us()        CPU µs of this interpreter, minus the host-side filesystem's work.
  _sen.builtin_time    the port's own time module (wall clock of the host).
  The shim directory (emulator/mpy/, plus emulator/runtime/mpy/ for _sen) appears
  read-only at /.sen, never listed in `/`; sys.path is ['', '.frozen', '/.sen', '/lib'].
  Shims are compiled once per run with mpy-cross (emulator/shim_cache.py) and load as
  bytecode. If the shims have time.py it is installed as sys.modules["time"] (imported
  with only /.sen on the path), so `import time` in firmware gets it.
  Then, still before boot.py, `_board.mark_baseline()` is called if _board exists.
  Ctrl-C is held back while all this loads (it cannot interrupt the shims' imports).
  Tracebacks on the console drop the shims' frames (File "/.sen/..."), which are C on a
  real board; SEN_EMULATOR_SHIM_FRAMES=1 keeps them, for debugging the shims.

Reboots: DeepSleep / HardReset / PowerLoss raised from a call leave the VM at once (a JS
exception unwinds the wasm stack; firmware cannot catch it), and the same Node process
starts a fresh VM; nothing survives but the flash directory and what the Board keeps.
host.power_cut() while the firmware is running (not blocked in a call) kills the process.
"""


# machine.reset_cause() values of the ESP32 port.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


class BoardSignal(Exception):
    """Raised by Board.call to make the bridge do something to the interpreter."""


class Wait(BoardSignal):
    """Block the calling firmware until the virtual clock reaches until_us.

    wake: optional callable() -> value-or-None, polled after each clock step; a non-None
    value ends the wait early (e.g. a pin IRQ during lightsleep) and becomes the result.
    Otherwise `result` is returned to the firmware when the time is reached.
    """

    def __init__(self, until_us, result=None, wake=None, console=False):
        super().__init__(until_us)
        self.until_us = None if until_us is None else int(until_us)  # None: no deadline
        self.result = result
        self.wake = wake
        self.console = console  # firmware reading the console: more input ends it
        # a console poll's timeout, on the host's clock: the other end of a UART (mpremote,
        # a person) lives in real time, so waiting for it is not skipped at --speed max
        self.wall_deadline = None


class DeepSleep(BoardSignal):
    """machine.deepsleep(ms): the interpreter dies now; after ms of virtual time (or when
    wake() returns truthy, for ext0/ext1; ms None = only wake) the bridge calls
    on_boot(DEEPSLEEP_RESET) and starts a fresh interpreter (boot.py, main.py)."""

    def __init__(self, ms=None, wake=None):
        super().__init__(ms)
        self.ms = None if ms is None else int(ms)
        self.wake = wake


class HardReset(BoardSignal):
    """machine.reset() (HARD_RESET) or a watchdog (WDT_RESET): kill and reboot now."""

    def __init__(self, cause=HARD_RESET):
        super().__init__(cause)
        self.cause = cause


class PowerLoss(BoardSignal):
    """Power cut during this call: kill now; boot with PWRON_RESET after off_ms."""

    def __init__(self, off_ms=0):
        super().__init__(off_ms)
        self.off_ms = int(off_ms)


class Interrupt(BoardSignal):
    """Raise KeyboardInterrupt in the firmware at this call."""


class BoardHost:
    """Interface only: the bridge passes an object with these members to Board.attach."""

    name: str = ""

    def ctrl_c_pending(self) -> bool:
        raise NotImplementedError

    def power_cut(self, off_ms: int = 0) -> None:
        raise NotImplementedError
