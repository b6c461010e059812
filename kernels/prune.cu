// gpuprune: the kernels of the device engine (gpuprune/cuda.py drives them).
//
// One chunk = every putative row onto a dest-neuron range, in file order.  The host
// sorts rows by the packed key these kernels build (cupy.argsort: a stable radix
// sort), finds group starts with cupy.flatnonzero, and launches, in this order:
//   gp_build_keys      one thread per row    key (dest - dest_lo, src, type), input checks
//   gp_group_starts    one thread per row    1 where a new group starts in sorted order
//   gp_group_init      one thread per group  size, parameter set, a3, r check, pathway code
//   gp_row_rules       one thread per row    f1 and distance rule
//   gp_group_limits    one thread per group  soft_max and mu2
//   gp_cluster_counts  one thread per row    cluster pruning: neighbour counts
//   gp_cluster_select  one thread per row    cluster pruning: keep the n most clustered
//   gp_gather          one thread per kept row  compaction + shared parameter id
//   gp_stats           one thread per group  per-pathway counts
// Rule logic lives in prune_rules.cuh.  No kernel uses shared memory, warp
// primitives or barriers; the only cross-thread effects are integer atomics whose
// result does not depend on thread order (atomicOr of error bits, atomicMin of the
// first bad group, atomicAdd of counts), so running the grid on the host
// (gpuprune._emulate) gives the same bytes.
//
// Compile-time constants (columns, flags, Philox tags) come from the #define block
// gpuprune.cuda.kernel_defines() generates, placed before this file.
#include "gp_common.cuh"
#include "philox.cuh"
#include "prune_rules.cuh"

#define GP_THREAD_INDEX() ((gp_i64)blockIdx.x * (gp_i64)blockDim.x + (gp_i64)threadIdx.x)

// Philox key of every neuron 0 .. n-1 (once per run).
extern "C" __global__ void gp_neuron_keys(gp_i64 n, gp_u64 seed, gp_u32* key0, gp_u32* key1) {
    const gp_i64 d = GP_THREAD_INDEX();
    if (d >= n) {
        return;
    }
    gp_neuron_key(seed, (gp_u32)d, &key0[d], &key1[d]);
}

// Packed group key per row: (dest - dest_lo) << dest_shift | src << 16 | type, which
// sorts by (dest, src, type); dest_shift = 16 + bits(num_neurons - 1) and the host
// keeps the dest range small enough that the key fits 64 bits.  Rows naming neurons
// outside the chunk or the network, or types outside 0 .. 2**16-1, set error bits.
extern "C" __global__ void gp_build_keys(gp_i64 n, const gp_i32* rows, gp_i32 width, gp_i32 is_synapse,
                                         gp_i64 dest_lo, gp_i64 dest_hi, gp_i64 num_neurons,
                                         gp_i32 dest_shift, gp_u64* key, gp_u32* error) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= n) {
        return;
    }
    gp_i64 src, dest, type;
    gp_row_fields(rows, width, i, is_synapse, &src, &dest, &type);
    gp_u32 bad = 0;
    if (dest < dest_lo || dest >= dest_hi || src < 0 || src >= num_neurons) {
        bad |= GP_ERR_NEURON;
    }
    if (type < 0 || type >= 65536) {
        bad |= GP_ERR_TYPE;
    }
    if (bad) {
        atomicOr(error, bad);
        key[i] = 0;
        return;
    }
    key[i] = ((gp_u64)(dest - dest_lo) << dest_shift) | ((gp_u64)src << 16) | (gp_u64)type;
}

// 1 where sorted position i starts a group (its key differs from the previous one).
extern "C" __global__ void gp_group_starts(gp_i64 n, const gp_u64* key, const gp_i64* order,
                                           gp_u8* is_start) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= n) {
        return;
    }
    is_start[i] = (i == 0 || key[order[i]] != key[order[i - 1]]) ? 1 : 0;
}

