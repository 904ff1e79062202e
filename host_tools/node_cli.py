"""`sen node …`: technicians build, flash and look after nodes, through mpremote."""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from sen.errors import SenError
from sen.host_tools.bundle import KINDS, Bundle, build, size_table

CTX = {"help_option_names": ["-h", "--help"]}
PORT = click.option("--port", "-p", required=True, help="Serial port: /dev/ttyUSB0, /dev/pts/N (sen emulate), socket://host:port.")


@click.group(context_settings=CTX)
def node():
    """Technicians: build, flash and provision nodes."""


@node.command("build", context_settings=CTX)
@click.option("--board", required=True, help="Board id from boards/, e.g. ttgo-lora32-v21.")
@click.option("--kind", required=True, type=click.Choice(KINDS), help="Node kind.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Bundle folder.")
@click.option("--firmware", "firmware_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Firmware source folder (default: this checkout's firmware/).")
def build_cmd(board, kind, out_dir, firmware_dir):
    """Compile firmware/ with mpy-cross for BOARD and assemble the bundle."""
    from sen.paths import FIRMWARE  # lazy: CLI start-up

    bundle = build(board, kind, out_dir, firmware=firmware_dir or FIRMWARE)
    Console().print(size_table(bundle))


def _bundle_for(board, kind, bundle_dir) -> Bundle:
    if bundle_dir is not None:
        bundle = Bundle.load(Path(bundle_dir))
        if bundle.board["id"] != board or bundle.kind != kind:
            raise SenError(f"bundle {bundle_dir} is for {bundle.board['id']}/{bundle.kind}, not {board}/{kind}",
                           "rebuild it with `sen node build` for this board and kind")
        return bundle
    return build(board, kind, Path(tempfile.mkdtemp(prefix="sen-bundle-")))


def _parse_sets(pairs) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SenError(f"--set {pair!r} is not key=value", "write e.g. --set interval_s=600")
        k, v = pair.split("=", 1)
        try:
            value = json.loads(v)
        except ValueError:
            value = v
        cur = out
        parts = k.strip().split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
        cur[parts[-1]] = value
    return out


@node.command("flash", context_settings=CTX)
@PORT
@click.option("--node-id", required=True, type=click.IntRange(1, 65535), help="Node id, 1..65535.")
@click.option("--board", required=True, help="Board id from boards/.")
@click.option("--kind", required=True, type=click.Choice(KINDS), help="Node kind.")
@click.option("--gateway", "gateway_config", type=click.Path(dir_okay=False, path_type=Path),
              help="The gateway's gateway.toml: register the key in its key store directly.")
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path), help="A prebuilt bundle (default: build now).")
@click.option("--records", "records_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("provisioning"),
              show_default=True, help="Where provisioning records go when no --gateway is given (mode 0600).")
@click.option("--set", "sets", multiple=True, help="Node config override, key=value (e.g. interval_s=600, radio.sf=10).")
@click.option("--new-key", is_flag=True, help="Give the node a fresh key even if it has one.")
@click.option("--reset-config", is_flag=True, help="Start the node config from defaults (a re-flash keeps it otherwise).")
@click.option("--show-key", is_flag=True, help="Print the node key (it is never printed otherwise).")
@click.option("--keep-on-selftest-failure", is_flag=True, help="Keep the new firmware even if the self-test fails.")
@click.option("--boot-log", "boot_log_s", type=float, default=8.0, show_default=True, help="Seconds of boot log to capture.")
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True,
              help="How long to keep trying the maintenance escape on a running node, seconds.")
