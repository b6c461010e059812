"""Clean up after a process that is killed outright (``mpiexec`` SIGKILLs every rank when one dies).

No handler runs in a SIGKILLed process, so the output writer cannot remove its temporary file.
:class:`Watchdog` starts a small helper in its own session (out of reach of the launcher's
clean-up); if the watched process ends without saying goodbye, the helper prints one line and
removes the temporary output files (:data:`TEMP_PREFIX`) made in the output folder since the
watch began.
"""

import subprocess
import sys
import time

#: names of the output writer's temporary files (gpuprune.io.writer)
TEMP_PREFIX, TEMP_SUFFIX = ".network-synapses-", ".hdf5.part"

_HELPER = r"""
import os, sys
folder, since, prefix, suffix, message = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
said = sys.stdin.buffer.read()  # until the watched process closes the pipe, or dies
if not said.endswith(b"done"):
    try:
        print(message, file=sys.stderr, flush=True)  # first: the launcher may stop reading soon
    except OSError:
        pass
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        try:
            if name.startswith(prefix) and name.endswith(suffix) and os.stat(path).st_mtime >= since:
                os.remove(path)
        except OSError:
            pass
"""


class Watchdog:
    """Watch this process until :meth:`close`; if it dies first, print ``message`` and remove its temporary outputs
    in ``folder``."""

    def __init__(self, folder, message):
        since = time.time() - 1.0  # file times may be coarser than the clock
        self.proc = subprocess.Popen([sys.executable, "-c", _HELPER, folder, str(since), TEMP_PREFIX, TEMP_SUFFIX,
                                      message], stdin=subprocess.PIPE, start_new_session=True)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.write(b"done")
            self.proc.stdin.close()
            self.proc.wait()
            self.proc = None
