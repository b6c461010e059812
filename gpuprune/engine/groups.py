"""The first two steps of pruning a chunk: order its rows, then segment them into groups.

A group is every row of one (dest, src, channel type) in the chunk (DESIGN §3).
Philox mode orders rows by the packed key (dest, src, type), stably, so that
rows of a group keep file order; snudda mode reproduces Snudda's heap merge by
sorting lookup runs by (unique_id, hyper voxel id), and a group is then a run
of equal keys in that order.
"""

from dataclasses import dataclass

import numpy as np

from gpuprune.engine.context import SNUDDA
from gpuprune.errors import InputError

#: bits of the channel type in a packed key (channel types are checked to be below 2**16).
TYPE_BITS = 16


def bits(n):
    """Bits needed to hold the non-negative integer ``n`` (at least one)."""
    return max(1, int(n).bit_length())


def group_key(ctx, dest, src, typ, dest_lo, dest_hi):
    """Packed uint64 key (dest - dest_lo, src, type), or None if it needs more than 64 bits."""
    b_s = bits(ctx.num_neurons - 1)
    b_d = bits(max(dest_hi - dest_lo - 1, 0))
    if TYPE_BITS + b_s + b_d > 64:
        return None
    key = (dest - dest_lo).astype(np.uint64) << np.uint64(b_s + TYPE_BITS)
    key |= src.astype(np.uint64) << np.uint64(TYPE_BITS)
    key |= typ.astype(np.uint64)
    return key


def unpack_key(ctx, key, dest_lo, dest_hi):
    """Inverse of :func:`group_key`: (src, dest, type) arrays."""
    b_s = bits(ctx.num_neurons - 1)
    typ = (key & np.uint64((1 << TYPE_BITS) - 1)).astype(np.int64)
    src = ((key >> np.uint64(TYPE_BITS)) & np.uint64((1 << b_s) - 1)).astype(np.int64)
    dest = (key >> np.uint64(b_s + TYPE_BITS)).astype(np.int64) + dest_lo
    return src, dest, typ


def is_sorted(a):
    return a.size < 2 or bool(np.all(a[1:] >= a[:-1]))


def take(a, idx):
    """``a[idx]``, with ``idx`` None meaning every row (no copy)."""
    return a if idx is None else a[idx]


def group_sums(flags, starts):
    """Number of set flags in each group (groups start at ``starts``, in order)."""
    c = np.cumsum(flags, dtype=np.int64)
    ends = np.append(starts[1:], flags.size) - 1
    before = np.where(starts > 0, c[starts - 1], 0)
    return c[ends] - before


def expand(starts, sizes):
    """Positions of all rows of the groups with the given starts and sizes (ascending)."""
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(sizes) - sizes
    return np.repeat(starts - first, sizes) + np.arange(total, dtype=np.int64)


def sorted_order(key, dest, src, typ):
    """Stable order by (dest, src, type); None if already sorted, else timsort (fast on sorted runs)."""
    if key is None:
        order = np.lexsort((typ, src, dest))
        return None if bool(np.all(np.diff(order) == 1)) and order[0] == 0 else order
    if is_sorted(key):
        return None
    return np.argsort(key, kind="stable")


def merge_order(lookup_runs):
    """Snudda's heap-merge order of rows, from the chunk's lookup runs.

    ``lookup_runs`` is (uid, hid, start, length) arrays, ``start`` being the
    run's first row in the concatenated chunk.  Runs are merged by
    (unique_id, hyper voxel id), as Snudda's heap does.
    """
    uid, hid, start, length = lookup_runs
    o = np.lexsort((hid, uid))
    start, length = start[o], length[o]
    total = int(length.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(length) - length  # position of each run in the merged order
    return np.repeat(start - first, length) + np.arange(total, dtype=np.int64)


def order_rows(ctx, kind_name, key, src, dest, typ, lookup_runs):
    """Step 1, order: the permutation that puts the chunk's rows in group order (None: already in it).

    Parameters
    ----------
    ctx : PruneContext
    kind_name : str
        For error messages.
    key : ndarray of uint64 or None
        The rows' packed keys (:func:`group_key`), None if they do not fit in 64 bits.
    src, dest, typ : ndarray
        The rows' grouping columns, in chunk (file) order.
    lookup_runs : tuple of ndarray or None
        snudda mode: (unique_id, hyper voxel id, start, length) of the chunk's lookup runs.
    """
    if ctx.mode != SNUDDA:
        return sorted_order(key, dest, src, typ)
    if lookup_runs is None:
        raise ValueError("snudda mode needs the chunk's lookup runs")
    order = merge_order(lookup_runs)
    if order.size != src.size:
        raise InputError(f"{kind_name} lookup runs cover {order.size} rows but the slices hold {src.size}")
    if bool(np.all(np.diff(order) == 1)) and order[0] == 0:
        return None
    return order


@dataclass
class Groups:
    """A chunk's rows in group order, cut into groups (the result of :func:`segment`).

    Row arrays (``src``, ``dest``, ``typ``, ``pos``) are in group order;
    ``order[i]`` is the chunk row at position ``i`` (``order`` None: the
    identity).  Group arrays (``starts``, ``sizes``, ``g_*``) have one entry
    per group.
    """

    order: object  # ndarray of int64 or None
    key: object  # packed keys in chunk order (ndarray of uint64) or None
    src: np.ndarray
    dest: np.ndarray
    typ: np.ndarray
    starts: np.ndarray  # each group's first position
    sizes: np.ndarray  # rows per group
    pos: np.ndarray  # each row's index inside its group (int32)
    g_src: np.ndarray  # each group's src, dest and channel type
    g_dest: np.ndarray
    g_typ: np.ndarray

    @property
    def n_rows(self):
        return self.src.size

    @property
    def n_groups(self):
        return self.starts.size

    def chunk_rows(self, positions):
        """Chunk row indices of the given group-order positions."""
        return positions if self.order is None else self.order[positions]

    def column(self, rows, c):
        """Column ``c`` of the chunk's ``rows``, in group order."""
        return take(rows[:, c], self.order)

    def rows_of(self, groups):
        """Positions of every row of the given groups (ascending)."""
        return expand(self.starts[groups], self.sizes[groups])

    def group_of(self, positions):
        """The group of each of the given (sorted) positions."""
        return np.searchsorted(self.starts, positions, side="right") - 1


def segment(key, order, src, dest, typ):
    """Step 2, segment: a group is a run of equal (dest, src, type) in group order.

    ``key``, ``src``, ``dest`` and ``typ`` are in chunk order; ``order`` is
    from :func:`order_rows`.
    """
    n = src.size
    if order is None:
        s_src, s_dest, s_typ = src, dest, typ
    else:
        s_src, s_dest, s_typ = src[order], dest[order], typ[order]
    if key is not None:
        ks = take(key, order)
        new = ks[1:] != ks[:-1]
    else:
        new = (s_src[1:] != s_src[:-1]) | (s_dest[1:] != s_dest[:-1]) | (s_typ[1:] != s_typ[:-1])
    starts = np.flatnonzero(np.concatenate(([True], new)))
    sizes = np.diff(np.append(starts, n))
    if sizes.max() >= 2 ** 32 - 1:
        raise InputError("a group has 2**32-1 rows or more")
    pos = np.arange(n, dtype=np.int32) - np.repeat(starts.astype(np.int32), sizes)
    return Groups(order=order, key=key, src=s_src, dest=s_dest, typ=s_typ, starts=starts, sizes=sizes, pos=pos,
                  g_src=s_src[starts], g_dest=s_dest[starts], g_typ=s_typ[starts])
