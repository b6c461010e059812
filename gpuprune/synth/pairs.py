"""Neuron pairs and their (pair, channel type) groups, per block of dest neurons.

Each dest draws a number of partner slots; each slot a presynaptic type and neuron.  A pair uses
the draws of its first slot: its channel types, the files its rows lie in, how many rows each
group has, and where in space and on the dendrite its synapses sit.
"""

import math

import numpy as np

from gpuprune.synth.config import (
    FS,
    GAP_JUNCTION_PARTNERS_MEAN,
    HYPER_VOXEL_SIZE,
    P_BOTH_CHANNELS,
    P_PROJECTION_MIXED,
    P_PROJECTION_PRIMARY,
    P_SPLIT_GAP_JUNCTIONS,
)
from gpuprune.synth.neurons import NEURON_BLOCK
from gpuprune.synth.streams import (
    GJ_SLOT_WORDS,
    SLOT_WORDS,
    STREAM_DEST,
    STREAM_GJ_DEST,
    STREAM_GJ_SLOT,
    STREAM_SLOT,
    below,
    bits,
    draw_sizes,
    uniform,
)

# Where a pair's synapses sit.
SIGMA_MAX = 10.0  # largest spread of a pair's synapses around its centre, voxels
CENTRE_MARGIN = 25  # > SIGMA_MAX * sqrt(6): jitter never leaves the hyper voxel


def _centres(plan, words, side, home):
    """Global voxel coordinates of a per-pair cluster centre inside the hyper voxel of ``side``.

    The centre keeps CENTRE_MARGIN voxels from the hyper voxel's faces, so the
    jitter of at most CENTRE_MARGIN - 1 never leaves it.  Projection-file rows
    lie in the dest's home hyper voxel.
    """
    spatial = np.where(side == plan.projection_index, home, side)
    span = HYPER_VOXEL_SIZE - 2 * CENTRE_MARGIN
    local = np.stack([CENTRE_MARGIN + ((bits(words, 21 * i, 21) * span) >> 21) for i in range(3)], axis=1)
    return plan.file_voxel_lo[spatial] + local


