"""The packet forwarder of an emulated concentrator gateway (chips/sx1302.py): what
`lora_pkt_fwd` does with a real one, over real UDP to a network server — here, to
`sen gateway run` with the `semtech_udp` backend:

- every 10 ms, frames the concentrator received go up in one PUSH_DATA (CRC-good ones only,
  as `forward_crc_valid = true, forward_crc_error = false` does);
- PULL_DATA every `keepalive_s`, a `stat` report every `stat_interval_s`;
- a PULL_RESP is handed to the concentrator's just-in-time queue and answered with a TX_ACK.

Two ways to run them against a real server. At wall-clock speed (RealTimeRunner, ClockPump)
the server's downlink timing follows the wall clock, so virtual time must keep pace with it.
In virtual time (HeldPump, any speed including `max`) a frame goes up in the clock step that
ends it and keepalives follow the virtual clock; the caller holds the clock while a datagram
is on its way (HeldPump.sent against what the server counted), so the server's answer lands
at the same virtual instant however busy the host is.
"""
import json
import logging
import socket
import time

from sen import semtech_udp as sp

log = logging.getLogger("sen.emulator.forwarder")
FETCH_S = 0.010  # lora_pkt_fwd's FETCH_SLEEP_MS
MAX_STEP_US = 5_000


class PacketForwarder:
    def __init__(self, chip, eui: str, server: tuple, keepalive_s: float = 10.0, stat_interval_s: float = 30.0,
                 position=None, forward_crc_error: bool = False):
        self.chip = chip
        self.eui = eui
        self.server = server
        self.keepalive_s = keepalive_s
        self.stat_interval_s = stat_interval_s
        self.position = position  # (lat, lon, alt) for stat reports
        self.forward_crc_error = forward_crc_error
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.rx: list[dict] = []
        self.token = 0
        self.next_pull = 0.0
        self.next_stat = time.monotonic() + stat_interval_s
        self.next_fetch = 0.0
        self.stats = {"rxnb": 0, "rxok": 0, "rxfw": 0, "dwnb": 0, "txnb": 0, "push_ack": 0, "push": 0, "pull": 0,
                      "pull_ack": 0, "tx_refused": 0}
        self.virtual_time = False  # stat reports stamped with the emulated world's clock
        self.trace: list = []  # (direction, datagram) when tracing
        self.tracing = False
        chip.on_rx = self._on_rx

    def _on_rx(self, rxpk: dict):
        self.stats["rxnb"] += 1
        if rxpk["stat"] == 1:
            self.stats["rxok"] += 1
        if rxpk["stat"] == 1 or self.forward_crc_error:
            self.rx.append(rxpk)

    def _send(self, data: bytes):
        if self.tracing:
            self.trace.append(("up", data))
        try:
            self.sock.sendto(data, self.server)
        except OSError as exc:  # server not there yet: the real forwarder carries on too
            log.debug("forwarder %s: %s", self.eui, exc)

    def _token(self) -> int:
        self.token = (self.token + 1) & 0xFFFF
        return self.token

    def pull(self):
        self.stats["pull"] += 1
        self._send(sp.pull_data(2, self._token(), self.eui))

    def push(self, stat: bool = False):
        """One PUSH_DATA with the frames received since the last one (and a stat report)."""
        body = {}
        if self.rx:
            body["rxpk"], self.rx = self.rx, []
            self.stats["rxfw"] += len(body["rxpk"])
        if stat:
            body["stat"] = self.stat()
        if body:
            self.stats["push"] += 1
            self._send(sp.push_data(2, self._token(), self.eui, body))

    def poll(self):
        now = time.monotonic()
        self._read()
        if now >= self.next_pull:
            self.next_pull = now + self.keepalive_s
            self.pull()
        if now >= self.next_fetch:
            self.next_fetch = now + FETCH_S
            stat = now >= self.next_stat
            if stat:
                self.next_stat = now + self.stat_interval_s
            self.push(stat)

    def stat(self) -> dict:
        t = self.chip.clock.epoch_s() if self.virtual_time else time.time()
        s = {"time": time.strftime("%Y-%m-%d %H:%M:%S GMT", time.gmtime(t)), "rxnb": self.stats["rxnb"],
             "rxok": self.stats["rxok"], "rxfw": self.stats["rxfw"], "dwnb": self.stats["dwnb"],
             "txnb": self.stats["txnb"],
             "ackr": round(100.0 * self.stats["push_ack"] / self.stats["push"], 1) if self.stats["push"] else 0.0}
        if self.position is not None:
            s["lati"], s["long"], s["alti"] = self.position
        return s

    def _read(self):
        while True:
            try:
                data, _ = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP unreachable from an earlier send
                return
            if self.tracing:
                self.trace.append(("down", data))
            try:
                d = sp.parse(data)
            except sp.BadDatagram as exc:
                log.warning("forwarder %s: %s", self.eui, exc)
                continue
            if d.kind == sp.PUSH_ACK:
                self.stats["push_ack"] += 1
            elif d.kind == sp.PULL_ACK:
                self.stats["pull_ack"] += 1
            elif d.kind == sp.PULL_RESP:
                self.stats["dwnb"] += 1
                try:
                    error = self.chip.schedule((d.body or {})["txpk"])
                except (KeyError, ValueError, TypeError, IndexError) as exc:
                    log.warning("forwarder %s: unreadable txpk (%s)", self.eui, exc)
                    continue
                self.stats["txnb" if error is None else "tx_refused"] += 1
                if d.version >= 2:
                    self._send(sp.tx_ack(2, d.token, self.eui, error))

    def close(self):
        self.sock.close()
        if self.chip.medium is not None:  # a gateway taken down hears nothing more
            self.chip.medium.detach(self.chip)


