"""Config -> pruning parameter sets and probability tables; the distance-expression compiler.

Modules: ``config`` (reading the file, its seed, connection keys), ``params`` (parameter sets,
the per-pathway lookup table, probability tables), ``expr`` (the bounded expression compiler).
"""

from gpuprune.rules.config import (  # noqa: F401
    MAX_CONFIG_DEPTH,
    check_depth,
    check_seed,
    config_seed,
    load_config,
    split_connection_key,
)
from gpuprune.rules.expr import DistanceExpression  # noqa: F401
from gpuprune.rules.params import (  # noqa: F401
    GAP_JUNCTION_CHANNEL,
    PRUNING_KEYS,
    ParameterSet,
    PruningRules,
    p_keep_table,
    p_keep_tables,
    p_mu_table,
    p_mu_tables,
)
