"""Run a scenario's stations as emulated boards with the real firmware and the real gateway.

One board per [[station]] (each with its own board type), all on one virtual clock, world
and radio medium; the gateway service runs in this process on that medium (as `sen emulate
--gateway` does). The construction sequence is emulator/cli.py's; what this module adds:

- provisioning by writing each board's flash directly (the mpy bundle, board.json,
  node.json) and registering the keys with the gateway, so no mpremote round trips;
- a bridge that stops at a virtual time and runs actions at given virtual times (the
  gateway kill/restart);
- holding the clock while the gateway still has frames to process, so at `max` speed its
  ACKs go out in the same virtual instant as on a gateway that keeps up (a real gateway
  answers within ~1 s, far inside the node's 1.5 s receive window).
"""
import json
import logging
import shutil
import threading
import time
from pathlib import Path

from sen.emulator.bridge import Bridge, Stop, default_shim_dirs

log = logging.getLogger("sen.emulator.city_run")

NODE_IDS = {"air": 101, "water": 201, "rain": 301}


class HeldBridge(Bridge):
    """A Bridge that ends at `end_us`, runs `actions` [(t_us, fn)] when the clock passes
    them, holds the clock while `hold()` is true, and calls `tick()` between steps."""

    def __init__(self, sessions, clock, end_us, *, actions=(), hold=None, tick=None):
        super().__init__(sessions, clock, None)
        self.end_us = end_us
        self.actions = sorted(actions, key=lambda a: a[0])
        self.hold = hold
        self.tick = tick
        self._last_tick = 0.0

    def schedule(self):
        if self.tick is not None and time.monotonic() - self._last_tick > 0.1:
            self._last_tick = time.monotonic()
            self.tick()
        if self.clock.now_us() >= self.end_us:
            raise Stop()
        while self.actions and self.clock.now_us() >= self.actions[0][0]:
            self.actions.pop(0)[1]()
        if self.hold is not None and not any(s.busy() for s in self.sessions) and self.hold():
            return 0.002  # the gateway is still working on frames: time waits for it
        return super().schedule()


def _gateway_service_class():
    from sen.gateway.service import GatewayService

    class CountingGateway(GatewayService):
        """Counts frames in and frames processed, so the clock can wait for the gateway."""

        def __init__(self, *a, **kw):
            self.received = 0
            self.processed = 0
            super().__init__(*a, **kw)

        def on_frame(self, frame, meta):
            self.received += 1
            super().on_frame(frame, meta)

        def ingest(self, items):
            try:
                return super().ingest(items)
            finally:
                self.processed += len(items)

        def pending(self):
            return self.received > self.processed and not self.stopped.is_set()

    return CountingGateway


def start_gateway(config_path, world, clock):
    """emulator/gateway_host.start_gateway with the counting service; returns (service, thread)."""
    from sen.emulator.gateway_host import _medium
    from sen.gateway.config import load

    cfg = load(config_path)
    emulated = [rc for rc in cfg.radios if rc.backend == "emulated"]
    site = world.gateways[0]
    for rc in emulated:
        rc.options.setdefault("position", tuple(site["xy"]))
        rc.options.setdefault("antenna_gain_dbi", site.get("antenna_gain_dbi", 3.0))
    service = _gateway_service_class()(cfg, medium=_medium(world, clock))
    thread = threading.Thread(target=service.run, kwargs={"install_signals": False}, name="sen-gateway", daemon=True)
    thread.start()
    return service, thread


def kill_gateway(service, thread):
    """An abrupt stop: the radios go deaf and the loop ends without draining its queue or
    flushing anything; frames still queued in memory are lost, as in a crash. What the raw
    log holds is recovered by the next service on the same data directory."""
    for b in service.backends.values():
        try:
            b.stop()
        except Exception:
            log.exception("stopping radio %s", b.name)
    service.shutdown = lambda *a, **k: None  # no drain, no forwarder grace: a crash
    service.stopping.set()
    thread.join(10)
    lost = service.queue.qsize()
    for r in service.runners:
        r.stop(0.1)
    try:
        service.raw_log.close()
        service.store.close()
    except Exception:
        log.exception("closing the killed gateway's files")
    service.stopped.set()
    return lost


def stop_gateway(service, thread):
    service.stopping.set()
    thread.join(30)


