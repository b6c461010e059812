"""THE byte model of the device path: what a chunk row costs on a device, and what is resident.

One place for the numbers every part of the GPU path plans with: the pool (how many rows fit a
device's budget), the program (which allocations a chunk makes) and the emulated device (what its
``argsort`` and ``flatnonzero`` reserve, read from the constants here, so the emulator's accounting
cannot drift from the plan's; tests/device/test_memory_model.py checks the sum against what the
program really allocates).
"""

import re

import numpy as np

from gpuprune.errors import InputError
from gpuprune.rng.philox import KIND_SYNAPSE

#: share of the free device memory a pool plans to use.
MEMORY_FRACTION = 0.8
#: chunks whose rows may be resident on one device at once (the one pruned, the next one staged).
STAGED_CHUNKS = 2
#: most rows of one chunk on a device, whatever its memory: smaller chunks overlap reading, upload
#: and compute, and bound the host memory per chunk.  2**25 is a first choice, to be measured on a
#: GPU (benchmarks/bench_gpu.py --chunk-rows); not measured yet.
MAX_CHUNK_ROWS = 1 << 25
#: host memory a staged chunk takes per row byte: the rows, and their pinned copy, which CuPy's
#: pinned pool rounds up to a power of two (so up to 2x).
HOST_BYTES_PER_ROW_BYTE = 3
#: share of the available host memory the staged chunks may take.
HOST_MEMORY_FRACTION = 0.5

#: bytes per key of a stable argsort besides its input: thrust's radix sort temporaries (a key copy and
#: double buffers, 24) and the int64 order it returns (8).
SORT_TEMP_BYTES_PER_KEY = 24
SORT_OUTPUT_BYTES_PER_KEY = 8
#: bytes per input element of flatnonzero besides its input: the int64 output (at most one per
#: element) and the scan's temporaries.
NONZERO_BYTES_PER_ELEMENT = 16

#: device bytes per chunk row besides the rows themselves, allocation by allocation (program.py):
#: per row, and per group (at most one group per row).
WORK_ALLOCATIONS = (
    ("key", 8),
    ("order", SORT_OUTPUT_BYTES_PER_KEY),
    ("sort temporaries", SORT_TEMP_BYTES_PER_KEY),
    ("is_start", 1),
    ("starts (flatnonzero)", NONZERO_BYTES_PER_ELEMENT),
    ("row_group", 8),
    ("group size", 8),
    ("group pset", 4),
    ("group alive", 1),
    ("group code", 8),
    ("group n_keep", 8),
    ("group cluster", 1),
    ("keep", 1),
    ("cand", 1),
    ("kept (flatnonzero)", NONZERO_BYTES_PER_ELEMENT),
)
WORK_BYTES_PER_ROW = sum(b for _, b in WORK_ALLOCATIONS)
#: extra bytes per row with cluster pruning (int64 neighbour counts).
CLUSTER_BYTES_PER_ROW = 8
#: a p(d) table is dense over the chunk's column-8 range when that range has fewer than
#: DENSE_TABLE_FACTOR * rows + DENSE_TABLE_SLACK values (as the NumPy engine decides), else per row.
DENSE_TABLE_FACTOR = 4
DENSE_TABLE_SLACK = 4096
#: device bytes per row and distance expression for p(d) tables, and per expression and chunk.
DIST_BYTES_PER_ROW = 8 * DENSE_TABLE_FACTOR
DIST_BYTES_FIXED = 8 * DENSE_TABLE_SLACK
#: small per-chunk allocations (error word, first bad group, minimum sizes).
CHUNK_BYTES_FIXED = 1024

#: device bytes of a tuned pathway (gpuprune/tune/device.py, kernel gp_tune_kept): resident per row
#: that passed the distance test (r_f1, r_sm) and per group (first row, block, r_a3, r_mu2); per batch
#: the kept counts (int32 per group and parameter set), and per launch, for each of its sets, the
#: kernel's scratch (int32 per group) and per block f1, a3, soft_max and the p_keep and p_mu tables
#: of ``width`` entries.
TUNE_BYTES_PER_ROW = 16
#: with a z cut: the row's inside flag, and a second count per (group, set)
TUNE_CUT_BYTES_PER_ROW = 1
TUNE_BYTES_PER_GROUP = 8 + 1 + 16
TUNE_OUTPUT_BYTES_PER_GROUP_SET = 4
TUNE_SCRATCH_BYTES_PER_GROUP_SET = 4


