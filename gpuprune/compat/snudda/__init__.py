"""A drop-in ``snudda.detect.prune.SnuddaPrune`` on gpuprune's engine."""

from gpuprune.compat.snudda.prune import SnuddaPrune  # noqa: F401
