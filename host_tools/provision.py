"""`sen node flash`: put a bundle, a node config and a key on a board, safely and idempotently.

The board is never left half-written: changed files go to a staging folder first, are
verified by SHA-256 there, and only then are moved into place in one device-side step,
with the files they replace kept aside until the self-test passes. A failure before that
step leaves the previous firmware untouched; a failed self-test puts it back.
"""
import ast
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from sen.errors import SenError
from sen.host_tools import node_config, node_keys
from sen.host_tools.bundle import MPY_MAJOR, Bundle, sha256
from sen.host_tools.device_link import DeviceError, DeviceLink

STAGE = "/.sen_stage"
PREV = "/.sen_prev"
DEVICE_MANIFEST = "sen_manifest.json"
NODE_FILE = "node.json"
GATEWAY_KEY_RELOAD_S = 2.5  # a running gateway re-reads its key file every 2 s
SPACE_MARGIN = 8 * 1024  # littlefs needs free blocks for metadata; never fill to the last byte

PROBE = """
import sys, os
try:
    _s = os.statvfs('/')
    _free = _s[0] * _s[3]
except Exception:
    _free = -1
print(repr({'version': tuple(sys.implementation.version[:3]), 'mpy': getattr(sys.implementation, '_mpy', 0),
            'platform': sys.platform, 'free': _free}))
"""

HASHES = """
import hashlib, binascii
def _h(p):
    try:
        h = hashlib.sha256()
        with open(p, 'rb') as f:
            while True:
                b = f.read(512)
                if not b:
                    break
                h.update(b)
        return binascii.hexlify(h.digest()).decode()
    except OSError:
        return None
print(repr({p: _h(p) for p in %r}))
"""

READ_TEXT = """
try:
    with open(%r) as f:
        print(repr(f.read()))
except OSError:
    print('None')
"""

MAKEDIRS = """
import os
for d in %r:
    try:
        os.mkdir(d)
    except OSError as e:
        if e.errno != 17:
            raise
"""

# One device-side step: back up what is replaced, move staged files in, drop the stage.
SWAP = """
import os
def _mk(d):
    try:
        os.mkdir(d)
    except OSError:
        pass
_mk(%(prev)r)
for p in %(files)r:
    parts = p.split('/')
    for i in range(1, len(parts)):
        _mk(%(prev)r + '/' + '/'.join(parts[:i]))
        _mk('/' + '/'.join(parts[:i]))
    try:
        os.rename('/' + p, %(prev)r + '/' + p)
    except OSError:
        pass
    os.rename(%(stage)r + '/' + p, '/' + p)
for p in %(remove)r:
    try:
        os.rename('/' + p, %(prev)r + '/' + p)
    except OSError:
        pass
print('SWAPPED')
"""

RMTREE = """
import os
def _rm(d):
    try:
        entries = list(os.ilistdir(d))
    except OSError:
        return
    for e in entries:
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            _rm(p)
        else:
            os.remove(p)
    os.rmdir(d)
_rm(%r)
"""

RESTORE = """
import os
def _walk(d, rel):
    for e in os.ilistdir(d):
        p = rel + '/' + e[0] if rel else e[0]
        if e[1] == 0x4000:
            _walk(d + '/' + e[0], p)
        else:
            try:
                os.remove('/' + p)
            except OSError:
                pass
            os.rename(d + '/' + e[0], '/' + p)
for p in %(new)r:
    try:
        os.remove('/' + p)
    except OSError:
        pass
try:
    _walk(%(prev)r, '')
except OSError:
    pass
print('RESTORED')
"""


@dataclass
class FlashResult:
    copied: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    config_changed: bool = False
    key_action: str = "unchanged"
    record_path: Path | None = None
    selftest: list[str] = field(default_factory=list)
    selftest_ok: bool = False
    boot_log: str = ""
    device: dict = field(default_factory=dict)
    key_hex: str = ""
    channels: list | str | None = None  # the node's channel plan as written to node.json

    @property
    def changed(self) -> bool:
        return bool(self.copied or self.removed or self.config_changed or self.key_action not in ("unchanged",))


def _check_compatible(bundle: Bundle, device: dict, port: str):
    mpy = device.get("mpy", 0)
    dev_major = mpy & 0xFF
    bundle_major = {bundle.root.joinpath(p).read_bytes()[1] for p in bundle.files if p.endswith(".mpy")}
    if bundle_major != {MPY_MAJOR}:
        found = ", ".join(f"v{v}" for v in sorted(bundle_major))
        raise SenError(f"bundle holds .mpy {found} files but this tool targets MicroPython 1.27 (.mpy v{MPY_MAJOR})",
                       "rebuild the bundle with `sen node build` (mpy-cross 1.27)")
    if dev_major != MPY_MAJOR:
        version = ".".join(map(str, device.get("version", ())))
        raise SenError(f"board on {port} runs MicroPython {version} (.mpy v{dev_major}); the bundle needs .mpy v{MPY_MAJOR}",
                       "flash MicroPython 1.27 for ESP32 on the board, or build with a matching mpy-cross")


