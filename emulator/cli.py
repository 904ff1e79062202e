"""`sen emulate …`: emulated boards on a pty."""
import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--board", help="Board id from boards/, e.g. ttgo-lora32-v21.")
@click.option("--list", "list_boards", is_flag=True, help="List the boards and exit.")
def emulate(board, list_boards):
    """Run emulated boards; prints `PORT /dev/pts/N` per board, then serves."""
    raise click.UsageError("the emulator is not built yet (issue 3)")
