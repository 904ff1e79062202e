"""Sen: city sensor nodes and the gateway behind them."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("sen")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