def check_overrides(kind: str, overrides: dict, base: dict | None = None) -> dict:
    """The node config `overrides` give on top of `base`, judged by the firmware's own loader
    (firmware/config.py check_node) on the host, before any board is touched."""
    from sen.firmware_modules import load  # lazy: CLI start-up
    fw = load("config")
    cfg = {k: v for k, v in (base or {}).items() if k not in ("node_id", "kind", "key", "key_bytes")}
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    probe = json.loads(json.dumps({"node_id": 1, "kind": kind, "key": "00" * 16, **cfg}))
    node_config.check_node(probe)  # the key path and the fix; the firmware's loader below has the last word
    try:
        fw.check_node(probe)
    except fw.ConfigError as exc:
        raise SenError(f"node config: {exc}", "fix the --set key or value (docs/node-config.md lists every key)") from None
    return cfg


def _node_config(node_id: int, kind: str, key: bytes, overrides: dict, base: dict | None = None) -> dict:
    cfg = {"node_id": node_id, "kind": kind}
    if kind != "receiver":
        cfg["key"] = key.hex()
    cfg.update(check_overrides(kind, overrides, base))
    return cfg


def flash(port: str, bundle: Bundle, node_id: int, *, gateway_config: Path | None = None,
          records_dir: Path = Path("provisioning"), new_key: bool = False, config_overrides: dict | None = None,
          boot_log_s: float = 8.0, keep_on_selftest_failure: bool = False, console: Console | None = None,
          enter_wait_s: float = 60.0, reset_config: bool = False) -> FlashResult:
    config_overrides = node_config.with_gateway_plan(config_overrides or {}, gateway_config)
    check_overrides(bundle.kind, config_overrides)  # a typo is refused before the board is touched
    console = console or Console(stderr=True)
    result = FlashResult()
    with DeviceLink(port) as dev:
        console.print(f"[dim]connecting to {port}: interrupting the node's cycle (maintenance escape)…[/dim]")
        dev.enter(enter_wait_s)
        try:
            _flash_entered(dev, port, bundle, node_id, result, gateway_config, records_dir, new_key,
                           config_overrides, keep_on_selftest_failure, console, reset_config)
        except SenError:
            # Whatever failed, the node goes back to its cycle on the firmware it now holds.
            try:
                dev.soft_reset_and_capture(0.3)
            except Exception:
                pass
            raise
        result.boot_log = dev.soft_reset_and_capture(boot_log_s)
    return result


