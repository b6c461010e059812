"""Snudda's intermediate files, read and written with the vectorised engine.

The helpers behind :class:`gpuprune.snudda_compat.SnuddaPrune`:

* merge files (``<kind>-for-neurons-<lo>-to-<hi>-MERGE-ME.hdf5``): every row
  onto a dest-neuron range, gathered from the hyper voxel files in Snudda's
  heap-merge order (lookup runs by unique id, then hyper voxel id), with the
  layout Snudda writes (``network/synapses``, ``network/gap_junctions``,
  ``meta/``, ``network/neurons/``), so that Snudda itself can read them;
* the pruned output file in Snudda's layout, filled block by block;
* ``pruning_merge_info.json`` and its freshness checks;
* pruning an in-memory block of merged rows, in the block's row order.

Merging and pruning run no Python loop per row, group or neuron; only the
lookup iterators, which Snudda's API defines per row, yield row by row.
"""

import json
import os

import h5py
import numpy as np

from gpuprune import engine, plan
from gpuprune.errors import InputError
from gpuprune.format import KINDS
from gpuprune.io.network import open_h5
from gpuprune.io.reader import read_chunk

#: Snudda's merge file name in the scratch directory.
MERGE_FILE = "{kind}-for-neurons-{lo}-to-{hi}-MERGE-ME.hdf5"
#: Snudda's merge info file in the network directory.
MERGE_INFO_FILE = "pruning_merge_info.json"
#: Rows per block when pruning a merge file (Snudda's ``chunk_size`` in ``prune_synapses``).
PRUNE_BLOCK_ROWS = 1_000_000
#: Rows read and merged at a time when writing a merge file.
MERGE_BLOCK_ROWS = 1_000_000
#: Rows copied at a time by :func:`copy_rows`.
COPY_BLOCK_ROWS = 1_000_000
#: HDF5 chunk rows and filter of Snudda's files (``synapse_chunk_size``, ``h5compression``).
CHUNK_ROWS = 10000
COMPRESSION = "lzf"
#: Datasets of each kind: (matrix, count dataset) as Snudda names them.
COUNT = {"synapses": "network/num_synapses", "gap_junctions": "network/num_gap_junctions"}
#: Names Snudda's documentation uses for the gap junction kind.
_ALIASES = {"gapJunctions": "gap_junctions", "gap_junction": "gap_junctions", "synapse": "synapses"}


def kind_of(merge_data_type):
    """The :class:`network.Kind` for Snudda's ``merge_data_type`` ("synapses" or "gap_junctions")."""
    name = _ALIASES.get(merge_data_type, merge_data_type)
    if name not in KINDS:
        raise InputError(f"unknown merge_data_type {merge_data_type!r}; use 'synapses' or 'gap_junctions'")
    return KINDS[name]


# -- merging ---------------------------------------------------------------------------------------


def range_chunks(network, kind_name, lo, hi, row_budget=MERGE_BLOCK_ROWS):
    """Cut dest neurons ``[lo, hi)`` into chunks of at most ``row_budget`` rows (one dest may exceed it).

    Returns
    -------
    list of plan.Chunk
        Non-empty chunks in dest order, each with its slice of every source file.
    """
    lo, hi = max(0, int(lo)), min(int(hi), network.num_neurons)
    if hi <= lo:
        return []
    return plan.ranges(network.sources[kind_name], network.rows_per_dest(kind_name)[lo:hi], lo, row_budget)


def merged_rows(network, kind_name, chunk):
    """Read one chunk and return its rows in Snudda's merge order.

    Snudda merges the lookup runs of all files with a heap keyed by
    (unique_id, hyper voxel id), the projection file counting as -1; the
    engine's merge order reproduces that with one sort of the runs.
    """
    files = network.spec()["files"][kind_name]
    rows, runs = read_chunk(files, KINDS[kind_name], chunk, with_lookup=True)
    order = engine.merge_order(runs)
    if order.size != rows.shape[0]:
        raise InputError(f"{kind_name} lookup runs of dest neurons {chunk.dest_lo}..{chunk.dest_hi - 1} "
                         f"cover {order.size} rows but the files hold {rows.shape[0]}")
    if order.size and not np.array_equal(order, np.arange(order.size)):
        rows = rows[order]
    return rows


def files_in_chunks(chunks):
    """Indices (into the kind's ``network.sources``) of the files that hold rows of ``chunks``."""
    return sorted({s[0] for c in chunks for s in c.slices})


