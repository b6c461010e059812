// Host twins of the kernel headers' __host__ __device__ functions, for tests/test_host_twins.py.
//
// Built by the tests with nvcc (as CUDA source: the functions are then compiled
// through nvcc's __host__ __device__ path) and with a plain C++ compiler, after the
// generated #define block, and called through ctypes.  twin_decide applies the rules
// group by group, sequentially, with the same functions the kernels call.
#include "gp_common.cuh"
#include "philox.cuh"
#include "prune_rules.cuh"

extern "C" {

void twin_philox(gp_i64 n, const gp_u32* c0, const gp_u32* c1, const gp_u32* c2, const gp_u32* c3,
                 const gp_u32* k0, const gp_u32* k1, gp_u32* x0, gp_u32* x1, gp_u32* x2, gp_u32* x3) {
    for (gp_i64 i = 0; i < n; ++i) {
        const gp_x4 x = gp_philox4x32_10(c0[i], c1[i], c2[i], c3[i], k0[i], k1[i]);
        x0[i] = x.v0;
        x1[i] = x.v1;
        x2[i] = x.v2;
        x3[i] = x.v3;
    }
}

void twin_u01(gp_i64 n, const gp_u32* hi, const gp_u32* lo, double* out) {
    for (gp_i64 i = 0; i < n; ++i) {
        out[i] = gp_u01(hi[i], lo[i]);
    }
}

void twin_neuron_keys(gp_i64 n, gp_u64 seed, const gp_u32* dest, gp_u32* k0, gp_u32* k1) {
    for (gp_i64 i = 0; i < n; ++i) {
        gp_neuron_key(seed, dest[i], &k0[i], &k1[i]);
    }
}

void twin_row_draws(gp_i64 n, const gp_u32* k0, const gp_u32* k1, const gp_u32* src, const gp_u32* row,
                    const gp_u32* type, gp_u32 kind, double* r_f1, double* r_dist, double* r_sm) {
    for (gp_i64 i = 0; i < n; ++i) {
        const gp_u32 tword = gp_type_word(type[i], kind);
        gp_row_draws(k0[i], k1[i], src[i], row[i], tword, &r_f1[i], &r_dist[i]);
        r_sm[i] = gp_row_draw_soft_max(k0[i], k1[i], src[i], row[i], tword);
    }
}

void twin_group_draws(gp_i64 n, const gp_u32* k0, const gp_u32* k1, const gp_u32* src, const gp_u32* type,
                      gp_u32 kind, double* r_a3, double* r_mu2) {
    for (gp_i64 i = 0; i < n; ++i) {
        gp_group_draws(k0[i], k1[i], src[i], gp_type_word(type[i], kind), &r_a3[i], &r_mu2[i]);
    }
}

// Keep flags of every row, in sorted order, group after group.
void twin_decide(gp_i64 n, gp_i64 n_groups, const gp_i32* rows, gp_i32 width, gp_i32 is_synapse, gp_u32 kind,
                 const gp_i64* order, const gp_i64* starts, const gp_i32* lut, gp_i32 lut_types,
                 gp_i32 lut_channels, const gp_u8* flags, const double* f1, const double* soft_max,
                 const double* a3, const gp_i32* dist_index, const double* p_keep, const double* p_mu,
                 gp_i64 table_stride, const gp_i32* dist_mode, const gp_i64* dist_lo,
                 const gp_i64* dist_offset, const double* dist_p, const gp_i32* neuron_type,
                 const gp_i64* unit, gp_u64 seed, double threshold, gp_u8* keep, gp_u8* cand,
                 gp_i64* count) {
    gp_rules R;
    R.lut = lut;
    R.lut_types = lut_types;
    R.lut_channels = lut_channels;
    R.flags = flags;
    R.f1 = f1;
    R.soft_max = soft_max;
    R.a3 = a3;
    R.dist_index = dist_index;
    R.p_keep = p_keep;
    R.p_mu = p_mu;
    R.table_stride = table_stride;
    gp_dist_tables D;
    D.mode = dist_mode;
    D.lo = dist_lo;
    D.offset = dist_offset;
    D.p = dist_p;
    for (gp_i64 g = 0; g < n_groups; ++g) {
        const gp_i64 start = starts[g];
        const gp_i64 end = g + 1 < n_groups ? starts[g + 1] : n;
        gp_i64 src, dest, type;
        gp_row_fields(rows, width, order[start], is_synapse, &src, &dest, &type);
        gp_u32 k0, k1;
        gp_neuron_key(seed, (gp_u32)dest, &k0, &k1);
        const gp_u32 tword = gp_type_word((gp_u32)type, kind);
        const gp_i32 p = gp_parameter_set(R, neuron_type[src], neuron_type[dest], type, unit[src] != unit[dest]);
        bool alive = p >= 0;
        if (alive && (flags[p] & GP_HAS_A3)) {
            double r_a3, r_mu2;
            gp_group_draws(k0, k1, (gp_u32)src, tword, &r_a3, &r_mu2);
            alive = !gp_a3_drops(R, p, r_a3);
        }
        for (gp_i64 i = start; i < end; ++i) {
            keep[i] = 0;
            cand[i] = 0;
            count[i] = 0;
            if (alive) {
                const gp_i64 r = order[i];
                gp_row_decide(R, D, p, k0, k1, (gp_u32)src, (gp_u32)(i - start), tword,
                              rows[r * width + GP_COL_DIST], r, &keep[i], &cand[i]);
            }
        }
        if (!alive) {
            continue;
        }
        const gp_i64 kept = gp_soft_max_mu2(R, p, k0, k1, (gp_u32)src, tword, keep + start, end - start);
        if ((flags[p] & GP_CLUSTER) && kept > 0) {
            for (gp_i64 i = start; i < end; ++i) {
                count[i] = cand[i] ? gp_cluster_count(rows, width, order, cand, start, end - start, i, threshold) : 0;
            }
            for (gp_i64 i = start; i < end; ++i) {
                keep[i] = (cand[i] && gp_cluster_keeps(count, cand, start, end - start, i, kept)) ? 1 : 0;
            }
        }
    }
}

// Each rule's decision from an explicit draw and threshold (the table entry or parameter), so that
// a draw can be pinned at the exact threshold: out is (n, 4) = f1 keeps, a3 drops, soft_max keeps,
// mu2 drops, for parameter set 0 with f1 = a3 = p_mu(n) = threshold[i].
void twin_rules_at(gp_i64 n, const double* draw, const double* threshold, gp_u8* out) {
    for (gp_i64 i = 0; i < n; ++i) {
        const gp_u8 flags = GP_HAS_A3 | GP_HAS_MU2 | GP_HAS_SOFT_MAX;
        gp_rules R = {};
        R.flags = &flags;
        R.f1 = &threshold[i];
        R.a3 = &threshold[i];
        R.p_mu = &threshold[i];
        R.table_stride = 1;
        out[4 * i + 0] = gp_f1_keeps(R, 0, draw[i]) ? 1 : 0;
        out[4 * i + 1] = gp_a3_drops(R, 0, draw[i]) ? 1 : 0;
        out[4 * i + 2] = gp_soft_max_keeps(draw[i], threshold[i]) ? 1 : 0;
        out[4 * i + 3] = gp_mu2_drops(R, 0, 0, draw[i]) ? 1 : 0;
    }
}

}  // extern "C"
