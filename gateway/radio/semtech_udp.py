"""`semtech_udp` backend: Sen sits where a network server sits, and concentrator gateways
(SX1301/2/3, RAK, Dragino, Kerlink, Multitech) running the Semtech packet forwarder send it
what they hear, over UDP:

    [[radio]]
    backend = "semtech_udp"
    bind = "0.0.0.0:1700"
    # gateways = ["aa555a0000000000"]       optional allow-list of gateway EUIs
    [radio.lorawan_upstream]                # optional: the LoRaWAN network server's UDP endpoint
    address = "127.0.0.1:1701"

Many gateways share the socket; each is known by its EUI, and its downlink address is the one
its last PULL_DATA came from. Sen uplinks (first byte 0x20-0x2F, docs/frame-format.md) go to
the pipeline, one received frame per rxpk; everything else, and every `stat`, goes unchanged
to the LoRaWAN upstream (lorawan_relay.py). ACKs go back as PULL_RESP through the gateway that
heard the uplink best (downlink_plan.py), and on a TX_ACK error through the next one.
"""
import json
import logging
import os
import random
import socket
import threading
import time
from collections import Counter

from sen.errors import SenError
from sen import semtech_udp as sp
from sen.gateway.radio.base import Backend
from sen.gateway.radio.lorawan_relay import LorawanRelay
from sen.gateway.radio.downlink_plan import (NODE_RX_LATE_MS, Copy, DutyCycle, Heard, airtime_s, choose_delay, ranked,
                                             txpk, window_s)
from sen.gateway.rx_meta import RxMeta

log = logging.getLogger("sen.gateway.radio.semtech")

SEN_UPLINK, SEN_DOWNLINK = 0x20, 0x30  # FHDR bits 7-4: version 1, direction
HEARD_KEEP_S = 5.0  # copies of an uplink are kept this long for choosing the ACK's gateway
PENDING_KEEP_S = 10.0  # a PULL_RESP without TX_ACK (v1 forwarder) is forgotten after this


def classify(payload: bytes) -> str:
    """'sen' (a Sen uplink), 'sen_downlink' (another gateway's Sen ACK, overheard) or 'other'.
    A LoRaWAN 1.0/1.1 MHDR has its RFU bits 4-2 and Major bits 1-0 zero, so its first byte is
    one of 0x00, 0x20, 0x40, ..., 0xE0; of these only 0x20 (Join-Accept) falls in Sen's
    0x20-0x3F, and a Join-Accept is a downlink with inverted IQ that the concentrator's
    uplink demodulators do not receive. See docs/concentrator-gateways.md."""
    if len(payload) < 10:
        return "other"
    top = payload[0] & 0xF0
    return "sen" if top == SEN_UPLINK else "sen_downlink" if top == SEN_DOWNLINK else "other"


def parse_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SenError(f"{what} '{text}' is not host:port", f'e.g. {what.split(".")[-1]} = "0.0.0.0:1700"')
    return host or "0.0.0.0", int(port)


class GatewayState:
    def __init__(self, eui: str, duty_limit: float):
        self.eui = eui
        self.down_addr = None
        self.version = 2
        self.last_pull = None  # monotonic
        self.last_seen = None  # wall clock, any datagram
        self.stat: dict | None = None
        self.stat_time = None
        self.counts = Counter()  # rxpk, crc_bad, sen, lorawan, overheard, pull_data, push_data, tx_ok, tx_error:*
        self.duty = DutyCycle(duty_limit)

    def online(self, now: float, offline_after_s: float) -> bool:
        return self.last_pull is not None and now - self.last_pull <= offline_after_s

    def summary(self, now: float, offline_after_s: float) -> dict:
        return {"eui": self.eui, "online": self.online(now, offline_after_s),
                "last_pull_s_ago": None if self.last_pull is None else round(now - self.last_pull, 1),
                "last_seen": self.last_seen, "downlink_address": None if self.down_addr is None else
                f"{self.down_addr[0]}:{self.down_addr[1]}", "stat": self.stat, "stat_time": self.stat_time,
                "counts": dict(self.counts), "duty_cycle_used": round(self.duty.used(now), 5)}


