"""Snudda's log file and ``verbose`` rule, through the :mod:`logging` module.

Messages of :class:`gpuprune.snudda_compat.SnuddaPrune` go to the logger
``gpuprune.snudda``, which does not propagate (Snudda prints nothing unless
asked; add a handler to that logger to receive the messages elsewhere).  Each
instance attaches a :class:`LogSink`: its log file (Snudda's
``log/synapse-pruning.txt`` by default, truncated) gets every message of the
instance and the warnings of the core modules (logger ``gpuprune``);
standard output gets a message only when the instance is verbose, the
message is an error, or printing is forced, as Snudda's ``write_log`` does.
"""

import itertools
import logging
import os
import sys
import weakref
from contextlib import contextmanager

from gpuprune.format import PRUNE_LOG

LOG = logging.getLogger("gpuprune.snudda")
LOG.setLevel(logging.DEBUG)
LOG.propagate = False
CORE_LOG = logging.getLogger("gpuprune")
_tags = itertools.count(1)


class _Following(logging.StreamHandler):
    """A handler writing to whatever ``sys.<name>`` is when it emits, as ``print`` does."""

    name_in_sys = "stdout"

    def __init__(self):
        super().__init__(self.stream)

    @property
    def stream(self):
        return getattr(sys, self.name_in_sys)

    @stream.setter
    def stream(self, value):
        pass


class _Stdout(_Following):
    name_in_sys = "stdout"


class _Stderr(_Following):
    """Core warnings on ``sys.stderr`` while a sink hides them from Python's last-resort handler."""

    name_in_sys = "stderr"

    def __init__(self):
        super().__init__()
        self.setLevel(logging.WARNING)
        self.addFilter(lambda record: getattr(record, "snudda_prune", None) is None)


#: shared by all sinks; attached while any sink is open and the root logger has no handler
_CORE_WARNINGS = _Stderr()
_open_sinks = [0]


class _OwnRecords(logging.Filter):
    """Pass the records of one sink (and untagged core records); with ``owner``, Snudda's console rule."""

    def __init__(self, tag, owner=None):
        super().__init__()
        self.tag, self.owner = tag, owner  # owner: weakref to the object whose ``verbose`` decides

    def filter(self, record):
        tag = getattr(record, "snudda_prune", None)
        if tag is not None and tag != self.tag:
            return False
        if self.owner is None:
            return True
        inst = self.owner()
        verbose = bool(inst is not None and getattr(inst, "verbose", False))
        return tag is not None and (verbose or record.levelno >= logging.ERROR
                                    or getattr(record, "force_print", False))


class LogSink:
    """One instance's log file and console output.

    Parameters
    ----------
    owner : object
        Its ``verbose`` attribute is read at each message.
    logfile : file, optional
        Open file to write to (not closed by :meth:`close`).
    logfile_name : str, optional
        File to write to, truncated; used when ``logfile`` is None.
    """

    def __init__(self, owner, logfile=None, logfile_name=None):
        self.tag = next(_tags)
        if logfile is not None:
            to_file = logging.StreamHandler(logfile)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(logfile_name)), exist_ok=True)
            to_file = logging.FileHandler(logfile_name, mode="w", encoding="utf-8")
        console = _Stdout()
        to_file.addFilter(_OwnRecords(self.tag))
        console.addFilter(_OwnRecords(self.tag, weakref.ref(owner)))
        fmt = logging.Formatter("%(message)s")
        for handler in (to_file, console):
            handler.setFormatter(fmt)
            LOG.addHandler(handler)
        # Core warnings (unknown config keys, skipped pathways) go to the log file too.  A handler on
        # "gpuprune" stops Python's last-resort output of them, so show them on stderr ourselves.
        CORE_LOG.addHandler(to_file)
        if _open_sinks[0] == 0 and not logging.getLogger().handlers:
            CORE_LOG.addHandler(_CORE_WARNINGS)
        _open_sinks[0] += 1
        self.handlers = [to_file, console]

    def write(self, text, flush=True, is_error=False, force_print=False):
        """Log ``text`` at INFO (ERROR if ``is_error``)."""
        LOG.log(logging.ERROR if is_error else logging.INFO, "%s", text,
                extra={"snudda_prune": self.tag, "force_print": bool(force_print)})
        if flush:
            for handler in self.handlers:
                handler.flush()

    def close(self):
        """Detach and close the handlers."""
        if not self.handlers:
            return
        for handler in self.handlers:
            LOG.removeHandler(handler)
            CORE_LOG.removeHandler(handler)
            handler.close()
        self.handlers = []
        _open_sinks[0] -= 1
        if _open_sinks[0] == 0:
            CORE_LOG.removeHandler(_CORE_WARNINGS)


class _Once(logging.Filter):
    """Drop records whose text was already seen."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def filter(self, record):
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


@contextmanager
def once(seen):
    """Within the block, a core log message whose text is in ``seen`` is dropped; new texts are added.

    Reading the same config again (for the network index, or the native
    pipeline) repeats its warnings; this keeps one of each.
    """
    flt = _Once(seen)
    CORE_LOG.addFilter(flt)
    try:
        yield
    finally:
        CORE_LOG.removeFilter(flt)


class Logging:
    """SnuddaPrune's log methods (a mixin: ``write_log`` and its log file)."""

    def _setup_log(self, logfile, logfile_name):
        self.logfile = logfile
        if logfile_name:
            self.logfile_name = os.fspath(logfile_name)
        elif logfile is not None:
            self.logfile_name = getattr(logfile, "name", None)
        else:
            self.logfile_name = os.path.join(self.network_path, PRUNE_LOG)
        self._log = LogSink(self, logfile, self.logfile_name)
        self.write_log(f"Log file {self.logfile_name} created.")

    def write_log(self, text, flush=True, is_error=False, force_print=False):
        """Write to the log file; also print if ``verbose``, ``is_error`` or ``force_print``.

        Parameters
        ----------
        text : str
            Text to write.
        flush : bool
            Flush the log handlers after writing.
        is_error : bool
            Log at ERROR level; always printed.
        force_print : bool
            Print even if not verbose.

        Notes
        -----
        Goes through the ``gpuprune.snudda`` logger (INFO, or ERROR for errors).
        """
        if self._log is not None:
            self._log.write(text, flush=flush, is_error=is_error, force_print=force_print)

    def close_log_file(self):
        """Detach and close this instance's log handlers (a file object given by the caller stays open)."""
        if self._log is not None:
            self._log.close()
        self._log = None
        self.logfile = None
