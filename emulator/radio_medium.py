"""The air between emulated SX1276 chips.

A transmitting chip hands the medium its frame and its modem settings. The medium works
out, for every other attached chip, the RSSI and SNR (emulator/path_loss.py), drops the
frame for that receiver with the configured random loss (seeded), lets the receiver lock
on when its own settings match (the chip decides: mode, frequency, SF, BW, sync word, IQ)
and, at the end of the frame, judges collisions: another frame on the same channel and SF
that overlaps in time and is not at least `capture_db` (6 dB) weaker destroys it
(the receiver then reports a CRC error). Everything runs on the shared VirtualClock.

All radios on one medium must share one clock.
"""
import collections
import math
import random
import zlib

from .path_loss import LinkBudget, distance_m


class Transmission:
    __slots__ = ("seq", "sender", "payload", "freq_hz", "sf", "bw_hz", "cr", "sync_word", "crc",
                 "implicit", "preamble", "ldro", "invert_iq", "power_dbm", "t_start_us", "t_end_us",
                 "aborted", "receivers", "offers")

    def __init__(self, seq, sender, payload, params, t_start_us, t_end_us):
        self.seq = seq
        self.sender = sender
        self.payload = bytes(payload)
        for k in ("freq_hz", "sf", "bw_hz", "cr", "sync_word", "crc", "implicit", "preamble",
                  "ldro", "invert_iq", "power_dbm"):
            setattr(self, k, params[k])
        self.t_start_us = t_start_us
        self.t_end_us = t_end_us
        self.aborted = False
        self.receivers = []  # (radio, rssi_dbm, snr_db) that locked on
        # radio -> (rssi_dbm, snr_db) as it reaches that radio, or None when the random loss
        # took it: drawn once at the start, so a radio that starts listening during the
        # preamble (a node opening its ACK window) gets the same draw
        self.offers = {}

    @property
    def airtime_us(self):
        return self.t_end_us - self.t_start_us

    def same_channel(self, other):
        return (abs(self.freq_hz - other.freq_hz) < min(self.bw_hz, other.bw_hz) / 4.0
                and self.sf == other.sf)


class _Port:
    __slots__ = ("radio", "name", "position", "gain_dbi", "loss_fn")

    def __init__(self, radio, name, position, gain_dbi, loss_fn):
        self.radio, self.name, self.position, self.gain_dbi, self.loss_fn = radio, name, position, gain_dbi, loss_fn