# -- HDF5 layouts ----------------------------------------------------------------------------------


def _create_rows(group, name, width, num, chunk_rows, compression, fixed_max):
    """A row dataset as Snudda creates it in merge files (``fixed_max``) or output files."""
    if not fixed_max:
        group.create_dataset(name, dtype=np.int32, shape=(chunk_rows, width), chunks=(chunk_rows, width),
                             maxshape=(None, width), compression=compression)
    elif num > chunk_rows:
        group.create_dataset(name, dtype=np.int32, shape=(num, width), chunks=(chunk_rows, width),
                             maxshape=(num, width), compression=compression)
    elif num > 0:
        group.create_dataset(name, dtype=np.int32, shape=(num, width), chunks=(num, width))
    else:
        group.create_dataset(name, dtype=np.int32, shape=(num, width))


def fill_output_file(out, hist_file, config, chunk_rows=CHUNK_ROWS, compression=COMPRESSION):
    """Give an open, empty HDF5 file the layout of Snudda's ``network-synapses.hdf5``.

    ``config`` (JSON text), ``meta/`` and ``network/neurons/`` copied from the
    work log, growable ``network/synapses`` (13 columns) and
    ``network/gap_junctions`` (11), and zero ``network/num_synapses`` and
    ``network/num_gap_junctions`` (uint64 scalars).
    """
    out.create_dataset("config", data=json.dumps(config))
    hist_file.copy("meta", out)
    network = out.create_group("network")
    hist_file.copy("network/neurons", network)
    for kind in KINDS.values():
        _create_rows(network, kind.name, kind.width, 0, chunk_rows, compression, fixed_max=False)
    for count in COUNT.values():
        out.create_dataset(count, data=0, dtype=np.uint64)


def create_merge_file(path, hist_file, num_synapses, num_gap_junctions, libver="latest", driver=None,
                      big_cache=False, chunk_rows=CHUNK_ROWS, compression=COMPRESSION):
    """Create a merge file with Snudda's layout; row datasets are sized to the given counts.

    Returns the open :class:`h5py.File`; rows are written with
    :func:`write_rows` and the datasets trimmed with :func:`trim_rows`.
    """
    options = {"libver": libver}
    if driver is not None:
        options["driver"] = driver
    if big_cache:  # 20x the default chunk cache, as Snudda asks for
        options["rdcc_nbytes"] = 20 * 1024 ** 2
    out = h5py.File(path, "w", **options)
    try:
        network = out.create_group("network")
        hist_file.copy("meta", out)
        hist_file.copy("network/neurons", network)
        for kind, num in ((KINDS["synapses"], num_synapses), (KINDS["gap_junctions"], num_gap_junctions)):
            _create_rows(network, kind.name, kind.width, int(num), chunk_rows, compression, fixed_max=True)
    except BaseException:
        out.close()
        raise
    return out


def write_rows(dataset, start, rows):
    """Write ``rows`` at ``start``, growing the dataset if it is too short and growable."""
    end = start + rows.shape[0]
    if end > dataset.shape[0]:
        if dataset.maxshape[0] is not None and dataset.maxshape[0] < end:
            raise InputError(f"{dataset.name} holds at most {dataset.maxshape[0]} rows; cannot write "
                             f"rows {start}..{end - 1}", dataset.file.filename)
        dataset.resize((end, dataset.shape[1]))
    if rows.shape[0]:
        dataset[start:end] = rows
    return end


def trim_rows(dataset, num):
    """Resize a row dataset to ``num`` rows."""
    dataset.resize((int(num), dataset.shape[1]))


def append_rows(out, kind, rows):
    """Append rows after the ``network/num_*`` rows of an output file, update the count; return it."""
    count = out[COUNT[kind.name]]
    start = int(count[()])
    end = write_rows(out[kind.matrix], start, rows)
    trim_rows(out[kind.matrix], end)
    count[()] = end
    return end


