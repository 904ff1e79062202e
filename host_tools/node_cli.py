"""`sen node …` commands."""
import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def node():
    """Technicians: build, flash and provision nodes."""
