// gpuprune: the kernels of the device engine (gpuprune/device/program.py drives them).
//
// One chunk = every putative row onto a dest-neuron range, in file order.  The host
// sorts rows by the packed key these kernels build (cupy.argsort: a stable radix
// sort), finds group starts with cupy.flatnonzero, and launches, in this order:
//   gp_build_keys      one thread per row    key (dest - dest_lo, src, type), input checks
//   gp_group_starts    one thread per row    1 where a new group starts in sorted order; checks the sort
//   gp_group_init      one thread per group  size, parameter set, a3, r check, pathway code
//   gp_row_rules       one thread per row    f1 and distance rule
//   gp_group_limits    one thread per group  soft_max and mu2
//   gp_cluster_counts  one thread per row    cluster pruning: neighbour counts
//   gp_cluster_select  one thread per row    cluster pruning: keep the n most clustered
//   gp_gather          one thread per kept row  compaction + shared parameter id
//   gp_stats           one thread per group  per-pathway counts
// and, for tuning (gpuprune/tune/device.py), on its own:
//   gp_tune_kept       one thread per group  kept rows of P parameter sets (tune.cuh)
// Every kernel takes one argument, the struct gp_args generated from gpuprune/device/abi.py
// (fields a kernel does not use may be null).  Rule logic lives in prune_rules.cuh.  No
// kernel uses shared memory, warp primitives or barriers; the only cross-thread effects are
// integer atomics whose result does not depend on thread order (atomicOr of error bits,
// atomicMin of the first bad group, atomicAdd of counts), so running the grid on the host
// (gpuprune.device.emulated) gives the same bytes.
//
// Compile-time constants and the structs come from the block gpuprune.device.kernels.define_block()
// generates, placed before this file (kernels/gp_defines.cuh for standalone builds).
#include "gp_defines.cuh"
#include "philox.cuh"
#include "prune_rules.cuh"
#include "tune.cuh"

#define GP_THREAD_INDEX() ((gp_i64)blockIdx.x * (gp_i64)blockDim.x + (gp_i64)threadIdx.x)

// Philox key of every neuron 0 .. num_neurons-1 (once per run).
extern "C" __global__ void gp_neuron_keys(const gp_args a) {
    const gp_i64 d = GP_THREAD_INDEX();
    if (d >= a.num_neurons) {
        return;
    }
    gp_neuron_key(a.seed, (gp_u32)d, &a.key0[d], &a.key1[d]);
}

// Packed group key per row: (dest - dest_lo) << dest_shift | src << 16 | type, which
// sorts by (dest, src, type); dest_shift = 16 + bits(num_neurons - 1) and the host
// keeps the dest range small enough that the key fits 64 bits.  Rows naming neurons
// outside the chunk or the network, or types outside 0 .. 2**16-1, set error bits.
extern "C" __global__ void gp_build_keys(const gp_args a) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= a.n) {
        return;
    }
    gp_i64 src, dest, type;
    gp_row_fields(a.rows, a.width, i, a.is_synapse, &src, &dest, &type);
    gp_u32 bad = 0;
    if (dest < a.dest_lo || dest >= a.dest_hi || src < 0 || src >= a.num_neurons) {
        bad |= GP_ERR_NEURON;
    }
    if (type < 0 || type >= 65536) {
        bad |= GP_ERR_TYPE;
    }
    if (bad) {
        atomicOr(a.error, bad);
        a.key[i] = 0;
        return;
    }
    a.key[i] = ((gp_u64)(dest - a.dest_lo) << a.dest_shift) | ((gp_u64)src << 16) | (gp_u64)type;
}

// 1 where sorted position i starts a group (its key differs from the previous one).  A key
// smaller than the previous one means the sort failed (e.g. CuPy <= 14.0 sorting into a NULL
// workspace after an allocation failure): GP_ERR_UNSORTED, so a wrong order never passes.
extern "C" __global__ void gp_group_starts(const gp_args a) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= a.n) {
        return;
    }
    const gp_i64 r = a.order[i];
    if (r < 0 || r >= a.n) {
        atomicOr(a.error, GP_ERR_UNSORTED);
        a.is_start[i] = 1;
        return;
    }
    if (i == 0) {
        a.is_start[i] = 1;
        return;
    }
    const gp_i64 q = a.order[i - 1];
    const gp_u64 prev = (q >= 0 && q < a.n) ? a.key[q] : 0;
    if (a.key[r] < prev) {
        atomicOr(a.error, GP_ERR_UNSORTED);
    }
    a.is_start[i] = a.key[r] != prev ? 1 : 0;
}