def _flash_entered(dev, port, bundle, node_id, result, gateway_config, records_dir, new_key, config_overrides,
                   keep_on_selftest_failure, console, reset_config=False):
    """The flash steps, once the board is in its maintenance REPL."""
    result.device = device = _eval_block(dev, PROBE)
    _check_compatible(bundle, device, port)

    # Keep the board's key when it is already this node: a re-flash must change nothing.
    old_text = _read_text(dev, "/" + NODE_FILE)
    old_cfg = None
    if old_text:
        try:
            old_cfg = json.loads(old_text)
        except ValueError:
            old_cfg = None
    key = None
    if old_cfg and not new_key and old_cfg.get("node_id") == node_id and old_cfg.get("key"):
        try:
            key = bytes.fromhex(old_cfg["key"])
        except ValueError:
            key = None
    if key is None or len(key) != 16:
        key = node_keys.new_key()
    result.key_hex = key.hex()
    # a re-flash of the same node keeps its config (interval, confirmed, radio…) unless asked not to
    keep = old_cfg if (old_cfg and not reset_config and old_cfg.get("node_id") == node_id
                       and old_cfg.get("kind") == bundle.kind) else None
    cfg = _node_config(node_id, bundle.kind, key, config_overrides or {}, keep)
    result.channels = cfg.get("radio", {}).get("channels")
    cfg_bytes = (json.dumps(cfg, sort_keys=True) + "\n").encode()

    wanted = {p: info["sha256"] for p, info in bundle.files.items()}
    wanted[NODE_FILE] = sha256(cfg_bytes)
    on_board = _hashes(dev, list(wanted) + [DEVICE_MANIFEST])
    old_manifest = _read_text(dev, "/" + DEVICE_MANIFEST)
    old_files = set(json.loads(old_manifest).get("files", [])) if old_manifest else set()
    changed = [p for p, h in wanted.items() if on_board.get(p) != h]
    removed = sorted(p for p in old_files - set(wanted) if p != DEVICE_MANIFEST)
    result.config_changed = NODE_FILE in changed
    manifest_bytes = (json.dumps({"files": sorted(wanted)}, sort_keys=True) + "\n").encode()
    if on_board.get(DEVICE_MANIFEST) != sha256(manifest_bytes):
        changed.append(DEVICE_MANIFEST)
    sources = {p: (bundle.root / p).read_bytes() for p in changed if p not in (NODE_FILE, DEVICE_MANIFEST)}
    if NODE_FILE in changed:
        sources[NODE_FILE] = cfg_bytes
    if DEVICE_MANIFEST in changed:
        sources[DEVICE_MANIFEST] = manifest_bytes

    if sources:
        need = sum(len(b) for b in sources.values()) + SPACE_MARGIN
        if 0 <= device["free"] < need:
            raise SenError(f"board is full: the update needs {need // 1024} KB, {device['free'] // 1024} KB are free",
                           "remove old files with `mpremote fs rm` (e.g. logs) or use a board with a larger app partition")
        _stage(dev, sources, console)
        staged = _hashes(dev, list(sources), root=STAGE)
        bad = [p for p in sources if staged.get(p) != sha256(sources[p])]
        if bad:
            dev.exec(RMTREE % STAGE)
            raise SenError(f"{len(bad)} file(s) differ after copying ({bad[0]} …)", "check the cable and flash again")
        dev.exec(RMTREE % PREV)
        out = dev.exec(SWAP % {"prev": PREV, "stage": STAGE, "files": sorted(sources), "remove": removed}, timeout=60)
        if "SWAPPED" not in out:
            raise SenError("the board did not confirm the file swap", "flash again; the previous files are in /.sen_prev")
        dev.exec(RMTREE % STAGE)
    result.copied = sorted(p for p in sources if p != DEVICE_MANIFEST)
    result.removed = removed

    final = _hashes(dev, list(wanted))
    wrong = [p for p, h in wanted.items() if final.get(p) != h]
    if wrong:
        _restore(dev, sources)
        raise SenError(f"{len(wrong)} file(s) on the board do not match the bundle ({wrong[0]} …); previous files restored",
                       "flash again")

    # Register the key once the board holds it, so the two never disagree, and before the
    # self-test's frame, so the gateway can verify that frame's MIC.
    if bundle.kind != "receiver":
        if gateway_config is not None:
            result.key_action = node_keys.register_with_gateway(gateway_config, node_id, key)
            if result.key_action != "unchanged":
                time.sleep(GATEWAY_KEY_RELOAD_S)
        elif result.config_changed or not (Path(records_dir) / f"node-{node_id}.json").exists():
            result.record_path = node_keys.write_record(records_dir, node_id, key, bundle.kind, bundle.board["id"])
            result.key_action = "recorded"

    # Self-test on the new code: a soft reset inside the raw REPL runs boot.py only.
    dev.t.enter_raw_repl(soft_reset=True)
    try:
        out = dev.exec("import selftest\nselftest.run()", timeout=120)
    except DeviceError as exc:
        out = f"[selftest] FAIL selftest: {exc}\n[selftest] RESULT FAIL 0/1"
    result.selftest = [ln.strip() for ln in out.splitlines() if ln.startswith("[selftest]")]
    result.selftest_ok = any(ln.startswith("[selftest] RESULT PASS") for ln in result.selftest)
    if not result.selftest_ok and not keep_on_selftest_failure:
        if sources:
            _restore(dev, sources)
        failed = next((ln for ln in result.selftest if " FAIL " in ln), "no result line")
        raise SenError(f"self-test failed ({failed.removeprefix('[selftest] ')})"
                       + ("; the previous firmware was restored" if sources else ""),
                       "fix what failed (wiring, sensor, antenna) and flash again, or pass --keep-on-selftest-failure")
    dev.exec(RMTREE % PREV)


def _eval_block(dev: DeviceLink, code: str, timeout: float = 120):
    """Run code whose last printed line is a Python literal; return that literal."""
    return ast.literal_eval(dev.exec(code, timeout=timeout).strip().splitlines()[-1])


def _hashes(dev: DeviceLink, paths: list[str], root: str = "") -> dict[str, str | None]:
    """SHA-256 (hex) of each file on the board, None where missing; keyed as given."""
    found = _eval_block(dev, HASHES % ([f"{root}/{p}" for p in paths],))
    return {p: found[f"{root}/{p}"] for p in paths}


def _read_text(dev: DeviceLink, path: str) -> str | None:
    return _eval_block(dev, READ_TEXT % path)


def _stage(dev: DeviceLink, sources: dict[str, bytes], console: Console):
    dev.exec(RMTREE % STAGE)
    dirs = [STAGE] + sorted({f"{STAGE}/" + "/".join(p.split("/")[:i]) for p in sources for i in range(1, p.count("/") + 1)})
    dev.exec(MAKEDIRS % dirs)
    total = sum(len(b) for b in sources.values())
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=console, transient=True) as progress:
        task = progress.add_task("copying", total=total)
        for path, data in sorted(sources.items()):
            progress.update(task, description=f"copying {path}")
            try:
                dev.t.fs_writefile(f"{STAGE}/{path}", data, chunk_size=256)
            except Exception as exc:
                dev.exec(RMTREE % STAGE)
                if "28" in str(exc) or "ENOSPC" in str(exc):
                    raise SenError("board ran out of space while copying; nothing was changed",
                                   "remove old files with `mpremote fs rm` or use a board with a larger app partition") from None
                raise SenError(f"copying {path} failed ({exc}); nothing was changed", "check the cable and flash again") from None
            progress.advance(task, len(data))


def _restore(dev: DeviceLink, sources: dict[str, bytes]):
    dev.exec(RESTORE % {"new": sorted(sources), "prev": PREV}, timeout=60)
    dev.exec(RMTREE % PREV)
