"""Fitting pruning parameters to measured connectivity: an in-memory pathway model evaluated in batches."""

from gpuprune.tune.device import DeviceEvaluator  # noqa: F401
from gpuprune.tune.evaluate import DEFAULT_BOUNDS, FITTABLE, Evaluator, ParameterBatch  # noqa: F401
from gpuprune.tune.fit import FitResult, PathwayFit, fit, fitted_config  # noqa: F401
from gpuprune.tune.model import PathwayModel, build_model  # noqa: F401
from gpuprune.tune.pairstats import pair_statistics  # noqa: F401
from gpuprune.tune.tuner import Tuner  # noqa: F401
