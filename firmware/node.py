# One node cycle: sample, filter, queue, frame, send (ACK window when confirmed), persist.
# The caller (app.py) owns boot decisions, the watchdog and deep sleep.
import time
import state as st
from link import Link
from flashq import EPOCH_2000_UNIX, FlashQ

from nap import lightsleep

MAX_FRAMES_PER_CYCLE = 3
RETRIES = 2
FMT = {"ph": "%.2f", "water_level": "%.3f", "water_temp": "%.2f", "conductivity": "%d",
       "rain_tips": "%d", "pm1": "%d", "pm25": "%d", "pm10": "%d", "battery": "%.2f"}
SHORT = {"air_temp": "T", "rh": "RH", "pressure": "P", "pm25": "PM2.5", "pm10": "PM10",
         "pm1": "PM1", "battery": "bat", "water_temp": "Tw", "ph": "pH",
         "conductivity": "EC", "turbidity": "turb", "water_level": "level",
         "dissolved_oxygen": "DO", "rain_tips": "tips", "rain_depth": "rain",
         "rain_intensity": "int"}


class Node:
    def __init__(self, cfg, state, counter, duty, radio, sampler, log=print, now=None, feed=None,
                 fq=None, link=None, remake_radio=None, make_radio=None):
        self.cfg = cfg
        self.state = state
        self.counter = counter
        self.duty = duty
        self.radio = radio
        self.sampler = sampler
        self.log = log
        self.now = now or time.time
        self.feed = feed or (lambda: None)
        self._framer = None
        self.fq = fq or FlashQ(state, self.now)
        self.link = link or Link(cfg, state)
        self.remake_radio = remake_radio
        self.make_radio = make_radio  # radio None and this set: built only if a frame goes out
        self.last = {}  # figures of the last cycle, for the log, selftest and the bench

    @property
    def framer(self):
        # frame.py (and airtime.py) load only on a wake that frames: a held sample's wake
        # does without them (~18 ms of imports)
        if self._framer is None:
            import frame
            self._framer = frame.Framer(self.cfg["node_id"], self.cfg["key_bytes"])
        return self._framer

    def toa_ms(self, n):
        import airtime
        r = self.cfg["radio"]
        return airtime.time_on_air_us(n, self.link.sf(), r["bw_hz"], r["cr"], r["preamble"]) / 1000

    def _encode(self, recs, flags, counter, now):
        """Frame the queued records `recs` [(offset, epoch)], as many of the oldest as fit;
        returns (frame bytes, how many) or (None, 0) if even one sample does not fit."""
        import frame
        k = len(recs)
        while k > 0:
            f = flags
            dt_first = now - recs[0][1]
            if k > 1 or dt_first > 60:
                f |= frame.UP_BATCH
            done = 0
            try:
                fr = self.framer
                fr.begin(counter, f)
                last_dt = None
                for p, epoch in recs[:k]:
                    if f & frame.UP_BATCH:
                        dt = now - epoch
                        if dt < 0:
                            dt = 0
                        if last_dt is not None and dt >= last_dt:
                            dt = last_dt - 1 if last_dt > 0 else 0
                        last_dt = dt
                        fr.sample(dt)
                    for ch, v, q in self.state.q_readings(p):
                        fr.reading(ch, v, q)
                    done += 1
                return bytes(fr.end()), k
            except ValueError:
                # full after `done` whole samples: frame that many next (not one fewer per
                # try: a backlog of 16 air samples took a dozen encodings and HMACs)
                k = done if done < k else k - 1
        return None, 0

    def _eligible(self, holding):
        """Up to 16 queued samples to send, oldest first: not waiting on a frame's fate, and
        not from an earlier power session while the clock is unsynced."""
        import frame
        s = self.state
        now = int(self.now())
        old = 0
        for p, epoch, fl, ctr, n in s.q_recs():
            if now - epoch > frame.MAX_DT - 3600:
                s.q_mark(p, 0xFF)  # older than the batch format allows: can never go
                old += 1
        if old:
            s.q_sweep()
        out = []
        self._n_elig = 0
        for p, epoch, fl, ctr, n in s.q_recs():
            if not fl & st.QF_SENT and not (holding and fl & st.QF_OLD):
                self._n_elig += 1
                if len(out) < frame.MAX_SAMPLES:
                    out.append((p, epoch))
        return out

    def _unmark(self, c):
        """Frame c went unanswered: its samples go again in a later frame."""
        for p, epoch, fl, ctr, n in self.state.q_recs():
            if fl & st.QF_SENT and ctr == c:
                self.state.q_mark(p, fl & ~st.QF_SENT)

    def _acked(self, c, rng):
        """An ACK of uplink c with RANGE bitmap rng (None without): drop what it names, send
        again what it shows missing or what is older than c - 16 and was never named."""
        s = self.state
        for p, epoch, fl, ctr, n in s.q_recs():
            if not fl & st.QF_SENT or ctr > c:
                continue
            i = c - 1 - ctr
            if ctr == c or (rng is not None and 0 <= i < 16 and (rng >> i) & 1):
                s.q_mark(p, 0xFF)
            else:
                s.q_mark(p, fl & ~st.QF_SENT)
        s.q_sweep()

    def _apply(self, config):
        if self.link.heard(config):
            self._radio_changed()
        changed = []
        for k in ("interval_s", "confirmed", "calibration_mode", "ack_every"):
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

    def _radio_changed(self):
        """SF or power changed: set the radio up again (a warm wake then finds it so)."""
        self.last["link"] = "SF%d %ddBm" % (self.link.sf(), self.link.tx_dbm())
        if self.remake_radio is not None:
            try:
                self.radio = self.remake_radio()
            except Exception as e:
                self.log("[sen] radio: %s" % e)

    def _listen(self, c, t_done):
        """The receive window of uplink c: radio asleep until RX_SLEEP_MS after TxDone, then
        listening. Returns the downlink's flags, or None without a valid one."""
        import frame
        wait, win = self.link.rx_timing()
        if wait:
            self.radio.sleep()
            left = wait - time.ticks_diff(time.ticks_ms(), t_done)
            if left > 0:
                lightsleep(left)
        pkt = self.radio.receive(win)
        if pkt is None:
            return None
        extra = [None, None]
        try:
            dflags, conf = frame.parse_downlink(pkt[0], self.cfg["node_id"], self.framer.mic, c, extra)
        except ValueError as e:
            self.last["dl_reject"] = str(e)
            return None
        if extra[0] is not None and extra[0] >= EPOCH_2000_UNIX:
            # TIME is the end of uplink c; the node's TxDone was that instant
            since = time.ticks_diff(time.ticks_ms(), t_done)
            err = self.fq.sync(extra[0] - EPOCH_2000_UNIX + (since + 500) // 1000)
            self.last["clock_err"] = err
        if dflags & frame.DN_ACK:
            self.last["ack_rssi"] = pkt[1]
            self._acked(c, extra[1])
        self._apply(conf)
        return dflags

    def send_queue(self, boot_pending):
        """Send queued samples as frames while the duty cycle allows; the first frame's air
        time is reserved and the queue saved to flash before it goes out.
        Returns (frames sent, boot flag still pending, ack text)."""
        import frame
        sent = 0
        ack_txt = "-"
        heard = False
        saved = False
        pool = 0
        confirmed = self.cfg["confirmed"]
        hop = len(self.cfg["radio"]["channels"]) > 1
        for _ in range(MAX_FRAMES_PER_CYCLE):
            now = int(self.now())
            holding = self.fq.holding_old()
            recs = self._eligible(holding)
            if not recs:
                break
            ask = self.link.wants_ack(holding)
            flags = (frame.UP_BOOT if boot_pending else 0) | (frame.UP_CONFIRMED if ask else 0)
            c = self.counter.peek()
            data, k = self._encode(recs, flags, c, now)
            if data is None:
                self.state.q_mark(recs[0][0], 0xFF)  # cannot be framed at all: drop rather than block
                self.state.q_sweep()
                continue
            toa = self.toa_ms(len(data))
            tries = 1 + (RETRIES if ask and confirmed and self.link.ack_every() == 1 else 0)
            while tries > 1 and not self.duty.allows(now, toa * tries):
                tries -= 1
            if not self.duty.allows(now, toa):
                self.last["held"] = self.state.q_count()
                ack_txt = "held"
                break
            if saved and toa * tries > pool:
                break  # later frames go only inside the air time reserved in flash before the first
            if self.counter.take() != c:
                continue  # cannot happen unless peek/take disagree; re-frame to be safe
            for p, epoch in recs[:k]:
                self.state.q_mark(p, self.state.buf[p + 4] | st.QF_SENT, c)
            if not saved:
                # Reserve before anything goes out: this frame's tries, and as many more frames
                # of its air time as the backlog needs this cycle; flash then holds the lot.
                more = min(MAX_FRAMES_PER_CYCLE - 1, (self._n_elig - k + frame.MAX_SAMPLES - 1) // frame.MAX_SAMPLES)
                while more and not self.duty.allows(now, toa * (tries + more)):
                    more -= 1
                pool = toa * (tries + more)
                self.duty.spend(now, pool)
                self.fq.save()  # rewrite 1: the sample, the clock, the reservation
                saved = True
            pool -= toa * tries
            spare = tries
            got = None
            ok = False
            for attempt in range(tries):
                if attempt:
                    # Back-off: 1 s, 2 s (+ jitter) so two nodes that collided part ways; the
                    # radio sleeps through it (0.2 uA, not 1.6 mA in standby).
                    try:
                        self.radio.sleep()
                    except Exception:
                        pass
                    lightsleep(1000 * attempt + (time.ticks_ms() & 0x1FF))
                self.feed()
                if hop:
                    self.radio.set_frequency(self.channel(c, attempt))
                ok = self.radio.send(data, int(toa))
                t_done = time.ticks_ms()
                spare -= 1
                self.last["frame_len"] = len(data)
                self.last["toa_ms"] = self.last.get("toa_ms", 0) + toa
                self.last["counter"] = c
                if not ok:
                    self.last["tx_error"] = True
                    break
                sent += 1
                boot_pending = False
                if not ask:
                    break
                got = self._listen(c, t_done)
                if got is not None:
                    heard = True
                    break
            pool += toa * spare
            if self.link.sent(ask and ok):
                self._radio_changed()
            if ok and not confirmed:
                for p, epoch in recs[:k]:  # an unconfirmed node sends each sample once
                    self.state.q_mark(p, 0xFF)
                self.state.q_sweep()
            elif not ok or (ask and not (got or 0) & frame.DN_ACK):
                self._unmark(c)
                if ask and ok and got is None and self.link.unanswered():
                    self._radio_changed()
                ack_txt = "no" if ok else ack_txt
                break
            if ask:
                ack_txt = "yes"
            if k == len(recs) and k < frame.MAX_SAMPLES:
                break  # all it had went: what an ACK sends back for resending waits for the next frame
        if pool > 0:
            self.duty.refund(pool)  # RTC only: flash keeps the reservation, the legal side
        if heard:
            self.fq.save()  # rewrite 2: what the ACK dropped, the clock it set, the link settings
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
        self.state.buf[st.O_CYCLE_WRITES] = 0
        moved = self.link.level_moved(wire) if self.cfg.get("batch", 1) > 1 else False
        self.state.q_push(now, wire, 0 if self.fq.synced() else st.QF_UNSYNCED)
        ack = "-"
        sent = 0
        if self.link.holds(wire, moved, boot_pending or safe):
            ack = "batch"
        else:
            if self.radio is None and self.make_radio is not None:
                try:
                    self.radio = self.make_radio()
                except Exception as e:
                    self.log("[sen] radio: %s" % e)
                self.make_radio = None
            if self.radio is not None:
                sent, boot_pending, ack = self.send_queue(boot_pending)
            else:
                ack = "radio-down"
        if not self.state.buf[st.O_CYCLE_WRITES]:
            self.fq.save()  # nothing went out: the sample still goes to flash
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
        if l.get("link"):
            parts.append("link=" + l["link"].replace(" ", "/"))
        if "clock_err" in l:
            parts.append("clock%+ds" % l["clock_err"])
        dropped = self.state.get("<I", st.O_Q_DROPPED)
        if dropped:
            parts.append("dropped=%d" % dropped)
        if self.sampler.errors:
            parts.append("err=" + ",".join(self.sampler.errors))
        parts.append("sleep=%ds" % sleep_s)
        return " ".join(parts)
