"""Kept for existing imports: ``from gpuprune.snudda_compat import SnuddaPrune``."""

from gpuprune.compat.snudda import SnuddaPrune  # noqa: F401

__all__ = ["SnuddaPrune"]