def copy_rows(source_paths, out, kind, block=COPY_BLOCK_ROWS):
    """Concatenate the row datasets of several files into ``out`` (from row 0); return the total."""
    sources = [open_h5(p) for p in source_paths]
    try:
        widths = {f[kind.matrix].shape[1] for f in sources}
        if len(widths) > 1:
            raise InputError(f"{kind.matrix} has different widths ({sorted(widths)}) in "
                             f"{', '.join(source_paths)}")
        total = sum(f[kind.matrix].shape[0] for f in sources)
        target = out[kind.matrix]
        target.resize((total, widths.pop() if widths else kind.width))
        pos = 0
        for f in sources:
            ds = f[kind.matrix]
            for s in range(0, ds.shape[0], block):
                rows = ds[s:s + block]
                target[pos:pos + rows.shape[0]] = rows
                pos += rows.shape[0]
        out[COUNT[kind.name]][()] = total
        return total
    finally:
        for f in sources:
            f.close()


# -- pruning an in-memory block --------------------------------------------------------------------


def _one_run(n):
    """Lookup runs that make the engine keep a block's row order: one run over all rows."""
    z = np.zeros(1, dtype=np.int64)
    return z, z, z, np.array([n], dtype=np.int64)


def prune_block(ctx, kind, rows):
    """Prune a block of rows with the engine; return the kept rows (in output order).

    In snudda mode the block's row order is the merge order: groups are runs
    of equal (src, dest, type) and each dest neuron's stream restarts where
    the dest changes, as in Snudda's ``prune_synapses_helper``.  A block whose
    dest column falls somewhere is cut there, so that a dest neuron seen again
    later restarts its stream as Snudda's does.  In philox mode the block is
    pruned as one chunk.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int32)
    if rows.ndim != 2 or rows.shape[1] != kind.width:
        raise InputError(f"{kind.name} must be an int32 matrix with {kind.width} columns, got shape "
                         f"{rows.shape}")
    if rows.shape[0] == 0:
        return rows[:0].copy()
    if ctx.mode != engine.SNUDDA:
        dest = rows[:, 1]
        return engine.prune_chunk(ctx, kind, rows, int(dest.min()), int(dest.max()) + 1).rows
    cuts = np.flatnonzero(rows[1:, 1] < rows[:-1, 1]) + 1
    bounds = np.concatenate(([0], cuts, [rows.shape[0]]))
    kept = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):  # one pass per descent of dest, normally one
        seg = rows[a:b]
        lo, hi = int(seg[0, 1]), int(seg[-1, 1]) + 1
        kept.append(engine.prune_chunk(ctx, kind, seg, lo, hi, lookup_runs=_one_run(b - a)).rows)
    return kept[0] if len(kept) == 1 else np.concatenate(kept)


# -- block ranges ----------------------------------------------------------------------------------


def _next_other_dest(matrix, pos, end, dest):
    """First row in ``[pos, end)`` whose dest differs from ``dest`` (``end`` if none); reads in windows."""
    window = 1024
    while pos < end:
        stop = min(end, pos + window)
        differ = np.flatnonzero(np.asarray(matrix[pos:stop, 1]) != dest)
        if differ.size:
            return pos + int(differ[0])
        pos, window = stop, window * 2
    return end


def block_ranges(matrix, num_blocks, start_pos=0, num_rows=None):
    """Snudda's ``find_ranges``: split rows into ``num_blocks`` ranges that never split a dest neuron.

    Block starts are ``start_pos + k * floor(num_rows / num_blocks)``; each is
    moved forward past the rows whose dest equals the dest of the row before
    it.  Starts beyond the end are dropped, duplicates removed, and the list
    padded with None so that there are always ``num_blocks`` ranges.  The last
    range ends at ``start_pos + num_rows``.

    Returns
    -------
    list of tuple
        ``(start, end)`` pairs; unused ranges are ``(x, None)`` or ``(None, None)``.
    """
    num_blocks = int(num_blocks)
    if num_blocks < 1:
        raise InputError(f"the number of workers must be at least 1, got {num_blocks}")
    if num_rows is None:
        num_rows = matrix.shape[0] - start_pos
    end = start_pos + num_rows
    size = max(1, num_rows // num_blocks)
    starts = [start_pos + k * size for k in range(num_blocks + 1)]
    # Snudda's last start is start_pos + size * num_blocks, which floor division can leave short of the
    # end, losing the trailing rows when their dest differs; the last range here always reaches the end.
    if num_rows >= num_blocks:
        starts[-1] = end
    for k in range(1, len(starts)):  # one pass per block, reading only near its start
        b = starts[k]
        if b < end:
            starts[k] = _next_other_dest(matrix, b, end, np.asarray(matrix[b - 1, 1]).item())
    starts = list(dict.fromkeys(x for x in starts if x <= end))
    starts += [None] * (num_blocks + 1 - len(starts))
    return list(zip(starts[:-1], starts[1:], strict=True))


# -- lookup iterators ------------------------------------------------------------------------------


def lookup_rows(lookup, uid_lo=None, uid_hi=None, chunk_size=10000):
    """Yield the rows ``(unique_id, start, end)`` of a lookup table, or those with uid in [uid_lo, uid_hi)."""
    n = lookup.shape[0]
    step = max(1, min(int(chunk_size), n)) if n else 1
    for s in range(0, n, step):
        block = np.asarray(lookup[s:s + step])
        if uid_lo is not None:
            uid = block[:, 0]
            block = block[(uid >= uid_lo) & (uid < uid_hi)]
        yield from block


def row_sets(runs, matrix, chunk_size=10000):
    """Yield ``(rows, unique_id)`` for each lookup run, reading the matrix through a buffer."""
    n = matrix.shape[0]
    chunk_size = max(1, int(chunk_size))
    buf, b0, b1 = None, 0, 0
    for run in runs:
        uid, start, end = (int(x) for x in run[:3])
        if not 0 <= start <= end <= n:
            raise InputError(f"lookup run {start}..{end} lies outside the {n} rows of "
                             f"{getattr(matrix, 'name', 'the matrix')}")
        if buf is None or start < b0 or end > b1:
            b0, b1 = start, min(n, max(end, start + chunk_size))
            buf = np.asarray(matrix[b0:b1])
        yield buf[start - b0:end - b0].copy(), uid


# -- merge info ------------------------------------------------------------------------------------

MERGE_INFO_KEYS = ("merge_files_syn", "merge_neuron_range_syn", "merge_syn_ctr",
                   "merge_files_gj", "merge_neuron_range_gj", "merge_gj_ctr")


def _plain(value):
    """JSON encoder fallback for NumPy values (Snudda writes them with its NumpyEncoder)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_merge_info(path, values):
    """Write ``pruning_merge_info.json`` (atomically) from the six lists of :data:`MERGE_INFO_KEYS`."""
    data = dict(zip(MERGE_INFO_KEYS, values, strict=True))
    tmp = f"{path}.part"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=4, default=_plain)
    os.replace(tmp, path)