def tune_resident_bytes(rows, groups, cut=False):
    """Device bytes a tuned pathway's model keeps resident."""
    per_row = TUNE_BYTES_PER_ROW + (TUNE_CUT_BYTES_PER_ROW if cut else 0)
    return per_row * int(rows) + TUNE_BYTES_PER_GROUP * int(groups) + 8


def tune_output_bytes(groups, sets, cut=False):
    """Device bytes of the kept counts of a batch (and, with a z cut, of those inside it)."""
    return TUNE_OUTPUT_BYTES_PER_GROUP_SET * int(groups) * int(sets) * (2 if cut else 1)


def tune_launch_bytes(groups, sets, blocks, width):
    """Device bytes one launch of ``sets`` parameter sets needs besides the resident model and the output."""
    return int(sets) * (TUNE_SCRATCH_BYTES_PER_GROUP_SET * int(groups) + int(blocks) * 8 * (3 + 2 * int(width)))


_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b?)\s*$", re.I)


def bytes_per_row(kind, any_cluster, n_expressions):
    """Device bytes one chunk row of ``kind`` needs: staged copies, the pruned copy, work arrays."""
    row = 4 * kind.width
    per_row = STAGED_CHUNKS * row + row + WORK_BYTES_PER_ROW
    if any_cluster:
        per_row += CLUSTER_BYTES_PER_ROW
    if kind.kind_id == KIND_SYNAPSE:
        per_row += DIST_BYTES_PER_ROW * n_expressions
    return per_row


def fixed_bytes(kind, n_expressions, code_size):
    """Device bytes a chunk needs whatever its size: p(d) tables' slack, statistics, flags."""
    dist = DIST_BYTES_FIXED * n_expressions if kind.kind_id == KIND_SYNAPSE else 0
    return dist + 4 * 8 * code_size + CHUNK_BYTES_FIXED


def table_bytes(n_sets, max_n):
    """Device bytes of the soft_max/mu2 tables covering n = 0 .. ``max_n`` (two float64 tables)."""
    return 2 * 8 * max(1, n_sets) * (int(max_n) + 1)


def table_bytes_per_row(n_sets, has_tables):
    """Device bytes per chunk row the soft_max/mu2 tables may grow by (they cover n up to the largest
    group, at most every row of the chunk); nothing without soft_max or mu2 rules."""
    return 2 * 8 * max(1, n_sets) if has_tables else 0


def host_bytes_per_row(kind):
    """Host bytes a staged chunk row of ``kind`` takes (rows plus the pinned copy)."""
    return HOST_BYTES_PER_ROW_BYTE * 4 * kind.width


def available_host_memory():
    """Bytes of host memory available now (Linux ``MemAvailable``; None elsewhere)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def max_chunk_rows(kind, device_budget, fixed, per_row, host_available=None):
    """Rows of one chunk: what the device budget holds, capped by :data:`MAX_CHUNK_ROWS` and host memory.

    ``host_available`` (bytes; default :func:`available_host_memory`) bounds the staged chunks'
    host memory to :data:`HOST_MEMORY_FRACTION` of it.
    """
    rows = (device_budget - fixed) // per_row
    rows = min(int(rows), MAX_CHUNK_ROWS)
    host = available_host_memory() if host_available is None else host_available
    if host is not None:
        rows = min(rows, int(host * HOST_MEMORY_FRACTION) // (STAGED_CHUNKS * host_bytes_per_row(kind)))
    return max(0, rows)


def parse_memory_size(value):
    """Bytes from an int or a size such as ``"12G"``, ``"12GiB"``, ``"500M"`` (``--gpu-memory``).

    K, M, G, T are powers of 1024 (the units GPU memory is sold in).
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        size = int(value)
    else:
        m = _SIZE.match(str(value))
        if m is None:
            raise InputError(f"cannot read GPU memory size {value!r} (give bytes, or e.g. 12G, 500M)")
        size = int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))
    if size <= 0:
        raise InputError(f"GPU memory size must be positive, got {value!r}")
    return size


__all__ = ["MAX_CHUNK_ROWS", "MEMORY_FRACTION", "STAGED_CHUNKS", "WORK_BYTES_PER_ROW", "bytes_per_row",
           "fixed_bytes", "max_chunk_rows", "parse_memory_size", "table_bytes", "tune_launch_bytes",
           "tune_output_bytes", "tune_resident_bytes"]
