#!/usr/bin/env bash
# Every GPU check of issue #3 in one call of the `device` tool (a lent H100/H200, 15 minutes of device
# time per session, nothing downloadable there).
#
#   bash benchmarks/gpu_session.sh prepare     # here, once: fixtures and the numexpr wheel into ignored folders
#   device run:  command="bash benchmarks/gpu_session.sh run"  carry=[".gpudata", ".whl"]  timeout_s=600
#
# `run` (on the device machine, about 6-8 minutes on 16 cores):
#   1. installs numexpr (the one dependency the device image lacks) and builds gpuprune in place;
#   2. pytest -m gpu: byte-identity GPU vs CPU on every fixture network and config, all GPUs with a small
#      memory cap, the kernels' Philox and keys against NumPy, and a >= 1e7-row synthetic network in
#      >= 40 chunks;
#   3. benchmarks/bench_gpu.py --record on a 1.2e7-row synthetic network (on-device rows/s, end to end
#      against the CPU path and against read+write alone);
#   4. benchmarks/sweep.py --record at 1e6, 1e7 and 3e7 rows (CPU and GPU, host and device memory).
# Everything printed, and RESULTS.md with the new sections, comes back under $OUT: copy the sections
# into benchmarks/RESULTS.md here (the device's working tree is thrown away).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
    data="${GPUPRUNE_TEST_DATA:-../shared/data}"
    rm -rf .gpudata .whl
    mkdir -p .gpudata .whl
    for net in prune3 striatum_300 striatum_300_pop; do  # the networks only: Snudda's outputs stay here
        cp -r "$data/$net" .gpudata/
        rm -rf ".gpudata/$net/expected"
    done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "numexpr>=2.8"
    mkdir -p .git/info
    for p in /.gpudata/ /.whl/; do
        grep -qxF "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude
    done
    du -sh .gpudata .whl
    echo "now: device run with command=\"bash benchmarks/gpu_session.sh run\", carry=[\".gpudata\", \".whl\"]"
    ;;
run)
    export PYTHONUNBUFFERED=1
    out="${OUT:-/tmp/gpuprune-out}"
    mkdir -p "$out"
    work=/tmp/gpuprune-gpu
    mkdir -p "$work"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
    python3 setup.py -q build_ext --inplace || echo "gpuprune.io._lzf not built: input is read through h5py"
    export PYTHONPATH="$PWD:/tmp/site"
    export GPUPRUNE_TEST_DATA="$PWD/.gpudata"
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
    python3 -c "import cupy, numexpr; from gpuprune import cuda, stream; print('cupy', cupy.__version__, 'devices', \
cuda.device_count(), 'LZF decoder', stream._lzf_decompress_into is not None)" | tee "$out/env.txt"
    status=0
    python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$out/pytest-gpu.txt" || status=1
    python3 -m gpuprune synth "$work/net12m" --neurons 12000 --synapses-per-neuron 1000 --seed 1 --overwrite --quiet
    python3 benchmarks/bench_gpu.py "$work/net12m" --repeat 3 --record 2>&1 | tee "$out/bench_gpu.txt" || status=1
    python3 benchmarks/sweep.py --sizes 1e6 1e7 3e7 --workdir "$work" --record 2>&1 | tee "$out/sweep.txt" || status=1
    cp benchmarks/RESULTS.md "$out/RESULTS.md"
    exit $status
    ;;
*)
    echo "usage: $0 prepare|run" >&2
    exit 2
    ;;
esac