def provision(flash_root: Path, bundle_dir: Path, node_cfg: dict):
    """Write a node's flash as `sen node flash` leaves it: the bundle, board.json, node.json."""
    flash_root.mkdir(parents=True, exist_ok=True)
    for src in bundle_dir.rglob("*"):
        if src.is_file():
            dest = flash_root / src.relative_to(bundle_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    (flash_root / "node.json").write_text(json.dumps(node_cfg))


def build_bundles(stations, work: Path, console=None):
    """One mpy bundle per (board, kind) the scenario needs."""
    from sen.host_tools.bundle import build

    out = {}
    for st in stations:
        k = (st.board, st.kind)
        if k not in out:
            out[k] = work / f"bundle-{st.board}-{st.kind}"
            build(st.board, st.kind, out[k], console=console)
    return out


class CityRun:
    """Boards for every station of `world`, provisioned, plus the gateway of `gateway_toml`."""

    def __init__(self, world, clock, work: Path, gateway_toml: Path, node_cfgs: dict, console=None):
        from sen.emulator import board as host
        from sen.emulator.board_def import load_board
        from sen.emulator.node_process import find_micropython_mjs, find_node
        from sen.emulator.session import BoardSession
        from sen.emulator.shim_cache import compile_shims

        find_node(), find_micropython_mjs()
        self.world, self.clock, self.work = world, clock, Path(work)
        self.gateway_toml = gateway_toml
        self.stations = list(world.stations.values())
        bundles = build_bundles(self.stations, self.work, console)
        self.shim_dirs = default_shim_dirs()
        self.cache = compile_shims(self.shim_dirs)
        self.sessions, self.boards, self.node_of = [], [], {}
        seen = {}
        for st in self.stations:
            board_def = load_board(st.board)
            idx = seen.get(st.board, 0)
            seen[st.board] = idx + 1
            root = self.work / "flash" / st.id
            provision(root, bundles[(st.board, st.kind)], node_cfgs[st.id])
            bd = dict(board_def, _index=idx, _name=st.id)
            b = host.Board(bd, world, clock, str(root))
            heap = int(board_def.get("heap_kb", 160)) * 1024
            fs_bytes = max(1 << 20, int(board_def.get("flash_kb", 4096)) * 1024 - (2 << 20))
            self.boards.append(b)
            self.node_of[st.id] = node_cfgs[st.id]["node_id"]
            self.sessions.append(BoardSession(
                name=st.id, board_name=board_def.get("name", st.board), board=b, clock=clock,
                fs_root=root, shim_dirs=self.shim_dirs, shim_cache=self.cache, heap_bytes=heap, fs_bytes=fs_bytes))
        self.gw = None
        self.restarts = []  # (virtual s, frames lost in the killed gateway's queue)

    def restart_gateway(self):
        lost = kill_gateway(*self.gw)
        self.gw = start_gateway(self.gateway_toml, self.world, self.clock)
        self.restarts.append({"at_s": self.clock.now_s(), "queued_frames_lost": lost})
        log.info("gateway killed and restarted at %.0f s (%d queued frames lost)", self.clock.now_s(), lost)

    def gateway_busy(self):
        return self.gw is not None and self.gw[0].pending()

    def run(self, hours: float, restart_at_h=None, tick=None):
        self.gw = start_gateway(self.gateway_toml, self.world, self.clock)
        actions = []
        if restart_at_h is not None and restart_at_h < hours:
            actions.append((int(restart_at_h * 3600e6), self.restart_gateway))
        bridge = HeldBridge(self.sessions, self.clock, int(hours * 3600e6), actions=actions,
                            hold=self.gateway_busy, tick=tick)
        try:
            bridge.run()
        finally:
            # let the gateway finish what it heard before the end, then stop it cleanly
            deadline = time.monotonic() + 20
            while self.gateway_busy() and time.monotonic() < deadline:
                time.sleep(0.01)
            stop_gateway(*self.gw)
            bridge.close()
            for b in self.boards:
                if hasattr(b, "close"):
                    b.close()

    def report(self):
        from sen.emulator.report import build_report
        return build_report(self.boards, self.clock)

    def close(self):
        for s in self.sessions:
            s.port.close()
        if self.cache is not None:
            shutil.rmtree(self.cache, ignore_errors=True)