def plan_synapse_pairs(plan, d0, d1, slot_offset):
    """Partner slots of dests d0..d1-1 and the (pair, channel type) groups they make."""
    N = plan.num_neurons
    dests = np.arange(d0, d1, dtype=np.int64)
    post = plan.neuron_type[d0:d1].astype(np.int64)
    (wd,) = plan.streams.words(STREAM_DEST, d0, d1 - d0, 1)
    slots = np.floor(plan.mean_slots[post] * (0.5 + uniform(wd, 32, 32)) + uniform(wd, 0, 32))
    slots = slots.astype(np.int64)
    num_slots = int(slots.sum())
    slot_dest = np.repeat(dests, slots)
    slot_post = np.repeat(post, slots)
    s = plan.streams.words(STREAM_SLOT, slot_offset, num_slots, SLOT_WORDS)

    pre = (uniform(s[0])[:, None] >= plan.partner_thresholds[slot_post]).sum(axis=1)
    src = plan.type_start[pre] + below(uniform(s[1]), plan.type_counts[pre])
    candidates = np.flatnonzero(src != slot_dest)  # no autapses
    keys, first = np.unique(slot_dest[candidates] * N + src[candidates], return_index=True)
    slot = candidates[first]  # the slot whose draws a pair uses: its first
    p = {"num_slots": num_slots, "key": keys, "dest": keys // N, "src": keys % N}
    pair_post = slot_post[slot]
    pw = plan.pathway[pre[slot], pair_post]
    w2, w3 = s[2][slot], s[3][slot]

    # Channel types: two-channel pathways carry both, or one of the two.
    c0, c1 = plan.channel_first[pw], plan.channel_second[pw]
    two = c1 >= 0
    both = two & (uniform(w2, 0, 16) < P_BOTH_CHANNELS)
    pick_second = two & ~both & (bits(w2, 60, 1) == 1)
    first_type = np.where(pick_second, c1, c0)
    types_per_pair = 1 + both.astype(np.int64)

    # Where the rows go: the dest's home hyper voxel, sometimes also a neighbour.
    home = plan.home_file[p["dest"]].astype(np.int64)
    split = (uniform(w2, 16, 16) < plan.pathway_split[pw]) & (plan.neighbour_count[home] > 0)
    nb_pick = below(uniform(w2, 32, 16), np.maximum(plan.neighbour_count[home], 1))
    side_a = home.copy()
    side_b = np.where(split, plan.neighbours[home, nb_pick], home)
    if plan.projection:
        proj = plan.pathway_projection[pw]
        primary = proj & (uniform(w2, 48, 12) < P_PROJECTION_PRIMARY)
        mixed = proj & (uniform(w3, 0, 16) < P_PROJECTION_MIXED)
        side_a = np.where(primary, plan.projection_index, side_a)
        side_b = np.where(proj, np.where(primary, home, plan.projection_index), side_b)
        split = np.where(proj, mixed, split)

    # Groups, in canonical (dest, src, channel type) order.
    num_groups = int(types_per_pair.sum())
    g_pair = np.repeat(np.arange(len(keys)), types_per_pair)
    g_pos = np.arange(num_groups) - np.repeat(np.cumsum(types_per_pair) - types_per_pair, types_per_pair)
    g_type = np.where(g_pos == 0, first_type[g_pair], c1[g_pair])
    u_size = np.where(g_pos == 0, uniform(w3[g_pair], 16, 24), uniform(w3[g_pair], 40, 24))
    g_rows = draw_sizes(plan.group_sizes, u_size)
    # Some split pairs with both channels get >= 2 rows of each, so that both
    # hyper voxels hold both channel types: their runs then interleave.
    interleave = both & split & (bits(w2, 61, 1) == 1) & (side_a != plan.projection_index) \
        & (side_b != plan.projection_index)
    g_rows = np.where(interleave[g_pair], np.maximum(g_rows, 2), g_rows)

    p.update(home=home, split=split, side_a=side_a, side_b=side_b, g_pair=g_pair, g_type=g_type,
             g_rows=g_rows, num_interleaved=int(interleave.sum()),
             base_a=_centres(plan, s[4][slot], side_a, home), base_b=_centres(plan, s[5][slot], side_b, home),
             jitter_scale=(1.0 + (SIGMA_MAX - 1.0) * uniform(s[6][slot], 0, 16)) * (math.sqrt(6.0) / 1024),
             axon_base=20 + ((bits(s[6][slot], 16, 16) * 880) >> 16),
             # A pair's synapses tend to share a dendritic section and soma distance.
             section=1 + ((bits(s[6][slot], 32, 16) * plan.sections[pair_post]) >> 16),
             distance=np.sqrt(uniform(s[6][slot], 48, 16)) * (plan.max_distance_um[p["dest"]] + 1))
    rows_per_dest = np.bincount(p["dest"][g_pair] - d0, weights=g_rows, minlength=d1 - d0)
    p["rows_per_dest"] = rows_per_dest.astype(np.int64)
    return p


def plan_gap_junction_pairs(plan, d0, d1, slot_offset):
    """FS-FS gap junction pairs (src < dest) onto dests d0..d1-1."""
    N = plan.num_neurons
    fs_lo, fs_hi = int(plan.type_start[FS]), int(plan.type_start[FS] + plan.type_counts[FS])
    lo, hi = max(d0, fs_lo + 1), min(d1, fs_hi)
    dests = np.arange(lo, max(lo, hi), dtype=np.int64)
    (wd,) = plan.streams.words(STREAM_GJ_DEST, lo, len(dests), 1)
    slots = below(uniform(wd), int(2 * GAP_JUNCTION_PARTNERS_MEAN) + 1)
    num_slots = int(slots.sum())
    slot_dest = np.repeat(dests, slots)
    s = plan.streams.words(STREAM_GJ_SLOT, slot_offset, num_slots, GJ_SLOT_WORDS)
    src = fs_lo + below(uniform(s[0]), slot_dest - fs_lo)
    keys, slot = np.unique(slot_dest * N + src, return_index=True)
    dest = keys // N
    home = plan.home_file[dest].astype(np.int64)
    split = (uniform(s[1][slot], 0, 16) < P_SPLIT_GAP_JUNCTIONS) & (plan.neighbour_count[home] > 0)
    nb_pick = below(uniform(s[1][slot], 16, 16), np.maximum(plan.neighbour_count[home], 1))
    side_b = np.where(split, plan.neighbours[home, nb_pick], home)
    return {"num_slots": num_slots, "key": keys, "dest": dest, "src": keys % N, "home": home,
            "split": split, "side_b": side_b,
            "rows": draw_sizes(plan.gap_junction_sizes, uniform(s[1][slot], 32, 32)),
            "base_a": _centres(plan, s[2][slot], home, home),
            "base_b": _centres(plan, s[3][slot], side_b, home),
            "jitter_scale": (1.0 + 4.0 * uniform(s[4][slot], 0, 16)) * (math.sqrt(6.0) / 1024)}


def dest_block(plan, d0, budget, slot_offset):
    """Plan the largest block of dests from d0 whose rows fit the budget (at least one dest)."""
    expected = max(1.0, 1.5 * plan.synapses_per_neuron)
    d1 = min(plan.num_neurons, d0 + max(1, min(NEURON_BLOCK, int(budget / expected))))
    pairs = plan_synapse_pairs(plan, d0, d1, slot_offset)
    cumulative = np.cumsum(pairs["rows_per_dest"])
    if d1 - d0 > 1 and cumulative[-1] > budget:
        d1 = d0 + max(1, int(np.searchsorted(cumulative, budget, side="right")))
        pairs = plan_synapse_pairs(plan, d0, d1, slot_offset)
    return d1, pairs
