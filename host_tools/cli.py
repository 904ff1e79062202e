"""The `sen` command: one sub-command group per user role.

Groups are imported lazily so that `sen --help` stays fast and a broken optional
dependency in one role does not take down the others.
"""
import importlib
import sys

import click

from sen import __version__
from sen.errors import SenError

# name -> (module, attribute, one-line help)
ROLE_GROUPS = {
    "node": ("sen.host_tools.node_cli", "node", "Technicians: build, flash and provision nodes."),
    "cal": ("sen.calibration.cli", "cal", "Field crews: fit, judge and approve calibration curves."),
    "gateway": ("sen.gateway.cli", "gateway", "Gateway operators: run, inspect and replay the gateway."),
    "ingest": ("sen.ingest.cli", "ingest", "City operators: central ingest workers behind the MQTT broker."),
    "emulate": ("sen.host_tools.emulate_cli", "emulate", "CI and newcomers: run emulated boards on a pty."),
    "bench": ("sen.bench.cli", "bench", "Benchmarks that print their figures (last line JSON)."),
    "demo": ("sen.host_tools.demo", "demo", "Run the end-to-end demo on embedded defaults."),
}


class LazyRoles(click.Group):
    def list_commands(self, ctx):
        return list(ROLE_GROUPS)

    def get_command(self, ctx, name):
        if name not in ROLE_GROUPS:
            return None
        module, attr, _ = ROLE_GROUPS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        # Short help comes from the table, so listing roles imports nothing heavy.
        rows = [(name, help_) for name, (_, _, help_) in ROLE_GROUPS.items()]
        with formatter.section("Roles"):
            formatter.write_dl(rows)


@click.group(cls=LazyRoles, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sen")
def cli():
    """Sen: city sensor nodes and the gateway behind them.

    Every command takes --help.
    """
    from sen.logs import setup  # lazy: CLI start-up
    setup("WARNING")  # long-running roles (gateway run, ingest run, emulate) set their own level


def main(argv=None):
    try:
        return cli.main(args=argv, prog_name="sen", standalone_mode=True)
    except SenError as exc:
        click.echo(f"sen: error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        # a store found damaged mid-command (quick_check runs only where a store is opened
        # for writing): one line with the fix, not a traceback
        import sqlite3
        if not isinstance(exc, sqlite3.DatabaseError) or not any(
                w in str(exc) for w in ("malformed", "not a database", "corrupt")):
            raise
        click.echo(f"sen: error: a gateway store is damaged ({exc}) — move gateway.db aside and run "
                   "`sen gateway rebuild -c gateway.toml`, which rebuilds it from the raw log", err=True)
        sys.exit(2)