class SemtechUdpBackend(Backend):
    def hearable_sfs(self) -> tuple[int, ...]:
        # an SX1301/SX1302 demodulates SF7-12 on every channel at once
        return (7, 8, 9, 10, 11, 12)

    def __init__(self, rc, gateway_id, on_frame):
        super().__init__(rc, gateway_id, on_frame)
        o = rc.options
        self.bind = parse_address(o.get("bind", "0.0.0.0:1700"), f"[[radio]] {rc.name}: bind")
        allow = o.get("gateways")
        self.allow = None if allow is None else {str(e).lower().replace("-", "").replace(":", "") for e in allow}
        self.offline_after_s = float(o.get("offline_after_s", 30.0))  # forwarder keepalive is 10 s
        self.ack_delay_s = float(o.get("ack_delay_ms", 100)) / 1000
        self.lead_s = float(o.get("lead_ms", 60)) / 1000  # JIT needs 42.5 ms; the rest is network slack
        # the nodes' radio.rx_late_ms (`sen node flash --gateway` writes this value into node.json)
        self.window_s = window_s(float(o.get("node_rx_late_ms", NODE_RX_LATE_MS)))
        self.gather_s = float(o.get("gather_ms", 20)) / 1000  # wait for other gateways' copies
        self.power_dbm = int(o.get("tx_power_dbm", 14))
        self.duty_limit = float(o.get("duty_cycle", 0.10))
        self.gateways: dict[str, GatewayState] = {}
        self.heard: dict[bytes, Heard] = {}  # uplink bytes -> every gateway's copy
        self.by_tmst: dict[tuple, bytes] = {}  # (gateway EUI, tmst) -> uplink bytes
        self.pending: dict[int, dict] = {}  # our PULL_RESP tokens awaiting TX_ACK
        self.counts = Counter()  # backend-wide: bad datagrams by reason, ACK outcomes
        self.lock = threading.RLock()
        # an emulated world replaces these with its virtual clock (host_tools/emulated_gateway.py)
        self.monotonic, self.wall = time.monotonic, time.time
        self.sock = None
        self.status_file = None  # set by the service: data_dir/concentrators.json
        self._next_status = 0.0
        self.relay = None
        up = o.get("lorawan_upstream")
        if up is not None:
            addr = parse_address(up.get("address", ""), f"[radio.lorawan_upstream] address")
            self.relay = LorawanRelay(addr, self._send_to_gateway)
        self.thread = threading.Thread(target=self._run, name=f"radio-{self.name}", daemon=True)

    # -- life cycle --------------------------------------------------------------------
    def start(self):
        self.sock = socket.socket(socket.AF_INET6 if ":" in self.bind[0] else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind(self.bind)
        except OSError as exc:
            raise SenError(f"[[radio]] {self.name}: cannot bind UDP {self.bind[0]}:{self.bind[1]} ({exc.strerror})",
                           "free the port (another network server or gateway bridge?) or change bind") from None
        self.sock.settimeout(0.2)
        self.bound = self.sock.getsockname()[:2]
        if self.relay is not None:
            self.relay.start()
        self.thread.start()
        log.info("radio %s: Semtech UDP on %s:%d%s", self.name, *self.bound,
                 f", LoRaWAN relayed to {self.relay.address[0]}:{self.relay.address[1]}" if self.relay else "")
        return self

    def stop(self):
        super().stop()
        self.thread.join(3)
        if self.relay is not None:
            self.relay.stop()
        self.write_status()
        if self.sock is not None:
            self.sock.close()

    def _run(self):
        while not self.stop_event.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                data = None
            except OSError as exc:
                if self.stop_event.is_set():
                    return
                log.warning("radio %s: UDP receive failed: %s", self.name, exc)
                continue
            if data is not None:
                try:
                    self.handle(data, addr)
                except Exception:  # never let one datagram stop the radio
                    self.counts["internal_error"] += 1
                    log.exception("radio %s: datagram from %s:%s", self.name, *addr[:2])
            self._housekeeping()

    def _housekeeping(self):
        now = self.monotonic()
        if now < self._next_status:
            return
        self._next_status = now + 2.0
        with self.lock:
            for k in [k for k, h in self.heard.items() if now - h.first > HEARD_KEEP_S]:
                for c in self.heard.pop(k).copies:
                    self.by_tmst.pop((c.eui, c.tmst), None)
            for tok in [t for t, p in self.pending.items() if now - p["sent"] > PENDING_KEEP_S]:
                del self.pending[tok]
        self.write_status()

    # -- receiving ---------------------------------------------------------------------
    def _bad(self, reason: str, addr, msg: str):
        self.counts[f"bad:{reason}"] += 1
        log.warning("radio %s: ignored datagram from %s:%s: %s", self.name, addr[0], addr[1], msg)

    def handle(self, data: bytes, addr):
        try:
            d = sp.parse(data)
        except sp.BadDatagram as exc:
            self._bad("malformed", addr, str(exc))
            return
        if d.eui is not None and self.allow is not None and d.eui not in self.allow:
            self._bad("not_allowed", addr, f"gateway {d.eui} is not in [[radio]] {self.name} gateways — add its EUI "
                                           f"to the allow-list if it is yours")
            return
        if d.kind == sp.PUSH_DATA:
            self.sock.sendto(sp.ack_for(d), addr)  # acknowledge first, as the protocol asks
            self._push_data(d, addr)
        elif d.kind == sp.PULL_DATA:
            self.sock.sendto(sp.ack_for(d), addr)
            with self.lock:
                gw = self._gw(d.eui)
                gw.down_addr, gw.version, gw.last_pull = addr, d.version, self.monotonic()
                gw.counts["pull_data"] += 1
            if self.relay is not None:
                self.relay.forward(d.eui, data)
        elif d.kind == sp.TX_ACK:
            self._tx_ack(d, addr)
        else:
            self._bad("unexpected", addr, f"{d.kind_name} is sent by a server, not by a gateway")

    def _gw(self, eui: str) -> GatewayState:
        gw = self.gateways.get(eui)
        if gw is None:
            gw = self.gateways[eui] = GatewayState(eui, self.duty_limit)
            log.info("radio %s: gateway %s connected", self.name, eui)
        gw.last_seen = time.time()
        return gw

    def _push_data(self, d: sp.Datagram, addr):
        now, wall = self.monotonic(), self.wall()
        rxpks = d.body.get("rxpk", [])
        stat = d.body.get("stat")
        if not isinstance(rxpks, list):
            self._bad("malformed", addr, f"PUSH_DATA from {d.eui}: 'rxpk' is not an array")
            rxpks = []
        relay = []
        with self.lock:
            gw = self._gw(d.eui)
            gw.counts["push_data"] += 1
            if isinstance(stat, dict):
                gw.stat, gw.stat_time = stat, wall
            for i, obj in enumerate(rxpks):
                gw.counts["rxpk"] += 1
                try:
                    rx = sp.parse_rxpk(obj, f"rxpk[{i}] from gateway {d.eui}")
                except sp.BadDatagram as exc:
                    self._bad("bad_rxpk", addr, str(exc))
                    continue
                if rx is None or rx.stat != 1:  # FSK, or a bad/absent CRC: never decoded
                    gw.counts["crc_bad" if rx is not None and rx.stat == -1 else "no_crc" if rx else "fsk"] += 1
                    relay.append(obj)
                    continue
                kind = classify(rx.payload)
                if kind == "other":
                    gw.counts["lorawan"] += 1
                    relay.append(obj)
                    continue
                if kind == "sen_downlink":
                    gw.counts["overheard"] += 1
                    continue
                gw.counts["sen"] += 1
                self._deliver(d.eui, rx, now, wall)
        if self.relay is not None and (relay or isinstance(stat, dict)):
            if len(relay) == len(rxpks):
                self.relay.forward(d.eui, d.raw)  # nothing of Sen's in it: byte for byte
            else:
                body = {k: v for k, v in d.body.items() if k != "rxpk"}
                if relay:
                    body["rxpk"] = relay
                self.relay.forward(d.eui, sp.push_data(d.version, d.token, d.eui, body))

    def _deliver(self, eui: str, rx: sp.Rx, now: float, wall: float):
        h = self.heard.get(rx.payload)
        if h is None:
            h = self.heard[rx.payload] = Heard(now)
        h.copies.append(Copy(eui, rx.tmst, now, rx.rssi, rx.snr, rx.freq_hz, rx.sf, rx.bw_hz, rx.codr))
        self.by_tmst[(eui, rx.tmst)] = rx.payload
        self.received += 1
        self.last_rx = now
        self.on_frame(rx.payload, RxMeta(eui, wall, rx.freq_hz, rx.sf, rx.bw_hz, rx.rssi, rx.snr, self.name,
                                         dict(rx.meta, gateway=eui)))

    # -- ACKs --------------------------------------------------------------------------
    def send_ack(self, frame: bytes, meta: RxMeta):
        """Send `frame` (an ACK) to the node whose uplink came with `meta`, in its receive window."""
        with self.lock:
            uplink = self.by_tmst.get((meta.gateway_id, (meta.rx or {}).get("tmst")))
            h = None if uplink is None else self.heard.get(uplink)
        if h is None:
            self.counts["ack_unknown_uplink"] += 1  # e.g. recovered from the raw log after a restart
            return
        wait = h.first + self.gather_s - self.monotonic()
        if wait > 0:
            t = threading.Timer(wait, self._send_ack_logged, (frame, uplink, ()))
            t.daemon = True
            t.start()
        else:
            self._send_ack(frame, uplink, ())

    def _send_ack_logged(self, *args):
        try:
            self._send_ack(*args)
        except Exception:  # a timer thread has no caller to tell
            log.exception("radio %s: ACK failed", self.name)

    def _send_ack(self, frame: bytes, uplink: bytes, tried: tuple):
        now = self.monotonic()
        with self.lock:
            h = self.heard.get(uplink)
            copies = ranked(h.copies if h else [], tried)
            for c in copies:
                gw = self.gateways.get(c.eui)
                if gw is None or not gw.online(now, self.offline_after_s):
                    continue
                delay = choose_delay(c, now, self.ack_delay_s, self.lead_s, self.window_s)
                if delay is None:
                    self.counts["ack_window_missed"] += 1
                    log.warning("radio %s: ACK for an uplink heard %.0f ms ago cannot start inside the node's "
                                "window any more; its samples come again in its next batch", self.name,
                                (now - c.arrived) * 1000)
                    return None
                air = airtime_s(len(frame), c)
                if not gw.duty.allows(air, now):
                    gw.counts["duty_blocked"] += 1
                    continue
                token = self._new_token()
                self.pending[token] = {"frame": frame, "uplink": uplink, "tried": tried + (c.eui,), "sent": now,
                                       "eui": c.eui, "air": air}
                gw.duty.add(air, now)
                gw.counts["tx_requested"] += 1
                pkt = sp.pull_resp(gw.version, token, txpk(c, frame, delay, self.power_dbm))
                self.sock.sendto(pkt, gw.down_addr)
                if gw.version < 2:
                    self.pending.pop(token, None)  # v1 sends no TX_ACK
                return token
            self.counts["ack_no_gateway"] += 1
            log.warning("radio %s: no %sgateway can send the ACK (offline, duty cycle spent or refused); the "
                        "node's next uplink is ACKed instead", self.name, "other " if tried else "")
            return None

    def _new_token(self) -> int:
        while True:
            t = random.randrange(1, 0x10000)
            if t not in self.pending and (self.relay is None or not self.relay.owns_token(t)):
                return t

    def _tx_ack(self, d: sp.Datagram, addr):
        with self.lock:
            gw = self._gw(d.eui)
            mine = self.pending.pop(d.token, None)
        if mine is None:
            if self.relay is not None and self.relay.owns_token(d.token):
                self.relay.forward(d.eui, d.raw)  # the LoRaWAN server's downlink
            else:
                self._bad("unknown_token", addr, f"TX_ACK from {d.eui} for token {d.token:#06x} Sen never sent")
            return
        try:
            err, warn = sp.tx_ack_result(d)
        except sp.BadDatagram as exc:
            self._bad("malformed", addr, str(exc))
            return
        if warn:
            gw.counts[f"tx_warn:{warn.split('=')[0]}"] += 1
            log.info("radio %s: gateway %s sent the ACK with a limitation: %s", self.name, d.eui, warn)
        if err is None:
            gw.counts["tx_ok"] += 1
            return
        gw.counts[f"tx_error:{err}"] += 1
        with self.lock:
            gw.duty.refund(mine["air"])
        log.warning("radio %s: gateway %s refused an ACK: %s; trying the next gateway that heard the uplink",
                    self.name, d.eui, err)
        self._send_ack(mine["frame"], mine["uplink"], mine["tried"])

    def _send_to_gateway(self, eui: str, data: bytes) -> bool:
        """The relay's way back: a PULL_RESP from the LoRaWAN server to the gateway `eui`."""
        with self.lock:
            gw = self.gateways.get(eui)
            addr = None if gw is None else gw.down_addr
        if addr is None:
            return False
        self.sock.sendto(data, addr)
        return True

    def transmit(self, frame: bytes):
        raise SenError(f"radio {self.name}: a concentrator sends a downlink only in reply to an uplink",
                       "use send_ack")

    # -- status ------------------------------------------------------------------------
    def status(self) -> dict:
        now = self.monotonic()
        with self.lock:
            gws = [g.summary(now, self.offline_after_s) for g in sorted(self.gateways.values(), key=lambda g: g.eui)]
        out = {"radio": self.name, "bind": f"{self.bound[0]}:{self.bound[1]}" if self.sock else None,
               "gateways": gws, "counts": dict(self.counts), "time": time.time()}
        if self.relay is not None:
            out["lorawan_upstream"] = self.relay.status()
        return out

    def write_status(self):
        if self.status_file is None:
            return
        try:
            tmp = self.status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.status(), indent=1))
            os.replace(tmp, self.status_file)
        except OSError as exc:
            log.warning("radio %s: cannot write %s: %s", self.name, self.status_file, exc)
