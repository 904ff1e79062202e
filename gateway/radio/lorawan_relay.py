"""Relay to a LoRaWAN network server (e.g. ChirpStack's gateway bridge) for the packets on
the same concentrator gateways that are not Sen's, so the city's LoRaWAN devices keep
working while Sen takes the gateways' uplink stream.

To the upstream server Sen looks like the gateways themselves: each gateway gets its own
UDP socket towards the server, so the server sees one source address per gateway EUI and
sends that gateway's PULL_RESP back on that socket (a PULL_RESP names no gateway). What
goes up is the gateways' own datagrams, byte for byte: PULL_DATA, TX_ACK for the server's
downlinks, and PUSH_DATA (re-encoded only when Sen took some of its rxpk out). What comes
down: PUSH_ACK/PULL_ACK are counted (the gateways were answered by Sen already) and each
PULL_RESP goes to its gateway unchanged, its token remembered so the gateway's TX_ACK
finds its way back up. A server that is down costs one log line a minute, never a crash.
"""
import logging
import selectors
import socket
import threading
import time
from collections import Counter

from sen import semtech_udp as sp

log = logging.getLogger("sen.gateway.radio.lorawan")
TOKEN_KEEP_S = 30.0
COMPLAIN_EVERY_S = 60.0


class LorawanRelay:
    def __init__(self, address: tuple[str, int], to_gateway):
        """to_gateway(eui, datagram) -> bool sends a datagram to a gateway's downlink address."""
        self.address = address
        self.to_gateway = to_gateway
        self.socks: dict[str, socket.socket] = {}
        self.tokens: dict[int, tuple[str, float]] = {}  # PULL_RESP token -> (gateway EUI, when)
        self.counts = Counter()
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self._last_complaint = 0.0
        self.last_heard = None
        self.thread = threading.Thread(target=self._run, name="lorawan-relay", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join(3)
        with self.lock:
            for s in self.socks.values():
                s.close()

    def owns_token(self, token: int) -> bool:
        return token in self.tokens

    def _sock(self, eui: str) -> socket.socket:
        s = self.socks.get(eui)
        if s is None:
            s = socket.socket(socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(self.address)
            s.setblocking(False)
            self.socks[eui] = s
            self.sel.register(s, selectors.EVENT_READ, eui)
        return s

    def forward(self, eui: str, datagram: bytes):
        """Send one of gateway `eui`'s datagrams to the upstream server."""
        try:
            with self.lock:
                self._sock(eui).send(datagram)
            self.counts["up"] += 1
        except OSError as exc:
            self._down(exc)

    def _down(self, exc):
        self.counts["upstream_errors"] += 1
        now = time.monotonic()
        if now - self._last_complaint >= COMPLAIN_EVERY_S:
            self._last_complaint = now
            log.warning("LoRaWAN upstream %s:%d is not answering (%s); LoRaWAN packets are dropped until it is "
                        "back — check [radio.lorawan_upstream] address and that the network server runs",
                        *self.address, exc.strerror or exc)

    def _run(self):
        while not self.stop_event.is_set():
            try:
                ready = self.sel.select(0.2)  # epoll: forward() may register sockets meanwhile
            except (OSError, RuntimeError, ValueError):
                ready = []
            if not ready:
                self._expire()
                continue
            for key, _ in ready:
                try:
                    data = key.fileobj.recv(65535)
                except BlockingIOError:
                    continue
                except OSError as exc:  # ICMP port unreachable from an earlier send
                    self._down(exc)
                    continue
                self._from_upstream(key.data, data)

    def _expire(self):
        now = time.monotonic()
        for t in [t for t, (_, when) in self.tokens.items() if now - when > TOKEN_KEEP_S]:
            self.tokens.pop(t, None)

    def _from_upstream(self, eui: str, data: bytes):
        self.last_heard = time.time()
        try:
            d = sp.parse(data)
        except sp.BadDatagram as exc:
            self.counts["bad_from_upstream"] += 1
            log.warning("LoRaWAN upstream sent a datagram Sen cannot read (%s); dropped", exc)
            return
        if d.kind in (sp.PUSH_ACK, sp.PULL_ACK):
            self.counts[d.kind_name.lower()] += 1
        elif d.kind == sp.PULL_RESP:
            self.tokens[d.token] = (eui, time.monotonic())
            if self.to_gateway(eui, data):
                self.counts["down"] += 1
            else:
                self.counts["down_no_route"] += 1
                log.warning("LoRaWAN upstream sent a downlink for gateway %s, which has not sent PULL_DATA yet; "
                            "dropped", eui)
        else:
            self.counts["bad_from_upstream"] += 1
            log.warning("LoRaWAN upstream sent %s, which only a gateway sends; dropped", d.kind_name)

    def status(self) -> dict:
        return {"address": f"{self.address[0]}:{self.address[1]}", "counts": dict(self.counts),
                "last_heard": self.last_heard}
