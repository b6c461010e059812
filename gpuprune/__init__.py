"""gpuprune: prune the putative synapses of a Snudda network, fast.

The main entry point is :func:`prune`; :class:`SnuddaPrune` is a drop-in
replacement for ``snudda.detect.prune.SnuddaPrune``.
"""

from .api import PathwayStats, Pruner, PruneResult, prune
from .errors import ConfigError, DeviceError, ExpressionError, GpuPruneError, InputError, WorkerError
from .snudda_compat import SnuddaPrune

__version__ = "0.1.0"

__all__ = [
    "PathwayStats",
    "PruneResult",
    "Pruner",
    "SnuddaPrune",
    "prune",
    "ConfigError",
    "DeviceError",
    "ExpressionError",
    "GpuPruneError",
    "InputError",
    "WorkerError",
    "__version__",
]
