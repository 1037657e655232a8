"""registry: system of record for a regional equity market (区域性股权市场)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("registry")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
