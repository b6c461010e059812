#!/usr/bin/env python3
"""Fail-fast check before a GPU session spends device time: import, kernels, one tiny prune, one tiny tune.

    python benchmarks/gpu_preflight.py [--emulate] [--network DIR]

1. ``import gpuprune`` from this source tree (``PYTHONPATH``), and say which files it uses;
2. find the kernel sources (:func:`gpuprune.device.kernels.kernel_dir`) and compile them (NVRTC through
   CuPy on a GPU, the host compiler with ``--emulate``);
3. prune one tiny network (``--network``, else a synthetic one generated here) on the device and on the
   CPU in philox mode: the bytes must be equal;
4. evaluate a batch of parameter sets of a tiny synthetic network's pathway with the tuning kernel
   (``gp_tune_kept``) and with NumPy: the counts must be equal.  A failure here is reported
   (``preflight WARNING``) but does not stop the session: the pruning checks still run.
Each step prints one line; the first failure of steps 1-3 prints ``preflight FAILED: <step>: <reason>`` and exits 1,
within seconds, so that ``gpu_session.sh run`` stops before the long steps.  Also the program that
``compute-sanitizer`` runs in ``gpu_session.sh run``.
"""

import argparse
import contextlib
import sys
import tempfile
import time
import traceback
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]


def _step(name, fn, fatal=True):
    t0 = time.perf_counter()
    try:
        detail = fn()
    except Exception as exc:  # noqa: BLE001 - reported in one line, then the session stops (if fatal)
        traceback.print_exc(file=sys.stderr)
        word = "FAILED" if fatal else "WARNING"
        print(f"preflight {word}: {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              flush=True)
        if fatal:
            sys.exit(1)
        return None
    print(f"preflight ok: {name} ({time.perf_counter() - t0:.1f} s){': ' + detail if detail else ''}", flush=True)
    return detail


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--emulate", action="store_true", help="the emulated device (no GPU; CuPy may be a stub)")
    ap.add_argument("--network", help="network to prune (default: a tiny synthetic one)")
    ap.add_argument("--source-tree", action="store_true",
                    help="also require that gpuprune and its kernels come from this checkout")
    args = ap.parse_args(argv)
    state = {}

    def imports():
        import gpuprune
        from gpuprune.device import kernels

        state["kernels"] = kernels
        where = Path(gpuprune.__file__).resolve().parent
        kdir = Path(kernels.kernel_dir()).resolve()
        if args.source_tree and (where.parent != ROOT or kdir.parent != ROOT):
            raise RuntimeError(f"gpuprune from {where}, kernels from {kdir}: not this checkout {ROOT}")
        return f"gpuprune {where}, kernels {kdir}"

    def compiles():
        if args.emulate:
            from gpuprune.device.emulated import library

            lib = library.EmulatorLibrary.get()
            return f"host build {lib.path}, {len(lib.signatures)} kernels"
        from gpuprune.device import cupy_backend

        if cupy_backend.device_count() == 0:
            raise RuntimeError("no CUDA device visible to CuPy (cupy.cuda.runtime.getDeviceCount() == 0)")
        module = cupy_backend.compiled_module()
        module.get_function("gp_build_keys")
        import cupy

        return f"NVRTC, cupy {cupy.__version__}, {cupy_backend.device_count()} device(s)"

    def tiny_prune():
        import h5py

        import gpuprune

        with tempfile.TemporaryDirectory(prefix="gpuprune-preflight-") as tmp:
            tmp = Path(tmp)
            net = Path(args.network) if args.network else tmp / "net"
            if not args.network:
                from gpuprune import synth

                synth.generate_network(net, num_neurons=40, synapses_per_neuron=200, seed=3)
            with contextlib.ExitStack() as stack:
                if args.emulate:
                    from gpuprune.device import pool

                    real = pool.GpuPool
                    stack.enter_context(mock.patch.object(
                        pool, "GpuPool", lambda ctx, n, **kw: real(ctx, n, emulate=True, **kw)))
                    stack.enter_context(mock.patch.object(gpuprune.api, "_gpu_available", lambda: True))
                gpu = gpuprune.prune(net, device="gpu", output_file=tmp / "gpu.hdf5")
            gpuprune.prune(net, device="cpu", workers=1, output_file=tmp / "cpu.hdf5")
            with h5py.File(tmp / "gpu.hdf5") as g, h5py.File(tmp / "cpu.hdf5") as c:
                for k in ("network/synapses", "network/gap_junctions"):
                    if g[k][()].tobytes() != c[k][()].tobytes():
                        raise RuntimeError(f"{k}: the GPU output differs from the CPU's")
            return f"{gpu.synapses_before:,} rows, {gpu.synapses_after:,} kept, GPU == CPU"

    def tiny_tune():
        import numpy as np

        from gpuprune import synth
        from gpuprune.tune import Evaluator, Tuner

        with tempfile.TemporaryDirectory(prefix="gpuprune-preflight-") as tmp:
            net = Path(tmp) / "net"
            synth.generate_network(net, num_neurons=120, synapses_per_neuron=100, seed=3)
            tuner = Tuner(net, "dSPN,iSPN,GABA", device="emulated" if args.emulate else "gpu")
            rng = np.random.default_rng(1)
            values = {"f1": rng.uniform(0, 1, 64), "soft_max": rng.uniform(0, 5, 64), "mu2": rng.uniform(0.1, 5, 64),
                      "a3": rng.uniform(0, 1, 64), "pruning_other.f1": rng.uniform(0, 1, 64)}
            batch = tuner.batch(values)
            got = tuner.evaluate(batch)
            got = got.get() if hasattr(got, "get") else np.asarray(got)
            want = Evaluator(tuner.model()).kept(batch)
            if not np.array_equal(got, want):
                raise RuntimeError(f"kernel gp_tune_kept differs from NumPy in {int((got != want).sum())} counts")
            return f"{batch.size} parameter sets x {want.shape[1]} groups, device == NumPy"

    _step("import", imports)
    _step("compile kernels", compiles)
    _step("tiny prune", tiny_prune)
    _step("tiny tune", tiny_tune, fatal=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
