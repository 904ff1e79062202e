# Receiver node (kind "receiver"): a board that listens continuously on one LoRa channel
# and forwards every frame it hears, with RSSI/SNR, over USB serial to a gateway host
# (backend "serial"). Line protocol (docs/receiver-serial-protocol.md):
#   board -> host  SENRDY <freq_hz> <sf> <bw_hz> <sync>     after each (re)configuration
#   board -> host  SENRX <rssi> <snr> <hex frame>           one line per frame
#   board -> host  SENTXD <ok 0|1>                          after a SENTX
#   host -> board  SENCFG <freq_hz> <sf> <bw_hz> <sync>     (re)configure and listen
#   host -> board  SENTX <hex frame>                        send a downlink now, then listen
# Other lines from the board start with "#" (logs). The radio is re-initialised when
# nothing has arrived for WATCHDOG_S: SX127x receivers are known to hang.
import sys
import time

try:
    from ubinascii import hexlify, unhexlify
except ImportError:
    from binascii import hexlify, unhexlify

WATCHDOG_S = 600
MAX_LINE = 600


class Receiver:
    def __init__(self, radio, out, poll_in, rc):
        """radio: drivers.sx127x.SX127x; out: write(str); poll_in(): a complete input
        line (str) or None, never blocking; rc: radio settings dict (freq_hz, sf, bw_hz,
        sync_word, cr, tx_dbm, preamble)."""
        self.radio = radio
        self.out = out
        self.poll_in = poll_in
        self.rc = dict(rc)
        self.buf = bytearray(256)
        self.frames = 0
        self.reinits = 0
        self.last_rx = time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)

    def _now_ms(self):
        return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)

    def _since_ms(self, t):
        if hasattr(time, "ticks_diff"):
            return time.ticks_diff(time.ticks_ms(), t)
        return self._now_ms() - t

    def listen(self):
        rc = self.rc
        self.radio.configure(rc["freq_hz"], rc["sf"], rc["bw_hz"], rc.get("cr", 1), rc.get("tx_dbm", 14),
                             rc["sync_word"], rc.get("preamble", 8))
        self.radio.start_rx()
        self.last_rx = self._now_ms()
        self.out("SENRDY %d %d %d %d\n" % (rc["freq_hz"], rc["sf"], rc["bw_hz"], rc["sync_word"]))

    def command(self, line):
        parts = line.strip().split()
        if not parts:
            return
        if parts[0] == "SENCFG" and len(parts) == 5:
            try:
                freq, sf, bw, sync = int(parts[1]), int(parts[2]), int(parts[3]), int(parts[4])
            except ValueError:
                self.out("# bad SENCFG\n")
                return
            self.rc["freq_hz"], self.rc["sf"], self.rc["bw_hz"], self.rc["sync_word"] = freq, sf, bw, sync
            try:
                self.listen()
            except (ValueError, OSError) as e:
                self.out("# SENCFG refused: %s\n" % e)
        elif parts[0] == "SENTX" and len(parts) == 2:
            try:
                data = unhexlify(parts[1])
            except ValueError:
                self.out("# bad SENTX\n")
                return
            import airtime
            toa_ms = airtime.time_on_air_us(len(data), self.rc["sf"], self.rc["bw_hz"]) // 1000 + 1
            ok = self.radio.send(data, toa_ms)
            self.out("SENTXD %d\n" % (1 if ok else 0))
            self.radio.start_rx()
        else:
            self.out("# unknown command\n")

    def step(self):
        """One pass: a host command, a received frame, the watchdog. Returns True if busy."""
        busy = False
        line = self.poll_in()
        if line:
            self.command(line)
            busy = True
        if self.radio.rx_pending():
            pkt = self.radio.read_packet(self.buf)
            if pkt is not None:
                data, rssi, snr = pkt
                self.frames += 1
                self.last_rx = self._now_ms()
                self.out("SENRX %d %.2f %s\n" % (int(round(rssi)), snr, hexlify(data).decode()))
            busy = True
        elif self._since_ms(self.last_rx) > WATCHDOG_S * 1000:
            self.reinits += 1
            self.out("# watchdog: no frame for %d s, re-initialising the radio\n" % WATCHDOG_S)
            self.radio.reset()
            self.listen()
        return busy


def _stdin_poller():
    import select
    p = select.poll()
    p.register(sys.stdin, select.POLLIN)
    line = []

    dead = []

    def poll():
        # A console without input polling (some USB-serial bridges, the emulator's pty)
        # must not stop reception: forward frames, say once that commands are ignored.
        if dead:
            return None
        try:
            while p.poll(0):
                ch = sys.stdin.read(1)
                if not ch:
                    return None
                if ch == "\n":
                    s = "".join(line)
                    del line[:]
                    return s
                if len(line) < MAX_LINE:
                    line.append(ch)
        except OSError as e:
            dead.append(e)
            _write("# console input unavailable (%s): SENCFG/SENTX ignored, receiving only\n" % e)
        return None
    return poll


def _write(s):
    sys.stdout.write(s)


def run(board, cfg):
    """Entry from main.py for kind "receiver" (app.run() loads the config). Ctrl-C returns to the REPL."""
    from config import make_radio
    radio = make_radio(board, cfg)
    r = Receiver(radio, _write, _stdin_poller(), cfg["radio"])
    r.listen()
    try:
        while True:
            if not r.step():
                time.sleep_ms(2)
    except KeyboardInterrupt:
        _write("# receiver stopped; REPL is yours\n")
        return "receiver"
