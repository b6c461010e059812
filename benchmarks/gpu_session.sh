#!/usr/bin/env bash
# Every GPU check in one call of the `device` tool (a lent H100/H200, 15 minutes of device time per
# session, nothing downloadable there).
#
#   bash benchmarks/gpu_session.sh prepare     # here, once: fixtures and the numexpr wheel into ignored folders
#   device run:  command="bash benchmarks/gpu_session.sh run"  carry=[".gpudata", ".whl"]  timeout_s=600
#   bash benchmarks/gpu_session.sh dry-run     # here or in CI: the same steps, CuPy stubbed, emulated device
#
# `run` (on the device machine, about 6-8 minutes on 16 cores):
#   0. preflight (seconds): import gpuprune from this tree, find and compile the kernels, one tiny prune
#      on the GPU equal to the CPU (stops the session at once with one clear line if any fails), one tiny
#      batch of the tuning kernel gp_tune_kept equal to NumPy (a warning only);
#   1. compute-sanitizer memcheck, racecheck and initcheck on one small prune (prune3) and tiny tune batch;
#   2. pytest -m gpu: byte-identity GPU vs CPU on every fixture network and config, all GPUs with a small
#      memory cap, the kernels' Philox and keys against NumPy, a >= 1e7-row synthetic network in
#      >= 40 chunks, and the tuning kernel against NumPy (tests/tune/test_tune_gpu.py);
#   3. benchmarks/bench_gpu.py --record on a 1.2e7-row synthetic network (kernel rows/s with CUDA events,
#      transfers, end to end against the CPU path and against read+write alone);
#   4. benchmarks/sweep.py --record at 1e6, 1e7 and 3e7 rows (CPU and GPU, host and device memory);
#   5. benchmarks/bench_tune.py --device gpu: batched fitting evaluations per second on the GPU at
#      P = 60, 1024 and 8192 parameter sets per launch (target >= 50,000/s on striatum_300 dSPN -> iSPN).
# Everything printed, and RESULTS.md with the new sections, comes back under $OUT: copy the sections
# into benchmarks/RESULTS.md here (the device's working tree is thrown away).
#
# Carried: prune3 and striatum_300 (about 30 MiB); striatum_300_pop differs from striatum_300 only in its
# work log and config, so only those travel and `run` rebuilds it from striatum_300's voxel files.
set -euo pipefail
cd "$(dirname "$0")/.."

restore_pop() {  # striatum_300_pop = striatum_300's voxels + its own work log and config
    local d="$1"
    if [ -d "$d/striatum_300_pop" ] && [ ! -d "$d/striatum_300_pop/voxels" ]; then
        cp -r "$d/striatum_300/voxels" "$d/striatum_300_pop/voxels"
        cp "$d/striatum_300/network-projection-synapses.hdf5" "$d/striatum_300_pop/" 2>/dev/null || true
    fi
}

case "${1:-}" in
prepare)
    data="${GPUPRUNE_TEST_DATA:-../shared/data}"
    rm -rf .gpudata .whl
    mkdir -p .gpudata .whl
    for net in prune3 striatum_300; do  # the networks only: Snudda's outputs stay here
        cp -r "$data/$net" .gpudata/
        rm -rf ".gpudata/$net/expected"
    done
    mkdir -p .gpudata/striatum_300_pop/log
    cp "$data/striatum_300_pop/network-config.json" .gpudata/striatum_300_pop/
    cp "$data/striatum_300_pop/log/network-detect-worklog.hdf5" .gpudata/striatum_300_pop/log/
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "numexpr>=2.8"
    mkdir -p .git/info 2>/dev/null || true
    for p in /.gpudata/ /.whl/; do
        grep -qxF "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude
    done
    du -sh .gpudata .whl
    echo "now: device run with command=\"bash benchmarks/gpu_session.sh run\", carry=[\".gpudata\", \".whl\"]"
    ;;
