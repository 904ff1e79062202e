"""Run a scenario's stations as emulated boards with the real firmware and the real gateway.

One board per [[station]] (each with its own board type), all on one virtual clock, world
and radio medium; the gateway service runs in this process on that medium (as `sen emulate
--gateway` does). The construction sequence is host_tools/emulate_cli.py's; what this module adds:

- provisioning by writing each board's flash directly (the mpy bundle, board.json,
  node.json) and registering the keys with the gateway, so no mpremote round trips;
- a bridge that stops at a virtual time and runs actions at given virtual times (the
  gateway kill/restart);
- holding the clock while the gateway still has frames to process, so at `max` speed its
  ACKs go out in the same virtual instant as on a gateway that keeps up (a real gateway
  answers within ~1 s, far inside the node's 1.5 s receive window).

The emulator does not import the gateway or the host tools: the caller hands CityRun its
`gateway` (start_gateway, stop_gateway, kill_gateway; host_tools/emulated_gateway.py) and
its `build_bundle` (host_tools/bundle.build).
"""
import json
import logging
import shutil
import time
from pathlib import Path

from sen.emulator import board as host
from sen.emulator import board_signals as sig
from sen.emulator.bridge import Bridge, default_shim_dirs
from sen.emulator.board_def import load_board
from sen.emulator.node_process import find_micropython_mjs, find_node
from sen.emulator.radio_medium import world_medium
from sen.emulator.report import build_report
from sen.emulator.session import BoardSession
from sen.emulator.shim_cache import compile_shims

log = logging.getLogger("sen.emulator.city_run")



class HeldBridge(Bridge):
    """A Bridge that ends at `end_us`, runs `actions` [(t_us, fn)] when the clock passes
    them, holds the clock while `hold()` is true, and calls `tick()` between steps."""

    def __init__(self, sessions, clock, end_us, *, actions=(), hold=None, tick=None, power_on_us=None):
        super().__init__(sessions, clock, None, hold=hold, end_us=end_us)
        self.power_on_us = power_on_us or {}  # session name -> virtual us of its first power-on
        self.actions = sorted(actions, key=lambda a: a[0])
        self.hold = hold
        self.tick = tick
        self._last_tick = 0.0

    def start_sessions(self) -> None:
        """Boards in power_on_us stay unpowered until their time (two nodes switched on in the
        same instant would collide on every cycle)."""
        for s in self.sessions:
            t = self.power_on_us.get(s.name, 0)
            if t > 0:
                s.off = (t, None, sig.PWRON_RESET)  # resolve_off powers it on then
            else:
                s.start(sig.PWRON_RESET)

    def schedule(self):
        if self.tick is not None and time.monotonic() - self._last_tick > 0.1:
            self._last_tick = time.monotonic()
            self.tick()
        while self.actions and self.clock.now_us() >= self.actions[0][0]:
            self.actions.pop(0)[1]()
        return super().schedule()




def _stored_frames(db_path):
    import sqlite3
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    finally:
        con.close()




