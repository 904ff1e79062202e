"""An SX1302 LoRa concentrator (with two SX1250 radios) on the emulator's radio medium, at the
level a packet forwarder sees it through the HAL (lgw_receive / lgw_send / lgw_get_instcnt):

- 8 multi-SF channels (125 kHz, SF7-SF12 at once each) and one single-SF "LoRa std" channel,
  placed as `global_conf.json` places them; 16 demodulators shared by all channels, so at most
  16 frames are received at once (the 17th finds none and is lost, as on the chip);
- one sync word for all demodulators and transmit (`lorawan_public`); uplinks only (IQ
  upright), so inverted-IQ LoRaWAN downlinks of other gateways are not received;
- the 1 MHz counter `tmst` (32 bits, wraps), stamped at the end of each frame;
- a transmitter scheduled by counter value, with the just-in-time queue's rules of
  lora_pkt_fwd: TOO_LATE under 42.5 ms of lead, TOO_EARLY beyond 3 s, COLLISION_PACKET when
  it overlaps a downlink already queued, TX_FREQ outside the TX range. Half duplex: nothing
  is received while it transmits.

Received frames are handed to `on_rx(rxpk dict)`, in the same virtual-time step that ends them.
"""
import base64
import datetime

from sen import airtime

from ..path_loss import SNR_LIMIT_DB

# Vietnam AS923-2: 921.4-922.8 MHz in 200 kHz steps (radio_0 921.7, radio_1 922.5 MHz)
AS923_2 = tuple(921_400_000 + 200_000 * i for i in range(8))
JIT_LEAD_US = 42_500  # TX_START_DELAY + TX_MARGIN_DELAY + TX_JIT_DELAY
JIT_MAX_AHEAD_US = 3_000_000
DEMODULATORS = 16