def read_merge_info(path):
    """The six lists of a merge info file, in :data:`MERGE_INFO_KEYS` order."""
    with open(path) as fh:
        data = json.load(fh)
    return tuple(data[k] for k in MERGE_INFO_KEYS)


def merge_info_problem(path, info, newer_than=()):
    """Why merge info cannot be reused, or None when it can.

    Checks, as Snudda does: every referenced file exists and is not newer than
    the merge info; a missing file (None) was expected to hold no rows; each
    file holds the recorded number of rows, and its first and last dest lie in
    the recorded neuron range.  Also: the merge info is not older than any of
    ``newer_than`` (e.g. the work log).
    """
    files_syn, range_syn, ctr_syn, files_gj, range_gj, ctr_gj = info
    stamp = os.path.getmtime(path)
    for other in newer_than:
        if os.path.exists(other) and os.path.getmtime(other) > stamp:
            return f"{other} is newer than {path}"
    for name in list(files_syn) + list(files_gj):
        if name is None:
            continue
        if not os.path.exists(name):
            return f"{name} referenced by {path} does not exist"
        if os.path.getmtime(name) > stamp:
            return f"{name} is newer than {path}"
    for kind, files, ranges, ctrs in ((KINDS["synapses"], files_syn, range_syn, ctr_syn),
                                      (KINDS["gap_junctions"], files_gj, range_gj, ctr_gj)):
        if not len(files) == len(ranges) == len(ctrs):
            return (f"{path} lists {len(files)} {kind.name} files but {len(ranges)} ranges and "
                    f"{len(ctrs)} counts")
        for name, (lo, hi), ctr in zip(files, ranges, ctrs, strict=True):
            if name is None:
                if ctr > 0:
                    return f"no {kind.name} file recorded, but {ctr} {kind.name} expected"
                continue
            with h5py.File(name, "r") as f:
                ds = f[kind.matrix]
                if ds.shape[0] != ctr:
                    return f"{name} should hold {ctr} {kind.name}, found {ds.shape[0]}"
                if ctr > 0 and (lo > ds[0, 1] or ds[-1, 1] > hi):
                    return f"{name} has {kind.name} onto neurons outside {lo}-{hi}"
    return None
