"""The rows of planned groups: Snudda's synapse and gap junction columns, and their lookup runs.

Rows are drawn in canonical (dest, src, channel type) order, each from its own position of a
row stream, and only those of the files the calling process owns are built, sorted by file.
"""

import math

import numpy as np

from gpuprune.format import GAP_JUNCTIONS, SYNAPSES
from gpuprune.synth.config import DENDRITE_SECTIONS, FS
from gpuprune.synth.streams import GJ_ROW_WORDS, ROW_WORDS, STREAM_GJ_ROW, STREAM_ROW, bits

DISTANCE_SPREAD = 20.0  # micrometres: spread of a pair's soma distances around its own
ROW_SLICE = 1 << 16  # rows built at a time, to stay in cache


def _expand_rows(sizes, group_of_row_parent, split, side_a, side_b, words_bit0):
    """Per row of groups of ``sizes`` rows: its group, its pair, whether it is on side b, its file."""
    num_rows = int(sizes.sum())
    r_group = np.repeat(np.arange(len(sizes)), sizes)
    k = np.arange(num_rows) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    r_pair = r_group if group_of_row_parent is None else group_of_row_parent[r_group]
    # Row 0 of a split group goes to side a, row 1 to side b, the rest by a coin.
    on_b = split[r_pair] & ((k == 1) | ((k >= 2) & words_bit0))
    file_index = np.where(on_b, side_b[r_pair], side_a[r_pair])
    return r_group, r_pair, on_b, file_index


def _owned_order(file_index, owned):
    """Indices of the rows in owned files, ordered by file (stable: (dest, src, type) within)."""
    mine = owned[file_index]
    if mine.all():
        return np.argsort(file_index.astype(np.int16), kind="stable")
    sel = np.flatnonzero(mine)
    return sel[np.argsort(file_index[sel].astype(np.int16), kind="stable")]


def _jitter(words, axis, scale):
    """Voxel offset along one axis: a triangular draw (two 10-bit uniforms) times the pair's spread."""
    a = bits(words, 20 * axis, 10)
    b = bits(words, 20 * axis + 10, 10)
    return np.rint((a - b) * scale).astype(np.int64)


def synapse_rows(plan, p, row_offset, owned):
    """Rows of the planned groups that lie in owned files, sorted by file then (dest, src, type).

    Returns ``(rows, file_index, keys, channel, listed, targets)``: ``listed``
    encodes (file, dest) for dests with rows outside their home hyper voxel,
    ``targets`` the dests with rows in the projection file.
    """
    num_rows = int(p["g_rows"].sum())
    w = plan.streams.words(STREAM_ROW, row_offset, num_rows, ROW_WORDS)
    r_group, r_pair, on_b, file_index = _expand_rows(p["g_rows"], p["g_pair"], p["split"], p["side_a"],
                                                     p["side_b"], bits(w[2], 0, 1) == 1)
    idx = _owned_order(file_index, owned)
    rows = np.empty((len(idx), SYNAPSES.width), dtype=np.int32)
    fi, keys, channel = file_index[idx], np.empty(len(idx), np.int64), np.empty(len(idx), np.int64)
    listed = []
    # Slices that stay in cache; the columns are computed directly in output order.
    for a in range(0, len(idx), ROW_SLICE):
        sl = idx[a:a + ROW_SLICE]
        rp, f, ob = r_pair[sl], file_index[sl], on_b[sl]
        out = rows[a:a + len(sl)]
        keys[a:a + len(sl)] = p["key"][rp]
        channel[a:a + len(sl)] = ch = p["g_type"][r_group[sl]]
        listed.append(_fill_synapse_rows(plan, p, out, rp, f, ob, ch, [x[sl] for x in w]))
    listed = np.unique(np.concatenate(listed)) if listed else np.zeros(0, np.int64)
    targets = np.unique(rows[fi == plan.projection_index, 1]).astype(np.int64)
    return rows, fi, keys, channel, listed, targets


def _fill_voxels(p, rp, ob, w1, rows, col):
    """Voxel coordinates into ``rows[:, col:col + 3]``: the pair's base voxel (its other-side base
    for rows outside the dest's home, ``ob``), jittered by the words ``w1``."""
    base = p["base_a"][rp]
    if ob.any():
        base[ob] = p["base_b"][rp[ob]]
    scale = p["jitter_scale"][rp]
    for axis in range(3):
        rows[:, col + axis] = base[:, axis] + _jitter(w1, axis, scale)