// Per group: its size, parameter set, a3 decision, pathway code, the group id of its
// rows, and (distance-pruned groups) the r = d / max_soma_distance_dend check.
extern "C" __global__ void gp_group_init(gp_i64 n_groups, gp_i64 n, const gp_i64* starts,
                                         const gp_i64* order, const gp_i32* rows, gp_i32 width,
                                         gp_i32 is_synapse, gp_u32 kind, const gp_i32* lut,
                                         gp_i32 lut_types, gp_i32 lut_channels, const gp_u8* flags,
                                         const double* a3, const gp_i32* dist_index,
                                         const gp_i32* neuron_type, const gp_i64* unit,
                                         const double* msd, gp_i32 has_msd, const gp_u32* key0,
                                         const gp_u32* key1, gp_i32 code_types, gp_i32 max_channel,
                                         gp_i64* size, gp_i32* pset, gp_u8* alive, gp_i64* code,
                                         gp_i64* row_group, gp_u64* bad_group) {
    const gp_i64 g = GP_THREAD_INDEX();
    if (g >= n_groups) {
        return;
    }
    const gp_i64 start = starts[g];
    const gp_i64 end = g + 1 < n_groups ? starts[g + 1] : n;
    size[g] = end - start;
    for (gp_i64 i = start; i < end; ++i) {
        row_group[i] = g;
    }
    gp_i64 src, dest, type;
    gp_row_fields(rows, width, order[start], is_synapse, &src, &dest, &type);
    const gp_i64 ch = type < 0 ? 0 : (type > max_channel ? max_channel : type);
    code[g] = ((gp_i64)neuron_type[src] * code_types + neuron_type[dest]) * (gp_i64)(max_channel + 1) + ch;

    gp_rules R = {};
    R.lut = lut;
    R.lut_types = lut_types;
    R.lut_channels = lut_channels;
    R.flags = flags;
    R.a3 = a3;
    const gp_i32 p = gp_parameter_set(R, neuron_type[src], neuron_type[dest], type, unit[src] != unit[dest]);
    pset[g] = p;
    if (p < 0) {
        alive[g] = 0;
        return;
    }
    if (has_msd && dist_index[p] >= 0) {
        gp_i32 lo = rows[order[start] * (gp_i64)width + GP_COL_DIST], hi = lo;
        for (gp_i64 i = start + 1; i < end; ++i) {
            const gp_i32 c8 = rows[order[i] * (gp_i64)width + GP_COL_DIST];
            lo = c8 < lo ? c8 : lo;
            hi = c8 > hi ? c8 : hi;
        }
        if (!gp_relative_distance_ok(lo, hi, msd[dest])) {
            atomicMin(bad_group, (gp_u64)g);
        }
    }
    bool live = true;
    if (flags[p] & GP_HAS_A3) {
        double r_a3, r_mu2;
        gp_group_draws(key0[dest], key1[dest], (gp_u32)src, gp_type_word((gp_u32)type, kind), &r_a3, &r_mu2);
        live = !gp_a3_drops(R, p, r_a3);
    }
    alive[g] = live ? 1 : 0;
}

// Per sorted row: rule 2 (f1 and distance) for rows of live groups.
extern "C" __global__ void gp_row_rules(gp_i64 n, const gp_i64* order, const gp_i32* rows, gp_i32 width,
                                        gp_i32 is_synapse, gp_u32 kind, const gp_i64* row_group,
                                        const gp_i64* starts, const gp_i32* pset, const gp_u8* alive,
                                        const gp_u8* flags, const double* f1, const gp_i32* dist_index,
                                        const gp_i32* dist_mode, const gp_i64* dist_lo,
                                        const gp_i64* dist_offset, const double* dist_p,
                                        const gp_u32* key0, const gp_u32* key1, gp_u8* keep,
                                        gp_u8* cand) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= n) {
        return;
    }
    const gp_i64 g = row_group[i];
    if (!alive[g]) {
        keep[i] = 0;
        cand[i] = 0;
        return;
    }
    const gp_i64 r = order[i];
    gp_i64 src, dest, type;
    gp_row_fields(rows, width, r, is_synapse, &src, &dest, &type);
    gp_rules R = {};
    R.flags = flags;
    R.f1 = f1;
    R.dist_index = dist_index;
    gp_dist_tables D;
    D.mode = dist_mode;
    D.lo = dist_lo;
    D.offset = dist_offset;
    D.p = dist_p;
    gp_row_decide(R, D, pset[g], key0[dest], key1[dest], (gp_u32)src, (gp_u32)(i - starts[g]),
                  gp_type_word((gp_u32)type, kind), rows[r * (gp_i64)width + GP_COL_DIST], r, &keep[i],
                  &cand[i]);
}

