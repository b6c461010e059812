"""Config -> pruning parameter sets and probability tables; the distance-expression compiler."""

from gpuprune.rules.params import (  # noqa: F401
    GAP_JUNCTION_CHANNEL,
    PRUNING_KEYS,
    ParameterSet,
    PruningRules,
    config_seed,
    load_config,
    p_keep_table,
    p_mu_table,
)