// Per group: its size, parameter set, a3 decision, pathway code, the group id of its
// rows, and (distance-pruned groups) the r = d / max_soma_distance_dend check.
extern "C" __global__ void gp_group_init(const gp_args a) {
    const gp_i64 g = GP_THREAD_INDEX();
    if (g >= a.n_groups) {
        return;
    }
    const gp_i64 start = a.starts[g];
    const gp_i64 end = g + 1 < a.n_groups ? a.starts[g + 1] : a.n;
    a.size[g] = end - start;
    for (gp_i64 i = start; i < end; ++i) {
        a.row_group[i] = g;
    }
    gp_i64 src, dest, type;
    gp_row_fields(a.rows, a.width, a.order[start], a.is_synapse, &src, &dest, &type);
    const gp_i64 ch = type < 0 ? 0 : (type > a.max_channel ? a.max_channel : type);
    a.code[g] = ((gp_i64)a.neuron_type[src] * a.code_types + a.neuron_type[dest]) * (gp_i64)(a.max_channel + 1)
                + ch;
    const gp_rules& R = a.rules;
    const gp_i32 p = gp_parameter_set(R, a.neuron_type[src], a.neuron_type[dest], type,
                                      a.unit[src] != a.unit[dest]);
    a.pset[g] = p;
    if (p < 0) {
        a.alive[g] = 0;
        return;
    }
    if (a.has_msd && R.dist_index[p] >= 0) {
        gp_i32 lo = a.rows[a.order[start] * (gp_i64)a.width + GP_COL_DIST], hi = lo;
        for (gp_i64 i = start + 1; i < end; ++i) {
            const gp_i32 c8 = a.rows[a.order[i] * (gp_i64)a.width + GP_COL_DIST];
            lo = c8 < lo ? c8 : lo;
            hi = c8 > hi ? c8 : hi;
        }
        if (!gp_relative_distance_ok(lo, hi, a.msd[dest])) {
            atomicMin(a.bad_group, (gp_u64)g);
        }
    }
    bool live = true;
    if (R.flags[p] & GP_HAS_A3) {
        double r_a3, r_mu2;
        gp_group_draws(a.key0[dest], a.key1[dest], (gp_u32)src, gp_type_word((gp_u32)type, a.kind), &r_a3,
                       &r_mu2);
        live = !gp_a3_drops(R, p, r_a3);
    }
    a.alive[g] = live ? 1 : 0;
}

// Per sorted row: rule 2 (f1 and distance) for rows of live groups.
extern "C" __global__ void gp_row_rules(const gp_args a) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= a.n) {
        return;
    }
    const gp_i64 g = a.row_group[i];
    if (!a.alive[g]) {
        a.keep[i] = 0;
        a.cand[i] = 0;
        return;
    }
    const gp_i64 r = a.order[i];
    gp_i64 src, dest, type;
    gp_row_fields(a.rows, a.width, r, a.is_synapse, &src, &dest, &type);
    gp_row_decide(a.rules, a.dist, a.pset[g], a.key0[dest], a.key1[dest], (gp_u32)src, (gp_u32)(i - a.starts[g]),
                  gp_type_word((gp_u32)type, a.kind), a.rows[r * (gp_i64)a.width + GP_COL_DIST], r, &a.keep[i],
                  &a.cand[i]);
}