class RealTimeRunner:
    """Runs a VirtualClock at wall-clock speed and polls forwarders, in the calling thread."""

    def __init__(self, clock, forwarders, step_s: float = 0.001):
        self.clock = clock
        self.forwarders = list(forwarders)
        self.step_s = step_s

    def run_for(self, seconds: float, until=None):
        """Advance `seconds` of virtual time in as many real seconds (stop early when until())."""
        t0_real, t0_virtual = time.monotonic(), self.clock.now_us()
        end = t0_virtual + int(seconds * 1e6)
        while self.clock.now_us() < end:
            for f in self.forwarders:  # a PULL_RESP that arrived is queued before time moves on
                f.poll()
            # at most MAX_STEP_US per step: on a loaded machine virtual time falls behind the wall
            # clock instead of jumping past a downlink's slot (the server only gains lead)
            wall = t0_virtual + int((time.monotonic() - t0_real) * 1e6)
            target = min(end, wall, self.clock.now_us() + MAX_STEP_US)
            self.clock.advance_to(target)
            for f in self.forwarders:
                f.poll()
            if until is not None and until():
                return True
            time.sleep(self.step_s)
        return until is not None and bool(until())


def describe(trace) -> str:
    """A readable message trace: one line per datagram."""
    out = []
    for direction, data in trace:
        d = sp.parse(data)
        body = "" if d.body is None else " " + json.dumps(d.body, separators=(",", ":"))
        out.append(f"{'gw->sen' if direction == 'up' else 'sen->gw'} {d.kind_name} v{d.version} "
                   f"token={d.token:#06x}{'' if d.eui is None else ' eui=' + d.eui}{body}")
    return "\n".join(out)


class ClockPump:
    """Polls forwarders from inside the virtual clock (every 5 ms of virtual time), so the
    emulator's own scheduler drives them; at --speed 1 that is every 5 ms of wall time."""

    def __init__(self, clock, forwarders, every_us: int = 5_000):
        self.clock, self.forwarders, self.every_us = clock, list(forwarders), every_us
        self.closed = False
        clock.call_at(clock.now_us() + every_us, self._tick)

    def _tick(self):
        if self.closed:
            return
        for f in self.forwarders:
            f.poll()
        self.clock.call_at(self.clock.now_us() + self.every_us, self._tick)

    def close(self):
        self.closed = True
        for f in self.forwarders:
            f.close()


class HeldPump:
    """Drives forwarders in virtual time: each frame a concentrator hears goes up at once, in
    the clock step that ends it (lora_pkt_fwd sends within 10 ms), and PULL_DATA and stat
    reports come every keepalive_s / stat_interval_s of virtual time. Nothing polls on its
    own: the caller holds the clock while sent() is ahead of what the server has counted, and
    calls read() meanwhile, which takes in its ACKs and downlinks (answered by TX_ACK)."""

    def __init__(self, clock, forwarders):
        self.clock, self.forwarders = clock, list(forwarders)
        self.closed = False
        for f in self.forwarders:
            f.virtual_time = True
            f.chip.on_rx = self._on_rx(f)
            f.pull()
        now = clock.now_us()
        for f in self.forwarders:
            clock.call_at(now + int(f.keepalive_s * 1e6), self._every(f, f.keepalive_s, f.pull))
            clock.call_at(now + int(f.stat_interval_s * 1e6), self._every(f, f.stat_interval_s, lambda f=f: f.push(True)))

    @staticmethod
    def _on_rx(f):
        def on_rx(rxpk):
            f._on_rx(rxpk)
            f.push()
        return on_rx

    def _every(self, f, period_s, fn):
        def tick():
            if self.closed:
                return
            fn()
            self.clock.call_at(self.clock.now_us() + int(period_s * 1e6), tick)
        return tick

    def read(self):
        for f in self.forwarders:
            f._read()

    def sent(self) -> tuple[int, int]:
        """(PUSH_DATA, PULL_DATA) datagrams sent so far, all forwarders."""
        return (sum(f.stats["push"] for f in self.forwarders), sum(f.stats["pull"] for f in self.forwarders))

    def close(self):
        self.closed = True
        for f in self.forwarders:
            f.close()


def place_concentrators(sites, clock, medium, server, held: bool = False) -> list:
    """An SX1302 and its forwarder at each scenario [[gateway]] site of kind "concentrator",
    driven by a HeldPump (held) or a ClockPump."""
    from sen.emulator.chips.sx1302 import SX1302
    forwarders = []
    for i, g in enumerate(sites):
        chip = SX1302(clock, g["id"], lorawan_public=g.get("lorawan_public", False), tmst_offset=i * 0x1000_0000)
        # "<site>.<radio>", as the emulated backend names its chips: the air tally counts by site
        medium.attach(chip, tuple(g["xy"]), g.get("antenna_gain_dbi", 3.0), f"{g['id']}.sx1302")
        lat_lon = g.get("lat_lon")
        forwarders.append(PacketForwarder(chip, g["eui"], server,
                                          position=(lat_lon[0], lat_lon[1], 0) if lat_lon else None))
    return [HeldPump(clock, forwarders) if held else ClockPump(clock, forwarders)]
