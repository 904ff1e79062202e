"""`sen cal …` commands."""
import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cal():
    """Field crews: fit, judge and approve calibration curves."""
