"""Pruning one chunk (NumPy reference): order, segment, draws, decide (the rules), cluster, compact.

Modules, in pipeline order: ``context`` (PruneContext, ChunkResult, modes), ``pathway``
(PathwayCodes), ``groups`` (steps 1-2: order and segment), ``draws`` (the draw providers),
``decide`` (step 3: one function per rule, and their thresholds), ``cluster``, ``core``
(``prune_chunk``: the steps in sequence, and step 4: compact).
"""

from gpuprune.engine.cluster import CLUSTER_BATCH_ENTRIES, CLUSTER_DISTANCE, cluster_select  # noqa: F401
from gpuprune.engine.context import (  # noqa: F401
    MODES,
    PHILOX,
    SNUDDA,
    ChunkResult,
    PruneContext,
    check_mode,
    pathway_code_size,
)
from gpuprune.engine.core import compact, grouping_columns, pathway_stats, prune_chunk  # noqa: F401
from gpuprune.engine.decide import (  # noqa: F401
    DRAW_ALL_FRACTION,
    RULES,
    Decision,
    a3_drops,
    check_relative_distance,
    decide,
    distance_passes,
    distance_probability,
    f1_passes,
    mu2_drops,
    parameter_index,
    soft_max_passes,
)
from gpuprune.engine.draws import PhiloxDraws, SnuddaDraws, draws_for  # noqa: F401
from gpuprune.engine.groups import (  # noqa: F401
    TYPE_BITS,
    Groups,
    bits,
    group_key,
    merge_order,
    order_rows,
    segment,
    unpack_key,
)
from gpuprune.engine.pathway import PathwayCodes  # noqa: F401

