"""`sen ingest …`: central ingest workers."""
import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def ingest():
    """City operators: central ingest workers behind the MQTT broker cluster."""
