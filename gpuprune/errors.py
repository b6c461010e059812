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


class OutputError(InputError):
    """The output cannot be written where asked (a directory, a folder that is not writable, a full disk)."""


def output_write_error(path, exc):
    """An :class:`OutputError` naming ``path`` for the ``OSError`` ``exc`` raised while writing it (one line:
    HDF5's messages run over several)."""
    import errno
    import os

    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc):
        return OutputError("cannot write the output: no space left on the device; nothing was written", path)
    reason = os.strerror(exc.errno) if getattr(exc, "errno", None) else (str(exc).strip().splitlines() or ["?"])[0]
    return OutputError(f"cannot write the output: {reason}; nothing was written", path)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGINT, SIGTERM, SIGHUP): whether its new output was complete first.

    Attributes
    ----------
    signum : int
    output_file : str or None
    written : bool
        True when the new output had been moved into place before the signal (it is complete);
        False when the previous output, if any, is untouched.
    """

    def __init__(self, signum, output_file=None, written=False):
        self.signum, self.output_file, self.written = int(signum), output_file, bool(written)
        super().__init__(self.message())

    @property
    def exit_status(self):
        """The shell's status for a process ended by the signal: 128 + its number (130, 143, 129)."""
        return 128 + self.signum

    def message(self):
        import signal

        try:
            name = signal.Signals(self.signum).name
        except ValueError:
            name = f"signal {self.signum}"
        if self.written:
            return f"interrupted ({name}) after the new output was complete: {self.output_file} is written"
        return f"interrupted ({name}); no output was written (any previous output is untouched)"


def unknown_device_message(device, devices):
    """The message for a device that is not one of ``devices``."""
    return f"unknown device {device!r}; choose one of {', '.join(devices)}"


def missing_extra(feature, extra):
    """The message for an optional feature whose extra is not installed (``pip install "gpuprune[extra]"``)."""
    return f'{feature} needs the optional "{extra}" dependencies: pip install "gpuprune[{extra}]"'
