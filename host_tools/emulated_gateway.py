"""A Sen gateway inside the emulator's process, listening on the scenario's radio medium.

This is the host tools' side of the emulator/gateway pairing: the emulator does not import
the gateway, so what it needs to run one (start, stop, crash; the "emulated" radio backend)
is built here and handed to it (emulator/city_run.CityRun, `sen emulate --gateway`).

`sen emulate --gateway gateway.toml` and the city-day run use the real gateway service (raw
log, verify, decode, store, forwarders) with its `emulated` radio backends placed at the
scenario's [[gateway]] locations, so emulated nodes' frames reach a real gateway over the
modelled air (path loss, collisions, loss) with no extra board. Frames arrive in the
virtual-clock step that ends them; the service stores them from its own thread, as on a Pi.
With a `semtech_udp` radio, each [[gateway]] of kind "concentrator" becomes an SX1302 model
whose packet forwarder sends what it hears to that radio over loopback UDP. At --speed 1 the
forwarders are polled every 5 ms and downlink timing follows the wall clock; with
virtual_time=True (the city-day run, `sen demo --concentrator`) the radio keeps time by the
virtual clock and the clock is held while a datagram is on its way, so any speed gives the
same world.

The service counts frames in and frames processed, and the bridge holds the clock while the
two differ (`pending`), so the gateway's ACKs go out at the same virtual instant however fast
the host is: a real gateway answers within ~1 s, far inside a node's receive window.
"""
import logging
import threading
import time

from sen.emulator.concentrator_forwarder import place_concentrators
from sen.emulator.gateway_radio import EmulatedRadio
from sen.emulator.radio_medium import world_medium
from sen.errors import SenError
from sen.gateway.config import load
from sen.gateway.radio import register_backend
from sen.gateway.radio.base import Backend
from sen.gateway.radio.semtech_udp import parse_address
from sen.gateway.service import GatewayService

log = logging.getLogger("sen.emulator.gateway")

_medium = world_medium  # the name the concentrator tests know


class EmulatedBackend(EmulatedRadio, Backend):
    """The gateway's "emulated" radio backend: the emulator's register-level SX1276 driver
    (emulator/gateway_radio.py) on the gateway's Backend."""


def _emulated(rc, gateway_id, on_frame, medium):
    return EmulatedBackend(rc, gateway_id, on_frame, medium)


def register():
    """Make backend = "emulated" available to gateways started in this process."""
    register_backend("emulated", _emulated)


def _held_service_class():
    class HeldGateway(GatewayService):
        """With crash_after_log set, the next batch is written to the raw log (fsync) and then
        the service dies before the store commits it or any ACK goes out, the worst instant."""

        def __init__(self, *a, **kw):
            self.received = 0
            self.processed = 0
            self.crash_after_log = False
            self.crashed = threading.Event()
            self.crashed_frames = 0
            self.recovered = None
            self.started_evt = threading.Event()
            super().__init__(*a, **kw)

        def recover(self):
            self.recovered = super().recover()
            return self.recovered

        def start(self):
            super().start()
            self.started_evt.set()

        def on_frame(self, frame, meta):
            self.received += 1
            super().on_frame(frame, meta)

        def log_frames(self, items, **kw):
            if self.crash_after_log and items:
                with self.raw_lock:
                    self.raw_log.append(items)
                self.crashed_frames = len(items)
                self.crashed.set()
                self.stopping.set()
                self.shutdown = lambda *a, **k: None  # a crash: no drain, no clean close
                return None
            return super().log_frames(items, **kw)

        def process(self, records):
            try:
                return super().process(records)
            finally:
                self.processed += len(records)

        def pending(self):
            """Frames heard but not yet processed, or a concentrator's datagram still on its
            way (the bridge holds the clock meanwhile)."""
            if self.crashed.is_set() or self.stopped.is_set():
                return False
            return self.received > self.processed or self.in_flight()

        def in_flight(self):
            return False

    return HeldGateway


