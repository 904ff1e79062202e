"""Board definitions (boards/*.toml): load, validate, list, and convert to the device's JSON.

MicroPython has no TOML parser, so the device reads a compact JSON copy, `board.json`,
written by `device_json()` (host tools copy it to the flash root next to the firmware).
The JSON holds the same keys as the TOML, minus comments.

    from sen.emulator.board_def import load_board, list_boards, device_json
    bd = load_board("ttgo-lora32-v21")          # or a path to a .toml file
    open("board.json", "wb").write(device_json(bd))
"""
import json
import tomllib
from pathlib import Path

from sen.errors import SenError
from sen.paths import BOARDS

# ESP32 GPIO facts the validator checks pins against (ESP32 datasheet, "Pin Definitions").
GPIOS = frozenset(list(range(0, 20)) + [21, 22, 23, 25, 26, 27] + list(range(32, 40)))
INPUT_ONLY = frozenset(range(34, 40))
ADC1 = frozenset(range(32, 40))
ADC2 = frozenset([0, 2, 4, 12, 13, 14, 15, 25, 26, 27])
RTC_GPIOS = frozenset([0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39])
FLASH_PINS = frozenset(range(6, 12))

CURRENT_KEYS = ("deep_sleep", "active_80mhz", "active_240mhz", "light_sleep", "radio_tx",
                "radio_rx", "radio_standby", "radio_sleep", "pms_fan", "pms_sleep", "sensors")


def list_boards(root: Path = BOARDS) -> list[str]:
    return sorted(p.stem for p in Path(root).glob("*.toml"))


def board_path(board: str, root: Path = BOARDS) -> Path:
    p = Path(board)
    if p.suffix == ".toml" and p.exists():
        return p
    p = Path(root) / f"{board}.toml"
    if not p.exists():
        known = ", ".join(list_boards(root)) or "none"
        raise SenError(f"unknown board {board!r}", f"use one of: {known} (see `sen emulate --list`)")
    return p


def load_board(board: str, root: Path = BOARDS) -> dict:
    """Parse and validate a board by id (boards/<id>.toml) or by path. Raises SenError."""
    path = board_path(board, root)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SenError(f"{path}: not valid TOML ({e})", "fix the syntax (docs/boards.md)") from None
    validate(data, str(path))
    return data


def _need(d, key, typ, where):
    if key not in d:
        raise SenError(f"{where}: missing {key!r}", "add it (docs/boards.md lists every key)")
    v = d[key]
    if typ is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    else:
        ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
    if not ok:
        raise SenError(f"{where}: {key!r} must be {typ.__name__}, got {v!r}", "fix the value (docs/boards.md)")
    return v


def _pin(d, key, where, *, output=False, rtc=False, adc1=False, optional=False):
    if optional and key not in d:
        return None
    p = _need(d, key, int, where)
    if p not in GPIOS:
        raise SenError(f"{where}: {key} = {p} is not an ESP32 GPIO", "use a GPIO from 0-39 that the chip has")
    if p in FLASH_PINS:
        raise SenError(f"{where}: {key} = {p} is wired to the SPI flash", "pick another GPIO")
    if output and p in INPUT_ONLY:
        raise SenError(f"{where}: {key} = {p} is input-only (GPIO34-39)", "pick an output-capable GPIO")
    if rtc and p not in RTC_GPIOS:
        raise SenError(f"{where}: {key} = {p} is not an RTC GPIO, so it cannot wake the chip",
                       "use one of " + ", ".join(map(str, sorted(RTC_GPIOS))))
    if adc1 and p not in ADC1:
        raise SenError(f"{where}: {key} = {p} is not an ADC1 pin", "use GPIO32-39")
    return p