// Per live group: rules 3 and 4 (soft_max, mu2); records the rows kept and whether
// cluster pruning (rule 5) applies.
extern "C" __global__ void gp_group_limits(gp_i64 n_groups, const gp_i64* starts, const gp_i64* size,
                                           const gp_i64* order, const gp_i32* rows, gp_i32 width,
                                           gp_i32 is_synapse, gp_u32 kind, const gp_i32* pset,
                                           const gp_u8* alive, const gp_u8* flags, const double* soft_max,
                                           const double* p_keep, const double* p_mu, gp_i64 table_stride,
                                           const gp_u32* key0, const gp_u32* key1, gp_u8* keep,
                                           gp_i64* n_keep, gp_u8* cluster) {
    const gp_i64 g = GP_THREAD_INDEX();
    if (g >= n_groups) {
        return;
    }
    cluster[g] = 0;
    if (!alive[g]) {
        n_keep[g] = 0;
        return;
    }
    const gp_i64 start = starts[g];
    gp_i64 src, dest, type;
    gp_row_fields(rows, width, order[start], is_synapse, &src, &dest, &type);
    gp_rules R = {};
    R.flags = flags;
    R.soft_max = soft_max;
    R.p_keep = p_keep;
    R.p_mu = p_mu;
    R.table_stride = table_stride;
    const gp_i32 p = pset[g];
    const gp_i64 kept = gp_soft_max_mu2(R, p, key0[dest], key1[dest], (gp_u32)src,
                                        gp_type_word((gp_u32)type, kind), keep + start, size[g]);
    n_keep[g] = kept;
    cluster[g] = ((flags[p] & GP_CLUSTER) && kept > 0) ? 1 : 0;
}

// Per sorted row of a cluster-pruned group: its neighbour count among the candidates.
extern "C" __global__ void gp_cluster_counts(gp_i64 n, const gp_i64* order, const gp_i32* rows,
                                             gp_i32 width, const gp_i64* row_group, const gp_i64* starts,
                                             const gp_i64* size, const gp_u8* cluster, const gp_u8* cand,
                                             double threshold, gp_i64* count) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= n) {
        return;
    }
    const gp_i64 g = row_group[i];
    if (!cluster[g] || !cand[i]) {
        count[i] = 0;
        return;
    }
    count[i] = gp_cluster_count(rows, width, order, cand, starts[g], size[g], i, threshold);
}

// Per sorted row of a cluster-pruned group: keep the n_keep most clustered candidates.
extern "C" __global__ void gp_cluster_select(gp_i64 n, const gp_i64* row_group, const gp_i64* starts,
                                             const gp_i64* size, const gp_u8* cluster, const gp_u8* cand,
                                             const gp_i64* count, const gp_i64* n_keep, gp_u8* keep) {
    const gp_i64 i = GP_THREAD_INDEX();
    if (i >= n) {
        return;
    }
    const gp_i64 g = row_group[i];
    if (!cluster[g]) {
        return;
    }
    keep[i] = (cand[i] && gp_cluster_keeps(count, cand, starts[g], size[g], i, n_keep[g])) ? 1 : 0;
}

// Compaction: output row j is the kept row kept[j] (sorted position); with parameter-id
// sharing, synapses take the parameter id of their group's first row in file order.
extern "C" __global__ void gp_gather(gp_i64 m, const gp_i64* kept, const gp_i64* order, const gp_i32* rows,
                                     gp_i32 width, const gp_i64* row_group, const gp_i64* starts,
                                     gp_i32 share_parameter_id, gp_i32* out) {
    const gp_i64 j = GP_THREAD_INDEX();
    if (j >= m) {
        return;
    }
    const gp_i64 i = kept[j];
    const gp_i32* src = rows + order[i] * (gp_i64)width;
    gp_i32* dst = out + j * (gp_i64)width;
    for (gp_i32 c = 0; c < width; ++c) {
        dst[c] = src[c];
    }
    if (share_parameter_id) {
        dst[GP_COL_PARAM] = rows[order[starts[row_group[i]]] * (gp_i64)width + GP_COL_PARAM];
    }
}

// Per-pathway counts (engine.ChunkResult.stats): putative rows, kept rows, putative
// pairs, connected pairs; stats is (4, code_size) row-major.
extern "C" __global__ void gp_stats(gp_i64 n_groups, const gp_i64* code, const gp_i64* size,
                                    const gp_i64* n_keep, gp_i64 code_size, gp_u64* stats) {
    const gp_i64 g = GP_THREAD_INDEX();
    if (g >= n_groups) {
        return;
    }
    const gp_i64 c = code[g];
    atomicAdd(&stats[c], (gp_u64)size[g]);
    atomicAdd(&stats[code_size + c], (gp_u64)n_keep[g]);
    atomicAdd(&stats[2 * code_size + c], (gp_u64)1);
    if (n_keep[g] > 0) {
        atomicAdd(&stats[3 * code_size + c], (gp_u64)1);
    }
}
