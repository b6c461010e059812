"""Exceptions raised by gpuprune.

Every error a user can cause (a missing or inconsistent file, a malformed
config, an unsafe expression, a seed out of range) is an :class:`InputError`
whose message names the file and the problem.  The command line prints it on
one line and exits with status 2; any other failure exits with status 1.
"""


class GpuPruneError(Exception):
    """Base class of all gpuprune errors."""


class InputError(GpuPruneError, ValueError):
    """Bad input: a network directory, config file or argument is unusable.

    Parameters
    ----------
    message : str
        What is wrong, in words a user can act on.
    path : str, optional
        The file or directory the problem is in; it is prefixed to the
        message so that the error always names it.
    """

    def __init__(self, message, path=None):
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(message if path is None else f"{path}: {message}")


class ConfigError(InputError):
    """The pruning configuration is malformed or inconsistent with the network."""


class ExpressionError(ConfigError):
    """A distance-pruning expression is malformed or uses something not allowed."""


class DeviceError(GpuPruneError):
    """The requested compute device is not available."""


class WorkerError(GpuPruneError):
    """A worker process ended abruptly (killed, e.g. by the out-of-memory killer); nothing was written."""


def missing_extra(feature, extra):
    """The message for an optional feature whose extra is not installed (``pip install "gpuprune[extra]"``)."""
    return f'{feature} needs the optional "{extra}" dependencies: pip install "gpuprune[{extra}]"'
