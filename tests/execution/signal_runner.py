"""Run ``gpuprune prune`` as the command line does, pausing after the first chunk so a test can signal it.

    python signal_runner.py NETWORK MARKER cpu|emulated [after-output]

Once the first chunk is written (the workers run, the temporaries exist) it writes its pid to MARKER
and waits; the test then sends a signal.  ``after-output``: no pause; the process signals itself
(SIGTERM) while the pool shuts down, after the new output is in place.
"""

import os
import signal
import sys
import time

from gpuprune import api
from gpuprune.cli.main import main as cli_main


def main():
    network, marker, device = sys.argv[1:4]
    after_output = sys.argv[4:] == ["after-output"]
    real_prune = api.Pruner.prune

    def pause(done, total):
        if not os.path.exists(marker):
            with open(marker + ".tmp", "w") as fh:
                fh.write(str(os.getpid()))
            os.replace(marker + ".tmp", marker)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the signal ends this wait
                time.sleep(0.01)

    def prune(self, *args, **kwargs):
        if not after_output:
            kwargs["progress"] = pause
        return real_prune(self, *args, **kwargs)

    api.Pruner.prune = prune
    if after_output:
        from gpuprune.execution import pools

        real_shutdown = pools.LocalPool.shutdown

        def shutdown(self):
            os.kill(os.getpid(), signal.SIGTERM)  # held back until the cleanup is done
            real_shutdown(self)

        pools.LocalPool.shutdown = shutdown
    args = ["prune", network, "--quiet", "--workers", "2", "--row-budget", "3000"]
    if device == "emulated":
        from gpuprune.device import pool as cuda

        real_pool = cuda.GpuPool
        cuda.GpuPool = lambda ctx, net, **kw: real_pool(ctx, net, emulate=True, **kw)
        api._gpu_available = lambda: True
        args += ["--device", "gpu"]
    else:
        args += ["--device", "cpu"]
    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
