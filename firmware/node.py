# One node cycle: sample, filter, queue, frame, send (ACK window when confirmed), persist.
# The caller (app.py) owns boot decisions, the watchdog and deep sleep.
import time
import frame
import airtime
import state as st
from channels import CHANNELS

from nap import lightsleep

MAX_FRAMES_PER_CYCLE = 3
RETRIES = 2
FMT = {"ph": "%.2f", "water_level": "%.3f", "water_temp": "%.2f", "conductivity": "%d",
       "rain_tips": "%d", "pm1": "%d", "pm25": "%d", "pm10": "%d", "battery": "%.2f"}
NAMES = {}
for _n in CHANNELS:
    NAMES[CHANNELS[_n][0]] = _n
SHORT = {"air_temp": "T", "rh": "RH", "pressure": "P", "pm25": "PM2.5", "pm10": "PM10",
         "pm1": "PM1", "battery": "bat", "water_temp": "Tw", "ph": "pH",
         "conductivity": "EC", "turbidity": "turb", "water_level": "level",
         "dissolved_oxygen": "DO", "rain_tips": "tips", "rain_depth": "rain",
         "rain_intensity": "int"}


class Node:
    def __init__(self, cfg, state, counter, duty, radio, sampler, log=print, now=None, feed=None):
        self.cfg = cfg
        self.state = state
        self.counter = counter
        self.duty = duty
        self.radio = radio
        self.sampler = sampler
        self.log = log
        self.now = now or time.time
        self.feed = feed or (lambda: None)
        self.framer = frame.Framer(cfg["node_id"], cfg["key_bytes"])
        self.last = {}  # figures of the last cycle, for the log, selftest and the bench

    def toa_ms(self, n):
        r = self.cfg["radio"]
        return airtime.time_on_air_us(n, r["sf"], r["bw_hz"], r["cr"], r["preamble"]) / 1000

    def _encode(self, k, flags, counter, now):
        """Frame the k oldest queued samples; returns the frame (bytes) or None if even one
        sample does not fit."""
        while k > 0:
            f = flags
            items = list(self.state.q_items(k))
            dt_first = now - items[0][0]
            if k > 1 or dt_first > 60:
                f |= frame.UP_BATCH
            try:
                fr = self.framer
                fr.begin(counter, f)
                last_dt = None
                for epoch, rs in items:
                    if f & frame.UP_BATCH:
                        dt = now - epoch
                        if dt < 0:
                            dt = 0
                        if last_dt is not None and dt >= last_dt:
                            dt = last_dt - 1 if last_dt > 0 else 0
                        last_dt = dt
                        fr.sample(dt)
                    for ch, v, q in rs:
                        fr.reading(ch, v, q)
                return bytes(fr.end()), k
            except ValueError:
                k -= 1
        return None, 0

    def _expire(self, now):
        # Samples older than the batch format allows can never be sent.
        k = 0
        for epoch, rs in self.state.q_items():
            if now - epoch > frame.MAX_DT - 3600:
                k += 1
            else:
                break
        if k:
            self.state.q_drop(k)

    def _apply(self, config):
        changed = []
        for k in ("interval_s", "confirmed", "calibration_mode"):
            if k in config and self.cfg.get(k) != config[k]:
                self.cfg[k] = config[k]
                changed.append(k)
        if changed:
            try:
                import config as cfgmod
                cfgmod.save_node(self.cfg)
            except Exception as e:
                self.log("[sen] config not saved: %s" % e)
            self.log("[sen] downlink config: " + ", ".join("%s=%s" % (k, self.cfg[k]) for k in changed))
        return changed

    def send_queue(self, boot_pending):
        """Send queued samples as frames while the duty cycle allows.
        Returns (frames sent, boot flag still pending, ack text)."""
        sent = 0
        ack_txt = "-"
        confirmed = self.cfg["confirmed"]
        hop = len(self.cfg["radio"]["channels"]) > 1
        while self.state.q_count() and sent < MAX_FRAMES_PER_CYCLE:
            now = int(self.now())
            self._expire(now)
            if not self.state.q_count():
                break
            flags = 0
            if boot_pending:
                flags |= frame.UP_BOOT
            if confirmed:
                flags |= frame.UP_CONFIRMED
            c = self.counter.peek()
            data, k = self._encode(min(self.state.q_count(), frame.MAX_SAMPLES), flags, c, now)
            if data is None:
                self.state.q_drop(1)  # cannot be framed at all: drop rather than block
                continue
            toa = self.toa_ms(len(data))
            if not self.duty.allows(now, toa):
                self.last["held"] = self.state.q_count()
                ack_txt = "held"
                break
            c2 = self.counter.take()  # reserved in NVS before the frame exists on air
            if c2 != c:
                continue  # cannot happen unless peek/take disagree; re-frame to be safe
            acked = False
            for attempt in range(1 + (RETRIES if confirmed else 0)):
                if attempt:
                    # Back-off: 1 s, 2 s (+ jitter) so two nodes that collided part ways; the
                    # radio sleeps through it (0.2 uA, not 1.6 mA in standby).
                    try:
                        self.radio.sleep()
                    except Exception:
                        pass
                    lightsleep(1000 * attempt + (time.ticks_ms() & 0x1FF))
                    if not self.duty.allows(int(self.now()), toa):
                        break
                self.feed()
                if hop:
                    self.radio.set_frequency(self.channel(c, attempt))
                ok = self.radio.send(data, int(toa))
                self.duty.spend(int(self.now()), toa)
                self.last["frame_len"] = len(data)
                self.last["toa_ms"] = self.last.get("toa_ms", 0) + toa
                self.last["counter"] = c
                if not ok:
                    self.last["tx_error"] = True
                    break
                sent += 1
                boot_pending = False
                if not confirmed:
                    acked = True
                    break
                pkt = self.radio.receive(self.cfg["radio"]["rx_window_ms"])
                if pkt is None:
                    continue
                try:
                    dflags, conf = frame.parse_downlink(pkt[0], self.cfg["node_id"], self.framer.mic, c)
                except ValueError as e:
                    self.last["dl_reject"] = str(e)
                    continue
                if dflags & frame.DN_ACK:
                    acked = True
                    self.last["ack_rssi"] = pkt[1]
                if conf:
                    self._apply(conf)
                if acked:
                    break
            if acked:
                self.state.q_drop(k)
                ack_txt = "yes" if confirmed else "-"
            else:
                ack_txt = "no"
                break
        try:
            if hop:  # back to the configured frequency, so the next wake finds the radio as configured
                self.radio.set_frequency(self.cfg["radio"]["freq_hz"])
            self.radio.sleep()
        except Exception:
            pass
        return sent, boot_pending, ack_txt

    def channel(self, counter, attempt):
        """The uplink channel for this counter and attempt: pseudo-random over the plan, the
        same for the same frame on every run; the node listens for its ACK there too (RX1)."""
        ch = self.cfg["radio"]["channels"]
        # a 16-bit xorshift-multiply mix; multipliers < 2^14 keep every product a small int
        x = (counter ^ (self.cfg["node_id"] * 7) ^ (attempt * 0x5A5)) & 0xFFFF
        x = ((x ^ (x >> 7)) * 12829) & 0xFFFF
        x = ((x ^ (x >> 9)) * 9749) & 0xFFFF
        x ^= x >> 8
        return ch[x % len(ch)]

    def cycle(self, boot_pending, safe=False):
        """One full cycle. Returns the boot flag still pending (no frame went out)."""
        self.last = {}
        now = int(self.now())
        readings = self.sampler.sample(safe)
        from sampling import to_wire
        wire = to_wire(readings, self.cfg["calibration_mode"])
        self.state.q_push(now, wire)
        radio_ok = self.radio is not None
        ack = "-"
        sent = 0
        if radio_ok:
            sent, boot_pending, ack = self.send_queue(boot_pending)
        else:
            ack = "radio-down"
        n = self.state.get("<I", st.O_CYCLE_NO) + 1
        self.state.put("<I", st.O_CYCLE_NO, n)
        self.last["readings"] = readings
        self.last["sent"] = sent
        self.last["ack"] = ack
        self.last["cycle"] = n
        return boot_pending

    def log_line(self, sleep_s):
        l = self.last
        parts = ["[sen] cycle %d %s" % (l.get("cycle", 0), self.cfg["kind"])]
        for name, v, q in l.get("readings", ()):
            if name not in SHORT:
                continue
            s = SHORT[name] + "="
            if v is None:
                s += "--"
            else:
                s += FMT.get(name, "%.1f") % v
            if q:
                s += "!%d" % q
            parts.append(s)
        if l.get("frame_len"):
            parts.append("frame %dB cnt=%d toa=%dms" % (l["frame_len"], l["counter"], l.get("toa_ms", 0)))
        else:
            parts.append("no-frame")
        parts.append("ack=%s q=%d" % (l.get("ack", "-"), self.state.q_count()))
        dropped = self.state.get("<I", st.O_Q_DROPPED)
        if dropped:
            parts.append("dropped=%d" % dropped)
        if self.sampler.errors:
            parts.append("err=" + ",".join(self.sampler.errors))
        parts.append("sleep=%ds" % sleep_s)
        return " ".join(parts)