class SX1302:
    def __init__(self, clock, name="sx1302", channels=AS923_2, std_channel=(922_100_000, 7, 250_000),
                 lorawan_public=False, tmst_offset=0, tx_freq_range=(920_000_000, 923_000_000), tx_power_dbm=14):
        self.clock = clock
        self.name = name
        self.channels = tuple(channels)
        self.std_channel = std_channel  # (freq_hz, sf, bw_hz) or None
        self.sync_word = 0x34 if lorawan_public else 0x12
        self.tmst_offset = tmst_offset
        self.tx_freq_range = tx_freq_range
        self.tx_power_dbm = tx_power_dbm
        self.medium = None
        self.on_rx = None
        self.busy: dict = {}  # transmission -> (channel index, rssi, snr): demodulators in use
        self.tx_queue: list = []  # (start_us, end_us) of scheduled downlinks
        self.transmitting_until = -1
        self.counts = {"rx_ok": 0, "rx_crc_bad": 0, "no_demodulator": 0, "tx": 0, "tx_refused": 0}

    # -- the counter -------------------------------------------------------------------
    def counter(self, t_us=None) -> int:
        return (self.tmst_offset + (self.clock.now_us() if t_us is None else t_us)) & 0xFFFFFFFF

    def _at_counter(self, tmst: int) -> int:
        """Virtual time at which the counter next reads `tmst` (from now, modulo 2^32)."""
        return self.clock.now_us() + ((tmst - self.counter()) & 0xFFFFFFFF)

    # -- receive -----------------------------------------------------------------------
    def _channel(self, tx):
        if tx.bw_hz == 125_000 and 7 <= tx.sf <= 12:
            for i, f in enumerate(self.channels):
                if abs(tx.freq_hz - f) < tx.bw_hz / 4.0:
                    return i
        if self.std_channel is not None:
            f, sf, bw = self.std_channel
            if abs(tx.freq_hz - f) < bw / 4.0 and tx.sf == sf and tx.bw_hz == bw:
                return 8
        return None

    def on_air_start(self, tx, rssi, snr):
        if tx.invert_iq or tx.sync_word != self.sync_word or tx.implicit:
            return False
        if self.clock.now_us() < self.transmitting_until:
            return False
        chan = self._channel(tx)
        if chan is None or snr < SNR_LIMIT_DB.get(tx.sf, -20.0):
            return False
        if len(self.busy) >= DEMODULATORS:
            self.counts["no_demodulator"] += 1
            return False
        self.busy[tx] = (chan, rssi, snr)
        return True

    def on_air_end(self, tx, outcome, rssi, snr):
        got = self.busy.pop(tx, None)
        if got is None:
            return False
        if outcome == "aborted":
            return True
        chan = got[0]
        ok = outcome == "ok"
        self.counts["rx_ok" if ok else "rx_crc_bad"] += 1
        now = self.clock.now_us()
        rxpk = {"tmst": self.counter(now), "time": _iso(self.clock.epoch_s()), "chan": chan,
                "rfch": 0 if chan < 4 or chan == 8 else 1,
                "freq": round((self.channels[chan] if chan < 8 else self.std_channel[0]) / 1e6, 6),
                "stat": 1 if ok else -1, "modu": "LORA", "datr": f"SF{tx.sf}BW{tx.bw_hz // 1000}",
                "codr": f"4/{tx.cr + 4}", "rssi": int(round(rssi)), "rssis": int(round(rssi - max(0.0, -snr))),
                "lsnr": round(snr, 1), "size": len(tx.payload), "data": base64.b64encode(tx.payload).decode()}
        if self.on_rx is not None:
            self.on_rx(rxpk)
        return True

    # -- transmit ----------------------------------------------------------------------
    def schedule(self, txpk: dict) -> str | None:
        """Queue a PULL_RESP's txpk; returns the TX_ACK error, or None when accepted.
        Raises KeyError/ValueError/TypeError for a txpk the forwarder cannot read."""
        freq = int(round(float(txpk["freq"]) * 1e6))
        payload = base64.b64decode(txpk["data"] + "=" * (-len(txpk["data"]) % 4))
        datr = str(txpk["datr"])
        sf, bw = int(datr[2:datr.index("BW")]), int(datr.split("BW")[1]) * 1000
        if not self.tx_freq_range[0] <= freq <= self.tx_freq_range[1]:
            return self._refuse("TX_FREQ")
        now = self.clock.now_us()
        if txpk.get("imme"):
            start = now + JIT_LEAD_US
        else:
            start = self._at_counter(int(txpk["tmst"]))
            lead = start - now
            if lead > 2 ** 31:  # the counter value is behind us
                return self._refuse("TOO_LATE")
            if lead < JIT_LEAD_US:
                return self._refuse("TOO_LATE")
            if lead > JIT_MAX_AHEAD_US:
                return self._refuse("TOO_EARLY")
        cr = int(str(txpk.get("codr", "4/5"))[2]) - 4
        preamble = int(txpk.get("prea", 8))
        crc = not txpk.get("ncrc", False)
        air = airtime.time_on_air_us(len(payload), sf=sf, bw_hz=bw, cr=cr, preamble=preamble, crc=crc)
        end = start + int(round(air))
        if any(s < end and start < e for s, e in self.tx_queue):
            return self._refuse("COLLISION_PACKET")
        self.tx_queue.append((start, end))
        params = {"freq_hz": freq, "sf": sf, "bw_hz": bw, "cr": cr, "sync_word": self.sync_word, "crc": crc,
                  "implicit": False, "preamble": preamble, "ldro": airtime.ldro(sf, bw),
                  "invert_iq": bool(txpk.get("ipol", False)),
                  "power_dbm": min(int(txpk.get("powe", self.tx_power_dbm)), self.tx_power_dbm)}
        self.clock.call_at(start, lambda: self._send(payload, params, air, start, end))
        return None

    def _refuse(self, error: str) -> str:
        self.counts["tx_refused"] += 1
        return error

    def _send(self, payload, params, air, start, end):
        self.tx_queue.remove((start, end))
        self.transmitting_until = end
        self.counts["tx"] += 1
        if self.medium is not None:
            self.medium.transmit(self, payload, params, air)


def _iso(epoch_s: float) -> str:
    return datetime.datetime.fromtimestamp(epoch_s, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