// Per live group: rules 3 and 4 (soft_max, mu2); records the rows kept and whether
// cluster pruning (rule 5) applies.
extern "C" __global__ void gp_group_limits(const gp_args a) {
    const gp_i64 g = GP_THREAD_INDEX();
    if (g >= a.n_groups) {
        return;
    }
    a.cluster[g] = 0;
    if (!a.alive[g]) {
        a.n_keep[g] = 0;
        return;
    }
    const gp_i64 start = a.starts[g];
    gp_i64 src, dest, type;
    gp_row_fields(a.rows, a.width, a.order[start], a.is_synapse, &src, &dest, &type);
    const gp_i32 p = a.pset[g];
    const gp_i64 kept = gp_soft_max_mu2(a.rules, p, a.key0[dest], a.key1[dest], (gp_u32)src,
                                        gp_type_word((gp_u32)type, a.kind), a.keep + start, a.size[g]);
    a.n_keep[g] = kept;
    a.cluster[g] = ((a.rules.flags[p] & GP_CLUSTER) && kept > 0) ? 1 : 0;
}

// Per sorted row of a cluster-pruned group: its neighbour count among the candidates.
extern "C" __global__ void gp_cluster_counts(const gp_args a) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= a.n) {
        return;
    }
    const gp_i64 g = a.row_group[i];
    if (!a.cluster[g] || !a.cand[i]) {
        a.count[i] = 0;
        return;
    }
    a.count[i] = gp_cluster_count(a.rows, a.width, a.order, a.cand, a.starts[g], a.size[g], i,
                                  a.cluster_threshold);
}

// Per sorted row of a cluster-pruned group: keep the n_keep most clustered candidates.
extern "C" __global__ void gp_cluster_select(const gp_args a) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= a.n) {
        return;
    }
    const gp_i64 g = a.row_group[i];
    if (!a.cluster[g]) {
        return;
    }
    a.keep[i] = (a.cand[i] && gp_cluster_keeps(a.count, a.cand, a.starts[g], a.size[g], i, a.n_keep[g])) ? 1 : 0;
}

// Compaction: output row j is the kept row kept[j] (sorted position); with parameter-id
// sharing, synapses take the parameter id of their group's first row in file order.
extern "C" __global__ void gp_gather(const gp_args a) {
    const gp_i64 j = GP_THREAD_INDEX();
    if (j >= a.m) {
        return;
    }
    const gp_i64 i = a.kept[j];
    const gp_i32* src = a.rows + a.order[i] * (gp_i64)a.width;
    gp_i32* dst = a.out + j * (gp_i64)a.width;
    for (gp_i32 c = 0; c < a.width; ++c) {
        dst[c] = src[c];
    }
    if (a.share_parameter_id) {
        dst[GP_COL_PARAM] = a.rows[a.order[a.starts[a.row_group[i]]] * (gp_i64)a.width + GP_COL_PARAM];
    }
}

// Per-pathway counts (engine.ChunkResult.stats): putative rows, kept rows, putative
// pairs, connected pairs; stats is (4, code_size) row-major.
extern "C" __global__ void gp_stats(const gp_args a) {
    const gp_i64 g = GP_THREAD_INDEX();
    if (g >= a.n_groups) {
        return;
    }
    const gp_i64 c = a.code[g];
    const gp_i64 cs = a.code_size;
    atomicAdd(&a.stats[c], (gp_u64)a.size[g]);
    atomicAdd(&a.stats[cs + c], (gp_u64)a.n_keep[g]);
    atomicAdd(&a.stats[2 * cs + c], (gp_u64)1);
    if (a.n_keep[g] > 0) {
        atomicAdd(&a.stats[3 * cs + c], (gp_u64)1);
    }
}

// Kept rows per group of a tuned pathway for P parameter sets in one launch (tune.cuh): thread i
// takes group i % n_groups (neighbouring threads, neighbouring groups) and the (i / n_groups)-th
// tile of sets_per_thread sets.
extern "C" __global__ void gp_tune_kept(const gp_args a) {
    const gp_i64 i = GP_THREAD_INDEX();
    const gp_i64 tile = a.tune.sets_per_thread;
    const gp_i64 tiles = (a.tune.n_sets + tile - 1) / tile;
    if (a.tune.n_groups == 0 || i >= a.tune.n_groups * tiles) {
        return;
    }
    const gp_i64 g = i % a.tune.n_groups;
    const gp_i64 p0 = (i / a.tune.n_groups) * tile;
    const gp_i64 p1 = p0 + tile < a.tune.n_sets ? p0 + tile : a.tune.n_sets;
    gp_tune_group(a.tune, g, p0, p1);
}