run|dry-run)
    mode="$1"
    export PYTHONUNBUFFERED=1
    out="${OUT:-/tmp/gpuprune-out}"
    mkdir -p "$out"
    work="$(mktemp -d /tmp/gpuprune-gpu.XXXXXX)"
    extra=""
    emulate=""
    if [ "$mode" = run ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
        extra="/tmp/site"
        python3 setup.py -q build_ext --inplace || echo "gpuprune.io._lzf not built: input is read through h5py"
        data="$PWD/.gpudata"
    else
        # a CuPy stub that sees no device: every `gpu` test must be collected, then skip
        mkdir -p "$work/stub/cupy"
        printf 'class _Runtime:\n    @staticmethod\n    def getDeviceCount():\n        return 0\n\n\nclass cuda:\n    runtime = _Runtime\n\n\ndef memoize(for_each_device=False):\n    return lambda fn: fn\n\n\n__version__ = "stub"\n' > "$work/stub/cupy/__init__.py"
        extra="$work/stub"
        emulate="--emulate"
        data="${GPUPRUNE_TEST_DATA:-$PWD/../shared/data}"
    fi
    export PYTHONPATH="$PWD${extra:+:$extra}"
    export GPUPRUNE_TEST_DATA="$data"
    [ "$mode" = run ] && restore_pop "$data"
    export GPUPRUNE_CACHE_DIR="$work/cache"
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
    python3 -c "import cupy, numexpr, gpuprune; from gpuprune.device import cupy_backend; from gpuprune.io import reader; \
print('cupy', cupy.__version__, 'devices', cupy_backend.device_count(), 'LZF decoder', reader._lzf_decompress_into is not None)" \
        | tee "$out/env.txt"
    # 0. preflight: seconds, and the session stops here with one clear line if the tree cannot run
    if ! python3 benchmarks/gpu_preflight.py --source-tree $emulate 2>&1 | tee "$out/preflight.txt"; then
        echo "gpu_session: preflight failed; nothing else was run (see $out/preflight.txt)"
        exit 1
    fi
    grep -q "preflight ok: tiny prune" "$out/preflight.txt" || { echo "gpu_session: preflight incomplete"; exit 1; }
    status=0
    if [ "$mode" = run ]; then
        # 1. compute-sanitizer on one small prune
        if command -v compute-sanitizer > /dev/null; then
            for tool in memcheck racecheck initcheck; do
                compute-sanitizer --tool "$tool" --error-exitcode 3 python3 benchmarks/gpu_preflight.py \
                    --network "$data/prune3" > "$out/sanitizer-$tool.txt" 2>&1 || status=1
                echo "compute-sanitizer $tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|preflight' \
                    "$out/sanitizer-$tool.txt" | tr '\n' ' ')"
            done
        else
            echo "compute-sanitizer not found: skipped" | tee "$out/sanitizer.txt"
        fi
        # 2. the GPU tests
        python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$out/pytest-gpu.txt" || status=1
        # 3.-4. benchmarks
        python3 -m gpuprune synth "$work/net12m" --neurons 12000 --synapses-per-neuron 1000 --seed 1 --overwrite --quiet
        python3 benchmarks/bench_gpu.py "$work/net12m" --repeat 3 --record 2>&1 | tee "$out/bench_gpu.txt" || status=1
        python3 benchmarks/sweep.py --sizes 1e6 1e7 3e7 --workdir "$work" --record 2>&1 | tee "$out/sweep.txt" || status=1
        # 5. fitting: batched evaluations/s on the GPU (needs SciPy for the fit part; said if missing)
        if python3 -c "import scipy" 2> /dev/null; then
            python3 benchmarks/bench_tune.py --device gpu --skip-snudda 2>&1 | tee "$out/bench_tune.txt" || status=1
        else
            echo "bench_tune skipped: scipy is not installed on this machine" | tee "$out/bench_tune.txt"
        fi
        cp benchmarks/RESULTS.md "$out/RESULTS.md"
    else
        # 2. every gpu test is collected from this tree (and would skip without a device)
        python3 -m pytest -m gpu -q -p no:cacheprovider --collect-only tests 2>&1 | tee "$out/pytest-gpu.txt" \
            | tail -1 | grep -qE "^[0-9]+(/[0-9]+)? tests? (collected|selected)" || status=1
        # 3.-4. the benchmark scripts import and parse their arguments
        python3 benchmarks/bench_gpu.py --help > /dev/null || status=1
        python3 benchmarks/sweep.py --help > /dev/null || status=1
        python3 benchmarks/bench_tune.py --help > /dev/null || status=1
        # 5. the fitting benchmark's device branch (batches, tiles) runs end to end on the emulated device
        python3 benchmarks/bench_tune.py --data "$data" --device emulated --skip-snudda --sets 60 120 --tiles 16 \
            --large-neurons 100 --large-synapses 50 > "$out/bench_tune.txt" 2>&1 || { tail -5 "$out/bench_tune.txt"; status=1; }
    fi
    rm -rf "$work"
    echo "gpu_session $mode: $([ $status = 0 ] && echo ok || echo FAILED)"
    exit $status
    ;;
*)
    echo "usage: $0 prepare|run|dry-run" >&2
    exit 2
    ;;
esac
