"""Bundled data files (measured striatal connectivity, see gpuprune.stats.targets)."""