class RadioMedium:
    def __init__(self, clock, budget=None, loss_percent=0.0, capture_db=6.0, seed=0,
                 fading_sigma_db=0.0, history=100_000):
        self.clock = clock
        self.budget = budget or LinkBudget()
        self.loss_percent = float(loss_percent)
        self.capture_db = float(capture_db)
        self.fading_sigma_db = float(fading_sigma_db)
        self.seed = seed
        self._rng = random.Random(zlib.crc32(("medium:%s" % seed).encode()))
        self._ports = {}  # radio -> _Port
        self._listening = {}  # radio -> _Port: the radios offered each frame (all, unless told otherwise)
        self._recent = []  # transmissions that may still overlap something
        self._seq = 0
        self.frames = collections.deque(maxlen=history)  # one dict per finished frame
        self.observers = []  # callables(record) run when a frame ends
        self.counts = collections.Counter()

    # -- wiring -------------------------------------------------------------------------
    def attach(self, radio, position=(0.0, 0.0), antenna_gain_dbi=0.0, name=None, loss_fn=None, listening=True):
        """Put a radio in the air at position (x_m, y_m). loss_fn(t_s) -> extra loss % for
        every link touching this radio (scenario faults such as a damaged antenna).
        listening=False: the radio is not offered frames until set_listening(radio, True)
        (thousands of transmit-mostly nodes in `sen bench radio` would cost a link budget each
        per frame otherwise)."""
        port = _Port(radio, name or "radio%d" % len(self._ports), tuple(position), float(antenna_gain_dbi), loss_fn)
        self._ports[radio] = port
        if listening:
            self._listening[radio] = port
        radio.medium = self
        return port

    def set_listening(self, radio, on):
        if on:
            self._listening[radio] = self._ports[radio]
        else:
            self._listening.pop(radio, None)

    def detach(self, radio):
        self._ports.pop(radio, None)
        self._listening.pop(radio, None)
        radio.medium = None

    def name_of(self, radio):
        p = self._ports.get(radio)
        return p.name if p else "?"

    # -- link budget ----------------------------------------------------------------------
    def shadowing_db(self, a, b):
        """Fixed per link and symmetric: seeded by the two names."""
        s = self.budget.shadowing_sigma_db
        if s <= 0:
            return 0.0
        names = sorted((self._ports[a].name, self._ports[b].name))
        r = random.Random(zlib.crc32(("%s|%s|%s" % (self.seed, names[0], names[1])).encode()))
        return r.gauss(0.0, s)

    def expected_link(self, tx_radio, rx_radio, power_dbm, freq_hz, bw_hz):
        """The model's mean RSSI/SNR for a frame from tx_radio at rx_radio (no fading)."""
        a, b = self._ports[tx_radio], self._ports[rx_radio]
        d = distance_m(a.position, b.position)
        rssi = self.budget.rssi_dbm(power_dbm, d, freq_hz, a.gain_dbi + b.gain_dbi,
                                    self.shadowing_db(tx_radio, rx_radio))
        return {"distance_m": d, "rssi_dbm": rssi, "snr_db": rssi - self.budget.noise_floor_dbm(bw_hz),
                "noise_floor_dbm": self.budget.noise_floor_dbm(bw_hz)}

    def _loss_p(self, a, b):
        t_s = self.clock.now_s()
        keep = 1.0 - self.loss_percent / 100.0
        for port in (self._ports[a], self._ports[b]):
            if port.loss_fn is not None:
                keep *= 1.0 - max(0.0, min(100.0, port.loss_fn(t_s))) / 100.0
        return 1.0 - keep

    # -- frames ---------------------------------------------------------------------------
    def transmit(self, sender, payload, params, airtime_us):
        now = self.clock.now_us()
        self._seq += 1
        tx = Transmission(self._seq, sender, payload, params, now, now + int(round(airtime_us)))
        cutoff = now - 20_000_000
        self._recent = [t for t in self._recent if t.t_end_us >= cutoff]
        self._recent.append(tx)
        self.counts["sent"] += 1
        for radio in list(self._listening):
            if radio is sender:
                continue
            link = self.expected_link(sender, radio, tx.power_dbm, tx.freq_hz, tx.bw_hz)
            rssi = link["rssi_dbm"]
            if self.fading_sigma_db > 0:
                rssi += self._rng.gauss(0.0, self.fading_sigma_db)
            snr = rssi - link["noise_floor_dbm"]
            if self._rng.random() < self._loss_p(sender, radio):
                self.counts["random_loss"] += 1
                tx.offers[radio] = None
                continue
            tx.offers[radio] = (rssi, snr)
            if radio.on_air_start(tx, rssi, snr):
                tx.receivers.append((radio, rssi, snr))
        self.clock.call_at(tx.t_end_us, lambda: self._finish(tx))
        return tx

    def abort(self, tx):
        """The sender left TX mode early: the frame is cut off and reaches nobody."""
        if tx.aborted:
            return
        tx.aborted = True
        tx.t_end_us = min(tx.t_end_us, self.clock.now_us())

    def ongoing(self):
        now = self.clock.now_us()
        return [t for t in self._recent if not t.aborted and t.t_start_us <= now < t.t_end_us]

    def channel_power_dbm(self, rx_radio, freq_hz, bw_hz):
        """What an RSSI register would read now: noise plus every frame on the channel."""
        mw = 10 ** (self.budget.noise_floor_dbm(bw_hz) / 10.0)
        for t in self.ongoing():
            if t.sender is rx_radio or t.sender not in self._ports or rx_radio not in self._ports:
                continue
            if abs(t.freq_hz - freq_hz) < bw_hz / 2.0:
                mw += 10 ** (self.expected_link(t.sender, rx_radio, t.power_dbm, t.freq_hz, t.bw_hz)["rssi_dbm"] / 10.0)
        return 10 * math.log10(mw)

    def _collided(self, tx, rx_radio, rssi):
        for other in self._recent:
            if other is tx or other.aborted or other.sender is rx_radio:
                continue
            if other.t_end_us <= tx.t_start_us or other.t_start_us >= tx.t_end_us:
                continue
            if not tx.same_channel(other) or other.sender not in self._ports:
                continue
            o = self.expected_link(other.sender, rx_radio, other.power_dbm, other.freq_hz, other.bw_hz)["rssi_dbm"]
            if rssi - o < self.capture_db:
                return True
        return False

    def _finish(self, tx):
        record = {"seq": tx.seq, "sender": self.name_of(tx.sender), "t_start_us": tx.t_start_us,
                  "airtime_us": tx.airtime_us, "length": len(tx.payload), "freq_hz": tx.freq_hz,
                  "sf": tx.sf, "bw_hz": tx.bw_hz, "power_dbm": tx.power_dbm, "aborted": tx.aborted,
                  "receivers": {}}
        for radio, rssi, snr in tx.receivers:
            if tx.aborted:
                outcome = "aborted"
            elif self._collided(tx, radio, rssi):
                outcome = "collision"
            else:
                outcome = "ok"
            took = radio.on_air_end(tx, outcome, rssi, snr)
            self.counts[outcome if took else "not_listening"] += 1
            record["receivers"][self.name_of(radio)] = {"outcome": outcome if took else "not_listening",
                                                        "rssi_dbm": round(rssi, 2), "snr_db": round(snr, 2)}
        self.frames.append(record)
        for cb in list(self.observers):
            cb(record)


def world_medium(world, clock):
    """The one medium of a scenario world, made on first use and shared by every board and
    gateway radio placed in it."""
    medium = getattr(world, "_sen_medium", None)
    if medium is None:
        medium = world._sen_medium = world.make_medium(clock)
    return medium
