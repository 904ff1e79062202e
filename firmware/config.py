# Node configuration: the board definition (board.json, copied from boards/<id>.toml at
# flashing) and the node config (node.json, written at provisioning). See
# docs/node-config.md for every key. Missing keys take the defaults below, which fit
# Vietnam's 920-923 MHz band (AS923-2 uplink channels 921.4-922.8 MHz, <=16 dBm EIRP).
import json

BOARD_FILE = "board.json"
NODE_FILE = "node.json"
KINDS = ("air", "water", "rain", "receiver")

FREQ_MIN = 921400000
FREQ_MAX = 922800000
EIRP_MAX_DBM = 16

# AS923-2 uplink channels as used in Vietnam, for `radio.channels` (a concentrator gateway
# listens on all eight). The default plan is the one channel `freq_hz`, which single-channel
# gateways (an SX127x hat, a receiver board) hear.
AS923_2 = (921400000, 921600000, 921800000, 922000000, 922200000, 922400000, 922600000, 922800000)

RADIO_DEFAULTS = {
    "freq_hz": 921400000,
    "sf": 9,
    "bw_hz": 125000,
    "cr": 1,
    "tx_dbm": 14,
    "antenna_gain_dbi": 2,
    "sync_word": 0x12,
    "preamble": 8,
    "rx_window_ms": 0,  # 0: automatic (link.py rx_timing): asleep 80 ms, then listen to 100 ms + rx_late_ms + header
    "rx_late_ms": 60,  # how late after its 100 ms the gateway's ACK may start. Every ms of window is 10.8 mA of RX
}

# Per-channel filter defaults: (filter, samples per cycle, EWMA alpha or 0).
FILTER_DEFAULTS = {
    "air_temp": ("median", 3, 0),
    "rh": ("median", 3, 0),
    "pressure": ("median", 3, 0),
    # PMS5003 reads: the sensor refreshes its output about once a second from its own
    # running average, so 3 reads 1 s apart with a median drop a glitched frame; each read
    # keeps the CPU awake ~34 ms for the 32-byte reply at 9600 baud, and the fan runs 1 s more.
    "pm1": ("median", 3, 0),
    "pm25": ("median", 3, 0),
    "pm10": ("median", 3, 0),
    "battery": ("median", 3, 0),
    "water_temp": ("ewma", 3, 0.5),
    "ph": ("median", 3, 0),
    "conductivity": ("median", 3, 0),
    "turbidity": ("median", 3, 0),
    "water_level": ("median", 3, 0),  # not EWMA: a flood rise must show at once
    "dissolved_oxygen": ("median", 3, 0),
}

WATER_PROBES = ("water_temp", "ph", "conductivity", "turbidity", "water_level", "dissolved_oxygen")
# Channel name -> key under the board's [adc.probes].
BOARD_PROBE = {"conductivity": "ec", "water_level": "level", "dissolved_oxygen": "do"}
RAW_CHANNEL = {
    "ph": "ph_raw",
    "conductivity": "ec_raw",
    "turbidity": "turbidity_raw",
    "water_level": "level_raw",
    "water_temp": "water_temp_raw",
    "dissolved_oxygen": "do_raw",
}


class ConfigError(ValueError):
    pass


def load_json(path, required=True):
    try:
        # One read, then parse: json.load(f) reads a stream one byte per call, which cost
        # ~30 ms of CPU per wake for board.json in the emulator (a call into the VFS per byte)
        with open(path) as f:
            return json.loads(f.read())
    except OSError:
        if required:
            raise ConfigError(path + " missing: provision the node (sen node flash)")
        return {}
    except ValueError:
        raise ConfigError(path + " is not valid JSON: re-provision the node")


def board_get(board, section, key, default=None):
    s = board.get(section)
    if isinstance(s, dict) and key in s:
        return s[key]
    return default


NODE_KEYS = ("node_id", "kind", "key", "interval_s", "confirmed", "calibration_mode", "send_raw", "radio", "sensors",
             "filters", "key_bytes", "ack_every", "link_check_every", "link_lost_after", "batch")
# whole-number node keys: (default, min, max)
LINK_KEYS = {"ack_every": (4, 1, 16), "link_check_every": (16, 0, 1024), "link_lost_after": (96, 0, 65535),
             "batch": (1, 1, 4)}
# radio.channels is a list or a plan name, checked on its own below
RADIO_KEYS = tuple(sorted(RADIO_DEFAULTS)) + ("channels",)