def flash_cmd(port, node_id, board, kind, gateway_config, bundle_dir, records_dir, sets, new_key, reset_config,
              show_key, keep_on_selftest_failure, boot_log_s, wait_s):
    """Flash, configure, key, self-test and register a node, copying only what changed."""
    from sen.host_tools.provision import check_overrides, flash  # lazy: CLI start-up

    check_overrides(kind, _parse_sets(sets))  # before building or touching the board
    console = Console()
    bundle = _bundle_for(board, kind, bundle_dir)
    res = flash(port, bundle, node_id, gateway_config=gateway_config, records_dir=records_dir, new_key=new_key,
                config_overrides=_parse_sets(sets), boot_log_s=boot_log_s, reset_config=reset_config,
                keep_on_selftest_failure=keep_on_selftest_failure, console=console, enter_wait_s=wait_s)
    dev = res.device
    table = Table.grid(padding=(0, 2))
    table.add_row("board", f"{port}: MicroPython {'.'.join(map(str, dev.get('version', ())))}, "
                           f".mpy v{dev.get('mpy', 0) & 0xFF}, {dev.get('free', 0) // 1024} KB free before")
    table.add_row("node", f"{node_id} ({kind} on {board})")
    if res.channels is not None:
        plan = res.channels if isinstance(res.channels, str) else ", ".join(f"{f / 1e6:g}" for f in res.channels) + " MHz"
        table.add_row("channels", plan)
    if res.changed:
        table.add_row("files", f"{len(res.copied)} copied: {', '.join(res.copied) or '—'}"
                      + (f"; {len(res.removed)} removed: {', '.join(res.removed)}" if res.removed else ""))
    else:
        table.add_row("files", "nothing changed: the board already holds this firmware, config and key")
    key_text = {"added": "registered with the gateway", "rotated": "rotated in the gateway's key store",
                "unchanged": "unchanged", "recorded": f"written to {res.record_path} (mode 0600): "
                                                      f"import with `sen gateway keys import {res.record_path}`"}
    table.add_row("key", key_text.get(res.key_action, res.key_action))
    for line in res.selftest:
        table.add_row("self-test", line.removeprefix("[selftest] "))
    first = next((ln for ln in res.boot_log.splitlines() if "[sen]" in ln and "frame" in ln), None)
    table.add_row("first cycle", first.strip() if first else "no frame line in the boot log yet")
    if gateway_config is not None:
        table.add_row("gateway", _gateway_heard(gateway_config, node_id, _selftest_counter(res.selftest)))
    console.print(Panel(table, title="sen node flash", expand=False))
    if show_key:
        console.print(f"key: {res.key_hex}")


def _selftest_counter(lines) -> int:
    """The counter of the self-test's frame ("test frame: 15 B cnt=256 …"), 0 if absent."""
    for ln in lines:
        if "test frame" in ln and "cnt=" in ln:
            try:
                return int(ln.split("cnt=")[1].split()[0])
            except (IndexError, ValueError):
                return 0
    return 0


def _gateway_heard(gateway_config: Path, node_id: int, since_counter: int, wait_s: float = 20.0) -> str:
    """RSSI/SNR of the first frame since the self-test, as the gateway stored it (MIC verified)."""
    import sqlite3

    from sen.gateway.config import load  # lazy: CLI start-up

    try:
        db = load(gateway_config).store_path
    except SenError as exc:
        return f"cannot read the gateway store ({exc.problem})"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if Path(db).exists():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                row = con.execute("SELECT counter, rssi, snr, gateway_id FROM frames WHERE node_id=? AND counter>=? "
                                  "ORDER BY counter LIMIT 1", (node_id, since_counter)).fetchone()
                con.close()
                if row:
                    return f"heard by {row[3]}: frame {row[0]}, RSSI {row[1]:.0f} dBm, SNR {row[2]:.1f} dB, MIC verified"
            except sqlite3.Error:
                pass
        time.sleep(0.5)
    return f"no frame from node {node_id} in the gateway store yet"


