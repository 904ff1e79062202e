import pytest

from .emu import Emulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    """One TTGO board with the real board host, flash in a fresh directory."""
    flash = tmp_path_factory.mktemp("flash")
    e = Emulator("--board", "ttgo-lora32-v21", "--flash", str(flash))
    e.flash = flash
    yield e
    e.stop()