def check_node(cfg):
    """Fill defaults and validate node.json; raises ConfigError naming the bad key."""
    for k in cfg:
        if k not in NODE_KEYS:
            raise ConfigError("unknown key " + str(k) + ": use interval_s, confirmed, calibration_mode, send_raw, ack_every, "
                              "link_check_every, link_lost_after, batch, radio.*, sensors, filters")
    for k in ("confirmed", "calibration_mode", "send_raw"):
        if not isinstance(cfg.get(k, False), bool):
            raise ConfigError(k + " must be true or false")
    radio = cfg.get("radio", {})
    if not isinstance(radio, dict):
        raise ConfigError("radio must be a table of radio.* keys")
    for k in radio:
        if k not in RADIO_KEYS:
            raise ConfigError("unknown key radio." + str(k) + ": use one of radio." + ", radio.".join(RADIO_KEYS))
        if k != "channels" and (not isinstance(radio[k], int) or isinstance(radio[k], bool)):
            raise ConfigError("radio." + k + " must be a whole number")
    nid = cfg.get("node_id")
    if not isinstance(nid, int) or not 0 < nid < 65536:
        raise ConfigError("node_id must be 1..65535")
    kind = cfg.get("kind")
    if kind not in KINDS:
        raise ConfigError("kind must be one of air, water, rain, receiver")
    key = cfg.get("key", "")
    if kind != "receiver":
        if not isinstance(key, str) or len(key) != 32:
            raise ConfigError("key must be 32 hex digits (128 bits)")
        try:
            cfg["key_bytes"] = bytes.fromhex(key)
        except ValueError:
            raise ConfigError("key must be 32 hex digits (128 bits)")
    iv = cfg.get("interval_s", 900)
    if not isinstance(iv, int) or not 60 <= iv <= 86400:
        raise ConfigError("interval_s must be 60..86400")
    cfg["interval_s"] = iv
    for k in LINK_KEYS:
        d, lo, hi = LINK_KEYS[k]
        v = cfg.get(k, d)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise ConfigError("%s must be %d..%d" % (k, lo, hi))
        cfg[k] = v
    cfg["confirmed"] = bool(cfg.get("confirmed", False))
    cfg["calibration_mode"] = bool(cfg.get("calibration_mode", False))
    # Raw-signal channels in every frame, not flagged CALIBRATING: for calibration records
    # whose curve reads them (e.g. an EPA PM2.5 curve on pm25_cf1).
    cfg["send_raw"] = bool(cfg.get("send_raw", False))
    r = {}
    for k in RADIO_DEFAULTS:
        r[k] = RADIO_DEFAULTS[k]
    r.update(cfg.get("radio", {}))
    if not FREQ_MIN <= r["freq_hz"] <= FREQ_MAX:
        raise ConfigError("radio.freq_hz must be 921400000..922800000 (AS923-2, Vietnam)")
    if not 7 <= r["sf"] <= 12:
        raise ConfigError("radio.sf must be 7..12")
    ch = r.get("channels")
    if ch == "as923-2":
        ch = list(AS923_2)
    elif ch is None:
        ch = [r["freq_hz"]]
    if not isinstance(ch, list) or not 1 <= len(ch) <= 16:
        raise ConfigError("radio.channels must be \"as923-2\" or a list of 1..16 frequencies in Hz")
    for f in ch:
        if not isinstance(f, int) or not FREQ_MIN <= f <= FREQ_MAX:
            raise ConfigError("radio.channels: %s is not in 921400000..922800000 (AS923-2, Vietnam)" % (f,))
    r["channels"] = ch
    w = r.get("rx_window_ms") or 0
    if not isinstance(w, int) or not (w == 0 or 100 <= w <= 10000):
        raise ConfigError("radio.rx_window_ms must be 0 (automatic) or 100..10000")
    r["rx_window_ms"] = w  # 0 stays 0: link.py times the window at the SF in use
    if not 0 <= r["rx_late_ms"] <= 10000:
        raise ConfigError("radio.rx_late_ms must be 0..10000")
    # Legal limit is EIRP: cut conducted power by the antenna gain.
    if r["tx_dbm"] + r["antenna_gain_dbi"] > EIRP_MAX_DBM:
        r["tx_dbm"] = EIRP_MAX_DBM - r["antenna_gain_dbi"]
    cfg["radio"] = r
    cfg.setdefault("sensors", {})
    cfg.setdefault("filters", {})
    return cfg


def filter_for(cfg, name):
    """(filter, n, alpha) for channel `name`, node.json overriding the defaults."""
    d = FILTER_DEFAULTS.get(name, ("median", 3, 0))
    o = cfg.get("filters", {}).get(name)
    if not o:
        return d
    return (o.get("filter", d[0]), o.get("n", d[1]), o.get("alpha", d[2] or 0.3))


def load(board_file=BOARD_FILE, node_file=NODE_FILE):
    return load_json(board_file), check_node(load_json(node_file))


def save_node(cfg, node_file=NODE_FILE):
    """Persist node.json after a downlink config change (write a temp file, then rename,
    so a power cut leaves either the old or the new file)."""
    out = {}
    for k in cfg:
        if k != "key_bytes":
            out[k] = cfg[k]
    tmp = node_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    import os
    os.rename(tmp, node_file)


# The radio as board.json wires it. Both the node cycle (app.py) and the receiver
# (receiver.py) build their radio here, so neither imports the other. It lives in this
# module, which both already load, because a module of its own costs ~0.2 KB of heap on
# every wake (measured in the demo).
def make_radio(board, cfg, warm=False):
    from drivers.sx127x import SX127x
    from machine import SPI, Pin
    b = board
    spi = SPI(board_get(b, "lora", "spi_id", 2), baudrate=5000000, polarity=0, phase=0,
              sck=Pin(board_get(b, "lora", "sck", 18)),
              mosi=Pin(board_get(b, "lora", "mosi", 23)),
              miso=Pin(board_get(b, "lora", "miso", 19)))
    r = SX127x(spi, board_get(b, "lora", "cs", 18), board_get(b, "lora", "reset", 14),
               board_get(b, "lora", "dio0", 26))
    rc = cfg["radio"]
    if warm and r.is_configured(rc["freq_hz"], rc["sf"], rc["bw_hz"], rc["cr"], rc["sync_word"], rc["preamble"]):
        return r  # still set up from the last cycle, asleep: no reset, no register writes
    r.reset()
    r.configure(rc["freq_hz"], rc["sf"], rc["bw_hz"], rc["cr"], rc["tx_dbm"], rc["sync_word"],
                rc["preamble"], True, board_get(b, "lora", "pa_boost", True))
    r.sleep()  # 0.2 uA instead of 1.6 mA in standby while the sensors are sampled
    return r
