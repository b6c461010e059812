"""Pruning one chunk: group key, draws, decisions, cluster pruning, compaction (NumPy reference)."""

from gpuprune.engine.core import (  # noqa: F401
    CLUSTER_BATCH_ENTRIES,
    CLUSTER_DISTANCE,
    DRAW_ALL_FRACTION,
    MODES,
    PHILOX,
    SNUDDA,
    ChunkResult,
    PruneContext,
    _bits,
    _check_relative_distance,
    _group_key,
    _pathway_code,
    _unpack_key,
    merge_order,
    pathway_code_size,
    prune_chunk,
)
