"""`sen gateway …` commands."""
import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def gateway():
    """Gateway operators: run, inspect and replay the gateway."""
