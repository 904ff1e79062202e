"""`sen bench radio`: how many nodes one gateway serves. N air nodes report every 15 minutes to
one 8-channel concentrator (emulator/chips/sx1302.py) or to one single-channel SX1276
gateway (the gateway's `emulated` backend), all at one SF, for N = 100 / 1,000 / 5,000 and
SF7-SF10, on the emulator's radio medium (time on air, capture, collisions, half duplex,
the concentrator's 16 demodulators).

- unconfirmed: frame delivery measured, beside the pure-ALOHA prediction
  exp(-2G), G = nodes per channel x airtime / interval;
- confirmed: sample delivery. The gateway ACKs each frame 100 ms after its end on its
  channel (IQ upright, as Sen ACKs go), within its 10 % duty cycle, once per frame (a retry of
  a frame already stored is a duplicate and gets none, as in gateway/service.py); a node without an ACK
  retries after 1 s and 2 s (+ up to 0.5 s), then carries its samples into the next
  cycle's batch (at most 8 samples per 222-byte frame). A sample counts as delivered when a
  frame holding it reached the gateway;
- gateway downlink duty: the share of its busiest clock hour the gateway spent sending ACKs
  (the limit is 10 % of any sliding hour, so a run longer than an hour can show more over
  the whole run: `downlink_duty_whole_run`).

Nodes model the radio behaviour of firmware/main.py (they are not the MicroPython firmware:
5,000 emulated boards would take hours); a node in the concentrator runs picks a
pseudo-random channel of the 8 AS923-2 channels per uplink, as issue 17's channel plan asks.
"""
import json
import math
import random

from sen import airtime
from sen.emulator.chips.sx1302 import AS923_2, SX1302
from sen.emulator.clock import VirtualClock
from sen.emulator.path_loss import SNR_LIMIT_DB, LinkBudget
from sen.emulator.radio_medium import RadioMedium
from sen.gateway.radio.downlink_plan import Copy, DutyCycle, txpk

INTERVAL_S = 900
FRAME_1 = 32  # an air node's single-sample frame (bytes)
PER_SAMPLE = 27  # each further sample in a batch
MAX_FRAME = 222
ACK_LEN = 11
WINDOW_US = 400_000
RADIUS_M = 2000.0


def frame_len(samples: int) -> int:
    return FRAME_1 + PER_SAMPLE * (samples - 1)


MAX_SAMPLES = 1 + (MAX_FRAME - FRAME_1) // PER_SAMPLE


class Node:
    """Transmit-mostly node: listens only in its ACK window (medium.set_listening)."""

    def __init__(self, run, nid, pos, rng):
        self.run, self.id, self.rng = run, nid, rng
        self.counter = 0
        self.queue: list[int] = []  # sample ids not yet ACKed
        self.frames: dict[int, list[int]] = {}  # counter -> sample ids it carries
        self.waiting = None  # (counter, attempt) while a confirmed frame awaits its ACK
        self.freq = AS923_2[0]
        self.locked = None
        self.in_window = False
        run.medium.attach(self, pos, 0.0, f"n{nid}", listening=False)

    # the medium's receiver interface, used only inside the ACK window
    def on_air_start(self, tx, rssi, snr):
        if not self.in_window or self.locked is not None or tx.invert_iq or tx.freq_hz != self.freq \
                or tx.sf != self.run.sf:
            return False
        if snr < SNR_LIMIT_DB[tx.sf]:
            return False
        self.locked = tx
        return True

    def on_air_end(self, tx, outcome, rssi, snr):
        if self.locked is not tx:
            return False
        self.locked = None
        if outcome == "ok" and self.waiting is not None and tx.payload[:7] == _ack(self.id, self.waiting[0]):
            self.queue = [s for s in self.queue if s not in self.frames[self.waiting[0]]]
            self.waiting = None
            self.in_window = False
        if not self.in_window:
            self.run.medium.set_listening(self, False)
        return True

    def _listen(self, on):
        self.in_window = on
        if on or self.locked is None:  # a frame caught in the window is received to its end
            self.run.medium.set_listening(self, on)

    def cycle(self):
        run = self.run
        if run.clock.now_us() < run.sample_until_us:
            self.queue.append(run.new_sample(self.id))
        if self.waiting is not None:  # last cycle's retries ran out
            self.waiting = None
        if self.queue:
            self.counter += 1
            self.frames[self.counter] = list(self.queue[-MAX_SAMPLES:])
            self._send(self.counter, 0)
        run.clock.call_at(run.clock.now_us() + INTERVAL_S * 1_000_000 + self.rng.randint(-2_000_000, 2_000_000),
                          self.cycle)

    def _send(self, counter, attempt):
        run = self.run
        samples = self.frames[counter]
        if not run.confirmed:
            self.queue = []  # unconfirmed: sent once, never again
        self.freq = self.rng.choice(run.channels)
        payload = bytes([0x21 if run.confirmed else 0x20]) + self.id.to_bytes(2, "big") + counter.to_bytes(4, "big")
        payload += bytes(frame_len(len(samples)) - len(payload))
        air = airtime.time_on_air_us(len(payload), sf=run.sf)
        params = {"freq_hz": self.freq, "sf": run.sf, "bw_hz": 125_000, "cr": 1, "sync_word": 0x12, "crc": True,
                  "implicit": False, "preamble": 8, "ldro": airtime.ldro(run.sf, 125_000), "invert_iq": False,
                  "power_dbm": 14}
        run.medium.transmit(self, payload, params, air)
        run.sent += 1
        if run.confirmed:
            self.waiting = (counter, attempt)
            end = run.clock.now_us() + int(air)
            run.clock.call_at(end, lambda: self._listen(True))
            run.clock.call_at(end + WINDOW_US + 60_000, lambda: self._window_closed(counter, attempt))

    def _window_closed(self, counter, attempt):
        self._listen(False)
        if self.waiting != (counter, attempt):
            return
        if attempt < 2:
            delay = (1 + attempt) * 1_000_000 + self.rng.randint(0, 500_000)
            self.run.clock.call_at(self.run.clock.now_us() + delay, lambda: self._send(counter, attempt + 1))