def provision(flash_root: Path, bundle_dir: Path, node_cfg: dict):
    """Write a node's flash as `sen node flash` leaves it: the bundle, board.json, node.json."""
    flash_root.mkdir(parents=True, exist_ok=True)
    for src in bundle_dir.rglob("*"):
        if src.is_file():
            dest = flash_root / src.relative_to(bundle_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    (flash_root / "node.json").write_text(json.dumps(node_cfg))


def build_bundles(stations, work: Path, build, console=None):
    """One mpy bundle per (board, kind) the scenario needs; build(board, kind, out, console=)."""
    out = {}
    for st in stations:
        k = (st.board, st.kind)
        if k not in out:
            out[k] = work / f"bundle-{st.board}-{st.kind}"
            build(st.board, st.kind, out[k], console=console)
    return out


class AirTally:
    """Per sending radio: frames put on air, and frames a gateway radio received intact.
    What the radio lost is then known frame by frame, apart from anything the gateway lost."""

    def __init__(self, gateway_ids):
        self.prefixes = tuple(f"{g}." for g in gateway_ids)
        self.by_sender = {}

    def count(self, record):
        t = self.by_sender.setdefault(record["sender"], {"sent": 0, "heard": 0})
        t["sent"] += 1
        if any(name.startswith(self.prefixes) and r["outcome"] == "ok"
               for name, r in record["receivers"].items()):
            t["heard"] += 1


class CityRun:
    """Boards for every station of `world`, provisioned, plus the gateway of `gateway_toml`."""

    def __init__(self, world, clock, work: Path, gateway_toml: Path, nodes, console=None, *, gateway, build_bundle):
        """nodes: [{"name": board name, "station": station id, "cfg": node.json dict}]; two
        boards may sit at one station (e.g. a confirmed and an unconfirmed node side by side).
        gateway: start_gateway(toml, world, clock) -> (service, thread), stop_gateway(service,
        thread), kill_gateway(service, thread) -> frames lost; build_bundle: see build_bundles."""
        self.gateway = gateway
        find_node(), find_micropython_mjs()
        self.world, self.clock, self.work = world, clock, Path(work)
        self.gateway_toml = gateway_toml
        self.nodes = list(nodes)
        stations = [world.station(n["station"]) for n in self.nodes]
        bundles = build_bundles(stations, self.work, build_bundle, console)
        self.shim_dirs = default_shim_dirs()
        self.cache = compile_shims(self.shim_dirs)
        self.sessions, self.boards = [], []
        all_st = list(world.stations.values())
        for n, st in zip(self.nodes, stations):
            board_def = load_board(st.board)
            # Board takes the _index-th station whose board is its board id
            idx = [s.id for s in all_st if s.board == st.board].index(st.id)
            root = self.work / "flash" / n["name"]
            provision(root, bundles[(st.board, st.kind)], n["cfg"])
            bd = dict(board_def, _index=idx, _name=n["name"], _radio_name=n["name"])
            b = host.Board(bd, world, clock, str(root))
            heap = int(board_def.get("heap_kb", 160)) * 1024
            fs_bytes = max(1 << 20, int(board_def.get("flash_kb", 4096)) * 1024 - (2 << 20))
            self.boards.append(b)
            self.sessions.append(BoardSession(
                name=n["name"], board_name=board_def.get("name", st.board), board=b, clock=clock,
                fs_root=root, shim_dirs=self.shim_dirs, shim_cache=self.cache, heap_bytes=heap, fs_bytes=fs_bytes,
                console_log=self.work / f"{n['name']}.serial.log"))
        self.gw = None
        self.restarts = []  # (virtual s, frames lost in the killed gateway's queue)
        self.air = AirTally([g["id"] for g in world.gateways])

    def restart_gateway(self):
        """Kill the gateway at its worst instant: its next frame is made durable in the raw
        log, then the service dies before storing or ACKing it. A new service on the same
        data directory starts at once and must recover that frame from the raw log."""
        self.gw[0].crash_after_log = True
        self._crash_armed_at = self.clock.now_s()

    def _restart_now(self):
        old = self.gw[0]
        lost = self.gateway.kill_gateway(*self.gw)
        before = _stored_frames(old.cfg.store_path)
        self.gw = self.gateway.start_gateway(self.gateway_toml, self.world, self.clock)
        self.gw[0].started_evt.wait(10)
        self.restarts.append({"armed_at_s": round(self._crash_armed_at, 1), "crashed_at_s": round(self.clock.now_s(), 1),
                              "frames_in_raw_log_not_stored": old.crashed_frames, "queued_frames_lost": lost,
                              "frames_stored_before_restart": before,
                              "raw_log_records_recovered": self.gw[0].recovered})
        log.info("gateway crashed at %.0f s and restarted", self.clock.now_s())

    def gateway_busy(self):
        if self.gw is None:
            return False
        if self.gw[0].crashed.is_set():
            self._restart_now()
            return True
        return self.gw[0].pending()

    def run(self, hours: float, restart_at_h=None, tick=None, actions=(), power_on_s=None):
        """Run to `hours` of virtual time; actions: [(hour, fn)] run with the clock held."""
        medium = world_medium(self.world, self.clock)
        if self.air.count not in medium.observers:
            medium.observers.append(self.air.count)
        self.gw = self.gateway.start_gateway(self.gateway_toml, self.world, self.clock)
        actions = [(int(h * 3600e6), fn) for h, fn in actions if h < hours]
        if restart_at_h is not None and restart_at_h < hours:
            actions.append((int(restart_at_h * 3600e6), self.restart_gateway))
        bridge = HeldBridge(self.sessions, self.clock, int(hours * 3600e6), actions=actions,
                            hold=self.gateway_busy, tick=tick,
                            power_on_us={k: int(v * 1e6) for k, v in (power_on_s or {}).items()})
        try:
            bridge.run()
        finally:
            # let the gateway finish what it heard before the end, then stop it cleanly
            deadline = time.monotonic() + 20
            while self.gateway_busy() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.gateway.stop_gateway(*self.gw)
            bridge.close()
            for b in self.boards:
                if hasattr(b, "close"):
                    b.close()

    def report(self):
        return build_report(self.boards, self.clock)

    def close(self):
        for s in self.sessions:
            s.port.close()
            if s.console_log is not None:
                s.console_log.close()
                s.console_log = None
        if self.cache is not None:
            shutil.rmtree(self.cache, ignore_errors=True)