def start_gateway(config_path, world, clock, virtual_time: bool = False):
    """Start the gateway service of `config_path` on `world`'s medium; returns (service, thread).
    virtual_time: concentrators run on the virtual clock (see the module's docstring)."""
    if world is None or not hasattr(world, "gateways"):
        raise SenError("--gateway needs a world", "pass --scenario FILE with at least one [[gateway]]")
    cfg = load(config_path)
    emulated = [rc for rc in cfg.radios if rc.backend == "emulated"]
    udp = [rc for rc in cfg.radios if rc.backend == "semtech_udp"]
    if not emulated and not udp:
        raise SenError(f"{config_path}: no [[radio]] with backend = \"emulated\" or \"semtech_udp\"",
                       "add one so the gateway can join the emulator's radio medium")
    if not world.gateways:
        raise SenError("the scenario has no [[gateway]] location", "add a [[gateway]] table with id and location")
    concentrators = [g for g in world.gateways if g.get("kind") == "concentrator"]
    if udp and not concentrators:
        raise SenError("a semtech_udp radio needs concentrator gateways in the scenario",
                       "add kind = \"concentrator\" to a [[gateway]] table")
    sites = {g["id"]: g for g in world.gateways}
    for i, rc in enumerate(emulated):
        site = sites.get(rc.options.get("site")) or world.gateways[min(i, len(world.gateways) - 1)]
        rc.options.setdefault("position", tuple(site["xy"]))
        rc.options.setdefault("antenna_gain_dbi", site.get("antenna_gain_dbi", 3.0))
    register()
    service = _held_service_class()(cfg, medium=world_medium(world, clock))
    thread = threading.Thread(target=service.run, kwargs={"install_signals": False}, name="sen-gateway", daemon=True)
    thread.start()
    if udp:
        host, port = parse_address(udp[0].options["bind"], "bind")
        backend = service.backends[udp[0].name]
        if virtual_time or port == 0:
            service.started_evt.wait(30)  # bound before the first PULL_DATA, which the clock waits for
            port = backend.bound[1]
        server = ("127.0.0.1" if host in ("0.0.0.0", "") else host, port)
        if virtual_time:
            _on_virtual_clock(backend, clock)
        service.concentrators = place_concentrators(concentrators, clock, world_medium(world, clock), server,
                                                    held=virtual_time)
        if virtual_time:
            service.in_flight = _in_flight(backend, service.concentrators[0])
    log.info("gateway %s listening on the emulated medium", cfg.gateway_id)
    return service, thread


def _on_virtual_clock(backend, clock):
    """The semtech_udp radio's times (copies' arrival, ACK lead, keepalives, duty cycle, rx
    time) from the emulated world's clock. Gathering other gateways' copies would wait on the
    wall clock while the virtual one is held, so the ACK's gateway is chosen among the copies
    read when the frame is processed: with one concentrator (the demo) that is every copy."""
    backend.monotonic = lambda: clock.now_us() / 1e6
    backend.wall = clock.epoch_s
    backend.gather_s = 0.0


STUCK_S = 10.0


def _in_flight(backend, pump):
    """True while a forwarder's PUSH_DATA or PULL_DATA has not been counted by the radio yet,
    or one of its ACKs awaits the forwarder's TX_ACK. The radio counts a PUSH_DATA under its
    lock in the same step that hands its frames to the service, so once the counts agree
    `received` already includes them. A datagram the radio never counts (an EUI outside its
    allow-list) would hold the clock for ever: after STUCK_S of wall time the hold gives up."""
    since, lost = [None], [0, 0]

    def in_flight():
        pump.read()
        push, pull = pump.sent()
        with backend.lock:
            push -= lost[0] + sum(g.counts["push_data"] for g in backend.gateways.values())
            pull -= lost[1] + sum(g.counts["pull_data"] for g in backend.gateways.values())
            waiting = bool(backend.pending)
        busy = push > 0 or pull > 0 or waiting
        if not busy:
            since[0] = None
        elif since[0] is None:
            since[0] = time.monotonic()
        elif time.monotonic() - since[0] > STUCK_S:
            log.warning("%d PUSH_DATA, %d PULL_DATA, %d ACK(s) unanswered for %.0f s; the clock goes on",
                        push, pull, len(backend.pending), STUCK_S)
            lost[0], lost[1], since[0] = lost[0] + max(0, push), lost[1] + max(0, pull), None
            with backend.lock:
                backend.pending.clear()
            return False
        return busy

    return in_flight


def stop_gateway(service, thread, timeout_s: float = 30.0):
    for pump in getattr(service, "concentrators", ()):
        pump.close()
    service.stopping.set()
    thread.join(timeout_s)


def kill_gateway(service, thread):
    """An abrupt stop: the radios go deaf and the loop ends without draining its queue or
    flushing anything; frames still queued in memory are lost, as in a crash. What the raw
    log holds is recovered by the next service on the same data directory. Its concentrators
    go too: the next service places its own."""
    for pump in getattr(service, "concentrators", ()):
        pump.close()
    for b in service.backends.values():
        try:
            b.stop()
        except Exception:
            log.exception("stopping radio %s", b.name)
    service.shutdown = lambda *a, **k: None  # no drain, no forwarder grace: a crash
    service.stopping.set()
    thread.join(10)
    if service.logger_thread is not None:
        service.logger_thread.join(10)
    lost = service.queue.qsize()
    for r in service.runners:
        r.stop(0.1)
    try:
        service.raw_log.close()
        service.store.close()
    except Exception:
        log.exception("closing the killed gateway's files")
    service.lock.release()  # the kernel drops a dead process's flock; the in-process kill must too
    service.stopped.set()
    return lost