def _ack(node_id, counter) -> bytes:
    return bytes([0x31]) + node_id.to_bytes(2, "big") + counter.to_bytes(4, "big")


class Run:
    def __init__(self, kind, n_nodes, sf, confirmed, hours, seed):
        self.kind, self.sf, self.confirmed = kind, sf, confirmed
        self.clock = VirtualClock()
        self.medium = RadioMedium(self.clock, LinkBudget(exponent=3.0), seed=seed)
        self.channels = AS923_2 if kind == "concentrator" else (AS923_2[0],)
        self.sample_until_us = int(hours * 3600e6)
        self.end_us = self.sample_until_us + 2 * INTERVAL_S * 1_000_000  # backlog drains
        self.samples = 0
        self.sent = 0
        self.heard: set = set()  # (node, counter) that reached the gateway
        self.duty = DutyCycle(0.10)
        self.ack_air_s = 0.0
        self.ack_air_by_hour: dict[int, float] = {}
        self.acks = self.acks_blocked = 0
        rng = random.Random(seed)
        self.gateway = self._gateway()
        self.nodes = []
        for i in range(1, n_nodes + 1):
            r, a = RADIUS_M * math.sqrt(rng.random()), rng.random() * 2 * math.pi
            node = Node(self, i, (r * math.cos(a), r * math.sin(a)), random.Random(seed * 100_003 + i))
            self.nodes.append(node)
            self.clock.call_at(rng.randrange(INTERVAL_S * 1_000_000), node.cycle)

    def new_sample(self, node_id) -> int:
        self.samples += 1
        return self.samples

    def _gateway(self):
        if self.kind == "concentrator":
            gw = SX1302(self.clock, "gw", std_channel=None)
            self.medium.attach(gw, (0.0, 0.0), 3.0, "gw")
            gw.on_rx = self._on_rxpk
            return gw
        from sen.gateway.config import RadioConfig
        from sen.host_tools.emulated_gateway import EmulatedBackend
        rc = RadioConfig("emulated", "r0", frequency_hz=AS923_2[0], sf=self.sf)
        gw = EmulatedBackend(rc, "gw", self._on_frame, self.medium, position=(0.0, 0.0))
        return gw.start()

    def _heard(self, payload: bytes):
        node, counter = int.from_bytes(payload[1:3], "big"), int.from_bytes(payload[3:7], "big")
        if (node, counter) in self.heard:  # a retry of a stored frame is a duplicate: Sen does not ACK it
            return None
        self.heard.add((node, counter))
        return node, counter

    def _ack_ok(self) -> bool:
        air = airtime.time_on_air_us(ACK_LEN, sf=self.sf) / 1e6
        now = self.clock.now_s()
        if not self.duty.allows(air, now):
            self.acks_blocked += 1
            return False
        self.duty.add(air, now)
        self.ack_air_s += air
        self.ack_air_by_hour[int(now // 3600)] = self.ack_air_by_hour.get(int(now // 3600), 0.0) + air
        self.acks += 1
        return True

    def _on_rxpk(self, rxpk):
        import base64
        if rxpk["stat"] != 1:  # a collision: CRC error, not forwarded
            return
        payload = base64.b64decode(rxpk["data"])
        got = self._heard(payload)
        if got and self.confirmed and self._ack_ok():
            c = Copy("gw", rxpk["tmst"], 0.0, rxpk["rssi"], rxpk["lsnr"], int(round(rxpk["freq"] * 1e6)), self.sf,
                     125_000, "4/5")
            self.gateway.schedule(txpk(c, _ack(*got) + bytes(ACK_LEN - 7), 0.1, 14))

    def _on_frame(self, frame, meta):
        got = self._heard(frame)
        if got and self.confirmed and self._ack_ok():
            self.gateway.transmit_at(_ack(*got) + bytes(ACK_LEN - 7), meta.time + 0.1)

    def run(self) -> dict:
        self.clock.advance_to(self.end_us)
        delivered = set()
        for node in self.nodes:
            for c, samples in node.frames.items():
                if (node.id, c) in self.heard:
                    delivered.update(samples)
        n = len(self.nodes)
        air_s = airtime.time_on_air_us(FRAME_1, sf=self.sf) / 1e6
        g = n / len(self.channels) * air_s / INTERVAL_S
        hours = self.end_us / 3600e6
        out = {"gateway": self.kind, "nodes": n, "sf": self.sf, "mode": "confirmed" if self.confirmed else "unconfirmed",
               "frames_sent": self.sent, "frames_heard": len(self.heard),
               "aloha_prediction": round(math.exp(-2 * g), 4),
               "downlink_duty": round(max(self.ack_air_by_hour.values(), default=0.0) / 3600, 4),
               "downlink_duty_whole_run": round(self.ack_air_s / (hours * 3600), 4), "acks": self.acks,
               "acks_blocked_by_duty": self.acks_blocked}
        if self.confirmed:
            out["sample_delivery"] = round(len(delivered) / self.samples, 4) if self.samples else None
        else:
            out["frame_delivery"] = round(len(self.heard) / self.sent, 4) if self.sent else None
        return out


def run(sizes=(100, 1000, 5000), sfs=(7, 8, 9, 10), hours=1.0, seed=1, log=print) -> dict:
    rows = []
    log(f"{'gateway':>12} {'N':>5} {'SF':>3} {'frames':>7} {'frame dlv':>9} {'ALOHA':>6} {'sample dlv':>10} "
        f"{'DL duty':>8} {'ACKs blocked':>12}")
    for kind in ("concentrator", "single"):
        for n in sizes:
            for sf in sfs:
                u = Run(kind, n, sf, False, hours, seed).run()
                c = Run(kind, n, sf, True, hours, seed).run()
                row = {"gateway": kind, "nodes": n, "sf": sf, "frames_sent": u["frames_sent"],
                       "frame_delivery": u["frame_delivery"], "aloha_prediction": u["aloha_prediction"],
                       "sample_delivery_confirmed": c["sample_delivery"], "downlink_duty": c["downlink_duty"],
                       "acks_blocked_by_duty": c["acks_blocked_by_duty"]}
                rows.append(row)
                log(f"{kind:>12} {n:>5} {sf:>3} {row['frames_sent']:>7} {100 * row['frame_delivery']:>8.2f}% "
                    f"{100 * row['aloha_prediction']:>5.1f}% {100 * row['sample_delivery_confirmed']:>9.2f}% "
                    f"{100 * row['downlink_duty']:>7.2f}% {row['acks_blocked_by_duty']:>12}")
    at_1000 = [r for r in rows if r["nodes"] == 1000]
    result = {"bench": "radio", "hours": hours, "interval_s": INTERVAL_S, "rows": rows,
              "goal_concentrator_1000_nodes_min_sample_delivery": min(
                  (r["sample_delivery_confirmed"] for r in at_1000 if r["gateway"] == "concentrator"), default=None)}
    log(json.dumps(result))
    return result
