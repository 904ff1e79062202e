# The node's side of link adaptation (docs/frame-format.md section 9): the SF and TX
# back-off the gateway's ADR commands, the node's own back-off when ACKs stop coming,
# which frames ask for an ACK (ack_every, link checks), which samples wait (batching), and the
# receive window.
# All state lives in RTC memory (state.py) and goes to flash with the queue (flashq.py).
import state as st

EIRP_MAX_DBM = 16
MIN_DBM = 2
RX_SLEEP_MS = 80  # the radio sleeps this long after TxDone; the gateway answers at 100 ms
ACK_DELAY_MS = 100
# Unanswered ACK requests in a row before a confirmed node steps back. At 20 % loss each
# way a request goes unanswered 36 % of the time: two in a row (13 %) stepped a healthy node
# back several times a day; four (1.7 %) about once in three days, and a node whose link
# really broke is back on an SF that worked 16 frames later at ack_every 4.
MISSES_TO_STEP = 4
EXPLORE_AFTER = 8  # ... and before trying SFs that never answered
CH_LEVEL = 12  # channels.py ids: a water level is compared with the last sample's
CH_RAIN_DEPTH = 15  # this interval's rain; tips (14) count since node start
LEVEL_JUMP = 50  # mm (level's wire unit): a rise or fall this fast goes at once, held or not


