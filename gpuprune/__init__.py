"""gpuprune: prune the putative synapses of a Snudda network, fast.

The main entry point is :func:`prune`; :class:`SnuddaPrune` is a drop-in
replacement for ``snudda.detect.prune.SnuddaPrune``.
"""

from gpuprune.api import PathwayStats, Pruner, PruneResult, prune
from gpuprune.compat.snudda.prune import SnuddaPrune
from gpuprune.errors import ConfigError, DeviceError, ExpressionError, GpuPruneError, InputError, WorkerError

__version__ = "0.1.0"


def __getattr__(name):
    """``gpuprune.report(...)``: the report subpackage (callable) is imported on first use."""
    if name == "report":
        import importlib

        return importlib.import_module("gpuprune.report")
    raise AttributeError(f"module 'gpuprune' has no attribute {name!r}")

__all__ = [
    "PathwayStats",
    "PruneResult",
    "Pruner",
    "SnuddaPrune",
    "prune",
    "report",
    "ConfigError",
    "DeviceError",
    "ExpressionError",
    "GpuPruneError",
    "InputError",
    "WorkerError",
    "__version__",
]
