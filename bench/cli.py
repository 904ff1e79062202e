"""`sen bench …`: benchmarks. Each prints human-readable figures, then one JSON object as its last line."""
import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def bench():
    """Benchmarks that measure real work and print their figures (last line JSON)."""


@bench.command("frame")
def frame_cmd():
    """Bytes on air and time on air: Sen frames versus LoRaWAN + Cayenne LPP."""
    from sen.bench.frame_size import run

    run()