class Link:
    def __init__(self, cfg, state):
        self.cfg = cfg
        self.state = state

    # --- settings in use ---
    def sf(self):
        return self.state.buf[st.O_LINK_SF] or self.cfg["radio"]["sf"]

    def backoff_db(self):
        return self.state.buf[st.O_LINK_BACKOFF]

    def tx_dbm(self):
        r = self.cfg["radio"]
        top = min(r["tx_dbm"], EIRP_MAX_DBM - r["antenna_gain_dbi"])
        return max(MIN_DBM, top - self.backoff_db())

    def radio_cfg(self):
        """node.json's radio table with the SF and power in use (a copy: node.json keeps the
        provisioned values)."""
        rc = dict(self.cfg["radio"])
        rc["sf"] = self.sf()
        rc["tx_dbm"] = self.tx_dbm()
        c = dict(self.cfg)
        c["radio"] = rc
        return c

    def rx_timing(self):
        """(ms the radio sleeps after TxDone, ms it then listens). An explicit radio.rx_window_ms
        listens from TxDone for that long, as before."""
        r = self.cfg["radio"]
        if r.get("rx_window_ms"):
            return 0, r["rx_window_ms"]
        t_sym_ms = (1 << self.sf()) * 1000 / r["bw_hz"]
        hdr = int((r["preamble"] + 12.25) * t_sym_ms + 0.999)
        return RX_SLEEP_MS, ACK_DELAY_MS + r.get("rx_late_ms", 60) + hdr - RX_SLEEP_MS

    def good(self):
        """The link has margin to spare: ADR runs the node at SF7 or SF8, and its last ACK
        request was answered (no miss since, and a downlink within one request's span).
        Batching (node.json `batch`) holds samples back only then, as a lost frame costs
        every sample it carries."""
        s = self.state
        if self.sf() > 8 or s.buf[st.O_LINK_MISS] or not s.buf[st.O_LINK_HEARD]:
            return False
        span = self.ack_every() if self.cfg["confirmed"] else (self.cfg.get("link_check_every", 16) or 16)
        return s.get("<H", st.O_SINCE_DL) <= span

    # --- batching: which samples wait for a later frame ---
    def level_moved(self, wire):
        """True if this sample's water level moved LEVEL_JUMP or more since the last sample
        taken (sent or held); remembers it for the next wake."""
        s = self.state
        for ch, v, q in wire:
            if ch == CH_LEVEL and v is not None:
                prev = s.get("<i", st.O_LAST_LEVEL)
                s.put("<i", st.O_LAST_LEVEL, v)
                return abs(v - prev) >= LEVEL_JUMP
        return False

    def holds(self, wire, moved, boot_pending):
        """True: the new sample waits for a later frame (node.json `batch`, docs/node-config.md).
        Only on a good link (good), and never what a city wants at once: a BOOT, a time
        request, a flagged reading, rain in the interval, a water level moving LEVEL_JUMP or more."""
        b = self.cfg.get("batch", 1)
        if b < 2 or boot_pending or not self.good() or self.state.buf[st.O_CLOCK] == 2:
            return False
        unsent = 0
        for p, epoch, fl, ctr, n in self.state.q_recs():
            if fl & st.QF_OLD:
                return False  # samples from before a power cut wait on a time request
            if not fl & st.QF_SENT:
                unsent += 1
        if unsent >= b:
            return False
        for ch, v, q in wire:
            if q or (ch == CH_RAIN_DEPTH and v):
                return False
        return not moved

    # --- which frames ask ---
    def ack_every(self):
        return self.cfg.get("ack_every") or 4

    def wants_ack(self, holding_old):
        """True if the next frame sets CONFIRMED."""
        if holding_old or self.state.buf[st.O_CLOCK] == 2:
            # a time request: samples from before a power cut wait for TIME; and a node whose
            # gateway gave TIME before asks until it has it again (a sample carried across two
            # cuts without one could only be dated late)
            return True
        since = self.state.get("<H", st.O_SINCE_ASK) + 1
        if self.cfg["confirmed"]:
            return since >= self.ack_every()
        every = self.cfg.get("link_check_every", 16)
        return every > 0 and since >= every

    def sent(self, asked):
        s = self.state
        s.put("<H", st.O_SINCE_ASK, 0 if asked else min(s.get("<H", st.O_SINCE_ASK) + 1, 0xFFFF))
        n = min(s.get("<H", st.O_SINCE_DL) + 1, 0xFFFF)
        s.put("<H", st.O_SINCE_DL, n)
        if not self.cfg["confirmed"]:
            lost = self.cfg.get("link_lost_after", 96)
            every = self.cfg.get("link_check_every", 16) or 16
            if lost and n >= lost and (n - lost) % every == 0:
                return self.step(explore=True)  # link_lost_after frames already waited long
        return False

    # --- outcomes ---
    def unanswered(self):
        """An ACK request got no valid downlink. Returns True if the settings changed."""
        s = self.state
        m = min(s.buf[st.O_LINK_MISS] + 1, 255)
        s.buf[st.O_LINK_MISS] = m
        if self.cfg["confirmed"] and m >= MISSES_TO_STEP:
            return self.step()
        return False

    def heard(self, config):
        """A valid downlink. Applies its link settings; returns True if they changed."""
        s = self.state
        s.buf[st.O_LINK_MISS] = 0
        s.put("<H", st.O_SINCE_DL, 0)
        old = (self.sf(), self.backoff_db())
        s.buf[st.O_LINK_HEARD] |= 1 << (old[0] - 7)
        if "sf" in config:
            s.buf[st.O_LINK_SF] = config["sf"]
        if "tx_backoff_db" in config:
            s.buf[st.O_LINK_BACKOFF] = config["tx_backoff_db"]
        return (self.sf(), self.backoff_db()) != old

    def step(self, explore=False):
        """One step more robust (docs/frame-format.md section 9, "Back-off"): full power
        first; then the next slower SF a downlink came at before; only after EXPLORE_AFTER
        unanswered requests in a row (or an unconfirmed node's lost link), SF + 1 up to SF12 and round to the slowest SF heard.
        A single-channel gateway hears one SF: a node that stepped away from it would never
        be heard (nor told) again, so SFs that never answered are a last resort."""
        s = self.state
        if s.buf[st.O_LINK_BACKOFF]:
            s.buf[st.O_LINK_BACKOFF] = 0
            return True
        sf = self.sf()
        heard = s.buf[st.O_LINK_HEARD]
        for x in range(sf + 1, 13):
            if heard & (1 << (x - 7)):
                s.buf[st.O_LINK_SF] = x
                return True
        if not explore and s.buf[st.O_LINK_MISS] < EXPLORE_AFTER:
            return False
        if sf < 12:
            s.buf[st.O_LINK_SF] = sf + 1
            return True
        back = 0  # node.json's SF when no downlink ever came
        for x in range(12, 6, -1):
            if heard & (1 << (x - 7)):
                back = x
                break
        s.buf[st.O_LINK_SF] = back
        return self.sf() != 12