@node.command("logs", context_settings=CTX)
@PORT
@click.option("--seconds", type=float, default=0, help="Stop after this long (0 = until Ctrl-C).")
def logs_cmd(port, seconds):
    """Follow the node's cycle log on its serial console (read-only: the node keeps running)."""
    from sen.host_tools.device_link import DeviceLink  # lazy: CLI start-up

    with DeviceLink(port) as dev:
        end = time.monotonic() + seconds if seconds else None
        try:
            while end is None or time.monotonic() < end:
                n = dev.t.serial.in_waiting
                if n:
                    sys.stdout.write(dev.t.serial.read(n).decode(errors="replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.05)
        except KeyboardInterrupt:
            pass


@node.command("selftest", context_settings=CTX)
@PORT
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True, help="Maintenance escape time-out, seconds.")
def selftest_cmd(port, wait_s):
    """Run the on-device self-test, then let the node resume its cycle."""
    from sen.host_tools.device_link import DeviceError, DeviceLink  # lazy: CLI start-up

    with DeviceLink(port) as dev:
        dev.enter(wait_s)
        try:
            out = dev.exec("import selftest\nselftest.run()", timeout=120)
        except DeviceError as exc:
            raise SenError(f"self-test could not run ({exc})", "flash the node with `sen node flash` first") from None
        lines = [ln for ln in out.splitlines() if ln.startswith("[selftest]")]
        for ln in lines:
            click.echo(ln)
        dev.soft_reset_and_capture(0.5)
    if not any(ln.startswith("[selftest] RESULT PASS") for ln in lines):
        raise SenError("self-test failed", "see the FAIL lines above")


@node.command("config", context_settings=CTX)
@PORT
@click.option("--set", "sets", multiple=True, help="key=value to change (e.g. interval_s=600).")
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True, help="Maintenance escape time-out, seconds.")
def config_cmd(port, sets, wait_s):
    """Show the node config (key hidden) or change it with --set; the node then resumes."""
    from sen.host_tools.device_link import DeviceLink  # lazy: CLI start-up
    from sen.host_tools.provision import NODE_FILE, _read_text  # lazy: CLI start-up

    with DeviceLink(port) as dev:
        dev.enter(wait_s)
        text = _read_text(dev, "/" + NODE_FILE)
        if text is None:
            raise SenError("the board has no node.json", "provision it with `sen node flash`")
        cfg = json.loads(text)
        if sets:
            from sen.host_tools.provision import check_overrides  # lazy: CLI start-up
            changes = _parse_sets(sets)
            if "node_id" in changes or "key" in changes:
                raise SenError("node_id and key are set by `sen node flash`", "re-flash with --node-id or --new-key")
            check_overrides(cfg.get("kind", "air"), changes, cfg)
            for k, v in changes.items():
                if isinstance(v, dict):
                    cfg.setdefault(k, {}).update(v)
                else:
                    cfg[k] = v
            data = (json.dumps(cfg, sort_keys=True) + "\n").encode()
            dev.t.fs_writefile("/node.json.tmp", data)
            dev.exec("import os\nos.rename('/node.json.tmp', '/node.json')")
            # Let the firmware's own validation judge the new config before the node runs it.
            out = dev.exec("import config\ntry:\n    config.load()\n    print('CONFIG OK')\nexcept config.ConfigError as e:\n"
                           "    print('CONFIG BAD', e)")
            if "CONFIG OK" not in out:
                dev.t.fs_writefile("/node.json", (json.dumps(json.loads(text), sort_keys=True) + "\n").encode())
                raise SenError(f"the node refused the change: {out.strip().removeprefix('CONFIG BAD ')}", "fix the value and retry")
        shown = dict(cfg, key="(hidden)") if "key" in cfg else cfg
        click.echo(json.dumps(shown, indent=1, sort_keys=True))
        dev.soft_reset_and_capture(0.5)


@node.command("shell", context_settings=CTX)
@PORT
def shell_cmd(port):
    """Stop a running cycle (as `sen node flash` does) and hand over to mpremote's REPL on
    the board (Ctrl-] to leave)."""
    from sen.host_tools.device_link import DeviceLink  # lazy: CLI start-up

    if not os.path.exists(port) and "://" not in port:
        raise SenError(f"no serial port {port}", "check the cable, or use the PORT line `sen emulate` printed")
    with DeviceLink(port) as dev:
        dev.enter()            # Ctrl-C at the cycle's next sleep or I/O point, or in its boot window
        dev.t.exit_raw_repl()  # back to the friendly REPL, the cycle stopped
    mpremote = str(Path(sys.executable).with_name("mpremote"))
    # resume: no soft reset, which would run main.py and start the cycle again
    raise SystemExit(subprocess.call([mpremote, "connect", port, "resume", "repl"]))
