"""Signals as clusters send them: SIGTERM (Slurm's stop), SIGHUP (a closed terminal), SIGINT (Ctrl-C).

While a run is on, each raises in the main thread (:class:`gpuprune.errors.Interrupted`, a
``KeyboardInterrupt``), so the run's ``finally`` blocks stop the workers and remove its temporaries;
the cleanup itself runs with the signals held back.  Worker processes ignore SIGINT and die with the
parent (:mod:`gpuprune.execution.tasks`).
"""

import contextlib
import signal
import threading

from gpuprune.errors import Interrupted

#: signals that stop a run cleanly
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals():
    """While a run is on: SIGTERM and SIGHUP raise :class:`Interrupted` (as SIGINT raises KeyboardInterrupt),
    so the run's ``finally`` blocks stop the workers and remove the temporaries.  Only in the main
    thread, and only where the signal has its default action (a handler the user set is kept)."""
    installed = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            if sig != signal.SIGINT and signal.getsignal(sig) is signal.SIG_DFL:
                installed[sig] = signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, previous in installed.items():
            signal.signal(sig, previous)


@contextlib.contextmanager
def signals_deferred():
    """Hold the stop signals back while cleaning up, so a second one cannot leave a temporary behind;
    one that came meanwhile is acted on (raised) on leaving.

    The handlers are swapped, not the signal mask: a mask set here would hold only for this thread,
    and the kernel may deliver a process's signal to any thread (a pool's manager thread) instead.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            handler = previous[pending[0]]
            if callable(handler):
                handler(pending[0], None)  # raises: Interrupted, or KeyboardInterrupt for SIGINT
            elif handler == signal.SIG_DFL:
                signal.raise_signal(pending[0])
