"""Clean up after a process that is killed outright (``mpiexec`` SIGKILLs every rank when one dies).

No handler runs in a SIGKILLed process, so the output writer cannot remove its temporary file.
:class:`Watchdog` starts a small helper in its own session (out of reach of the launcher's
clean-up); if the watched process ends without saying goodbye, the helper prints one line and
sweeps the output folder as the next run would (:func:`gpuprune.io.leftovers.sweep`, under the
folder's lock): the dead process's temporaries are no longer locked and go, while those of
another live run in the same folder are still locked and stay.
"""

import os
import subprocess
import sys

#: the folder holding this gpuprune package (the helper imports gpuprune.io.leftovers from it)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_HELPER = r"""
import os, sys
folder, root, message = sys.argv[1], sys.argv[2], sys.argv[3]
said = sys.stdin.buffer.read()  # until the watched process closes the pipe, or dies
if not said.endswith(b"done"):
    try:
        print(message, file=sys.stderr, flush=True)  # first: the launcher may stop reading soon
    except OSError:
        pass
    sys.path.insert(0, root)  # the gpuprune the watched process ran
    from gpuprune.io import leftovers
    try:
        with leftovers.folder_lock(folder):
            leftovers.sweep(folder)  # only what no live process holds
    except OSError:
        pass
"""


class Watchdog:
    """Watch this process until :meth:`close`; if it dies first, print ``message`` and remove the temporaries
    in ``folder`` that no live process holds (its own, since its locks died with it)."""

    def __init__(self, folder, message):
        self.proc = subprocess.Popen([sys.executable, "-c", _HELPER, os.fspath(folder), _ROOT, message],
                                     stdin=subprocess.PIPE, start_new_session=True)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.write(b"done")
            self.proc.stdin.close()
            self.proc.wait()
            self.proc = None
