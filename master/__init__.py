"""mlbench master: the FastAPI service that starts runs and stores their metrics and results."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlbench")
except PackageNotFoundError:  # running from a source checkout that was never installed
    __version__ = "0+unknown"