def validate(d: dict, where: str = "board") -> None:
    """Check a parsed board definition; raise SenError naming the first problem."""
    for key in ("id", "name", "mcu"):
        _need(d, key, str, where)
    for key in ("flash_kb", "app_fs_kb", "cpu_mhz"):
        if _need(d, key, int, where) <= 0:
            raise SenError(f"{where}: {key} must be positive", "fix the value")
    if "boot_ms" in d and _need(d, "boot_ms", int, where) < 0:
        raise SenError(f"{where}: boot_ms must not be negative", "fix the value")
    if d["app_fs_kb"] >= d["flash_kb"]:
        raise SenError(f"{where}: app_fs_kb must be smaller than flash_kb", "leave room for the MicroPython image")
    if d["cpu_mhz"] not in (80, 160, 240):
        raise SenError(f"{where}: cpu_mhz {d['cpu_mhz']} is not an ESP32 CPU frequency", "use 80, 160 or 240")
    _need(d, "fitted", list, where)
    used = {}

    def claim(pin, what):
        if pin is None:
            return
        if pin in used:
            raise SenError(f"{where}: GPIO{pin} is used twice ({used[pin]} and {what})", "give each function its own pin")
        used[pin] = what

    lora = _need(d, "lora", dict, where)
    w = where + " [lora]"
    if _need(lora, "chip", str, w) != "sx1276":
        raise SenError(f"{w}: chip {lora['chip']!r} is not supported", "use \"sx1276\"")
    _need(lora, "spi_id", int, w)
    for key in ("sck", "mosi", "cs", "reset"):
        claim(_pin(lora, key, w, output=True), "lora." + key)
    claim(_pin(lora, "miso", w), "lora.miso")
    claim(_pin(lora, "dio0", w), "lora.dio0")
    claim(_pin(lora, "dio1", w, optional=True), "lora.dio1")

    i2c = _need(d, "i2c", dict, where)
    w = where + " [i2c]"
    _need(i2c, "id", int, w)
    claim(_pin(i2c, "sda", w, output=True), "i2c.sda")
    claim(_pin(i2c, "scl", w, output=True), "i2c.scl")
    _need(i2c, "freq_hz", int, w)
    if _need(i2c, "bme280_address", int, w) not in (0x76, 0x77):
        raise SenError(f"{w}: bme280_address must be 0x76 or 0x77", "set it from the SDO strap")

    pms = _need(d, "pms5003", dict, where)
    w = where + " [pms5003]"
    _need(pms, "uart_id", int, w)
    claim(_pin(pms, "tx", w, output=True), "pms5003.tx")
    claim(_pin(pms, "rx", w), "pms5003.rx")
    claim(_pin(pms, "set", w, output=True), "pms5003.set")
    _need(pms, "baud", int, w)

    adc = _need(d, "adc", dict, where)
    w = where + " [adc]"
    bat = _pin(adc, "battery", w)
    if bat not in ADC1 | ADC2:
        raise SenError(f"{w}: battery = {bat} is not an ADC pin", "use an ADC1 pin (GPIO32-39)")
    claim(bat, "adc.battery")
    if _need(adc, "battery_ratio", float, w) < 1:
        raise SenError(f"{w}: battery_ratio must be >= 1 (Vbat / Vpin)", "fix the divider ratio")
    probes = _need(adc, "probes", dict, w)
    for name in probes:
        claim(_pin(probes, name, w + ".probes", adc1=True), "adc.probes." + name)

    for sect in ("rain_gauge", "maintenance", "sensor_power"):
        s = _need(d, sect, dict, where)
        w = f"{where} [{sect}]"
        claim(_pin(s, "pin", w, rtc=(sect == "rain_gauge"), output=(sect == "sensor_power")), sect)
        if _need(s, "active", int, w) not in (0, 1):
            raise SenError(f"{w}: active must be 0 or 1", "fix the value")
        if sect != "sensor_power":
            pull = _need(s, "pull", str, w)
            if pull not in ("up", "down", "none"):
                raise SenError(f"{w}: pull {pull!r} unknown", "use \"up\", \"down\" or \"none\"")
            if pull != "none" and s["pin"] in INPUT_ONLY:
                raise SenError(f"{w}: GPIO{s['pin']} has no internal pull resistor", "set pull = \"none\" and fit an external one")
            ext = s.get("external_pull", "none")
            if ext not in ("up", "down", "none"):
                raise SenError(f"{w}: external_pull {ext!r} unknown", "use \"up\", \"down\" or \"none\"")

    cur = _need(d, "current_ma", dict, where)
    w = where + " [current_ma]"
    for key in CURRENT_KEYS:
        if _need(cur, key, float, w) < 0:
            raise SenError(f"{w}: {key} must not be negative", "fix the value")
    if not cur["deep_sleep"] < cur["light_sleep"] < cur["active_80mhz"] <= cur["active_240mhz"]:
        raise SenError(f"{w}: expected deep_sleep < light_sleep < active_80mhz <= active_240mhz",
                       "check the figures against the datasheet")


def device_json(board: dict) -> bytes:
    """The compact JSON the device reads as /board.json (keys starting with '_' dropped)."""
    clean = {k: v for k, v in board.items() if not k.startswith("_")}
    return json.dumps(clean, separators=(",", ":"), sort_keys=True).encode()


def write_device_json(board: str, dest: Path) -> Path:
    """Write board.json for `board` (id or path) to dest (a file or a directory)."""
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / "board.json"
    dest.write_bytes(device_json(load_board(board)))
    return dest
