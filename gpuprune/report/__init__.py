"""Connectivity report of a pruned network: funnel, statistics against measured data, figures, HTML, JSON.

``gpuprune.report(network, ...)`` (this module is callable) is :func:`gpuprune.report.api.report`.
"""

import sys
import types

from gpuprune.report.api import Report, report


class _CallableModule(types.ModuleType):
    """Lets ``gpuprune.report(...)`` call :func:`report` while ``gpuprune.report`` stays the subpackage."""

    def __call__(self, *args, **kwargs):
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["Report", "report"]
