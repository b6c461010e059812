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


# -- shared messages (one place for each; callers add the file or context) --------------------------

def unknown_mode_message(mode, modes):
    """The message for a randomness mode that is not one of ``modes``."""
    return f"unknown randomness mode {mode!r}; choose one of {', '.join(modes)}"


def snudda_cpu_only_message(hint="use --device cpu, or --rng philox on the GPU"):
    """The message for snudda randomness asked of a GPU; ``hint`` says what to do instead."""
    return f"snudda randomness runs on the CPU only (it replays NumPy's PCG64 streams); {hint}"


def unknown_device_message(device, devices):
    """The message for a device that is not one of ``devices``."""
    return f"unknown device {device!r}; choose one of {', '.join(devices)}"