def _fill_synapse_rows(plan, p, rows, rp, fi, ob, channel, w):
    """Fill a slice of synapse rows; return (file, dest) codes of rows outside the dest's home."""
    w0, w1, w2, w3 = w
    dest = p["dest"][rp]
    rows[:, 0] = p["src"][rp]
    rows[:, 1] = dest
    _fill_voxels(p, rp, ob, w1, rows, 2)
    rows[:, 5] = plan.file_hid_column[fi]
    rows[:, 6] = channel
    rows[:, 7] = np.maximum(0, p["axon_base"][rp] + bits(w2, 1, 6) - 32)
    # Distance and section: near the pair's own (mostly distal, where most
    # dendrite is); a quarter of the rows on another section.
    near = p["distance"][rp] + (bits(w2, 16, 8) - bits(w2, 24, 8)) * (DISTANCE_SPREAD / 256)
    rows[:, 8] = np.clip(near, 0, plan.max_distance_um[dest]).astype(np.int64)
    other = bits(w2, 32, 2) == 0
    section = p["section"][rp]
    if other.any():
        section[other] = 1 + ((bits(w0[other], 0, 16) * plan.sections[plan.neuron_type[dest[other]]]) >> 16)
    rows[:, 9] = section
    rows[:, 10] = (bits(w0, 16, 16) * 1001) >> 16
    z = (bits(w3, 0, 16) - bits(w3, 16, 16)) * (math.sqrt(6.0) / 65536)
    log_cond = plan.channel_log_mu[channel] + plan.channel_log_sigma[channel] * z
    rows[:, 11] = np.maximum(np.rint(np.exp(log_cond) * 1e12), plan.channel_floor[channel])
    rows[:, 12] = (bits(w0, 32, 32) * 1_000_000) >> 32
    listing = ob & (fi != plan.projection_index) & (fi != p["home"][rp])
    return fi[listing] * plan.num_neurons + dest[listing]


def gap_junction_rows(plan, p, row_offset, owned):
    """Like :func:`synapse_rows`, for gap junctions: ``(rows, file_index, keys, listed)``."""
    num_rows = int(p["rows"].sum())
    w = plan.streams.words(STREAM_GJ_ROW, row_offset, num_rows, GJ_ROW_WORDS)
    _, r_pair, on_b, file_index = _expand_rows(p["rows"], None, p["split"], p["home"], p["side_b"],
                                               bits(w[2], 0, 1) == 1)
    idx = _owned_order(file_index, owned)
    rp, fi, ob = r_pair[idx], file_index[idx], on_b[idx]
    w0, w1, w3 = w[0][idx], w[1][idx], w[3][idx]
    dest = p["dest"][rp]
    rows = np.empty((len(idx), GAP_JUNCTIONS.width), dtype=np.int32)
    rows[:, 0] = p["src"][rp]
    rows[:, 1] = dest
    rows[:, 2] = (bits(w0, 0, 16) * DENDRITE_SECTIONS[FS]) >> 16
    rows[:, 3] = (bits(w0, 16, 16) * DENDRITE_SECTIONS[FS]) >> 16
    rows[:, 4] = (bits(w0, 32, 16) * 1001) >> 16
    rows[:, 5] = (bits(w0, 48, 16) * 1001) >> 16
    _fill_voxels(p, rp, ob, w1, rows, 6)
    rows[:, 9] = plan.file_hid_column[fi]
    mu, sigma = plan.gap_junction_log_mu_sigma
    z = (bits(w3, 0, 16) - bits(w3, 16, 16)) * (math.sqrt(6.0) / 65536)
    rows[:, 10] = np.rint(np.exp(mu + sigma * z) * 1e12)
    listing = ob & (fi != p["home"][rp])
    listed = np.unique(fi[listing] * plan.num_neurons + dest[listing])
    return rows, fi, p["key"][rp], listed


def lookup_runs(file_index, keys, channel, max_channel_type_id):
    """Lookup rows (unique_id, start, end) of rows sorted by file: one per run of one (src, dest)."""
    n = len(keys)
    change = np.empty(n, dtype=bool)
    change[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    change[1:] |= file_index[1:] != file_index[:-1]
    starts = np.flatnonzero(change)
    lookup = np.empty((len(starts), 3), dtype=np.int64)
    lookup[:, 0] = keys[starts] * max_channel_type_id + channel[starts]
    lookup[:, 1] = starts
    lookup[:, 2] = np.append(starts[1:], n)
    return file_index[starts], lookup
