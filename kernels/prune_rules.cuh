// gpuprune: the pruning rules of DESIGN §3 as host/device functions.
//
// Every decision compares a Philox draw with a parameter or with an entry of a
// table the host built (DESIGN §4): no transcendental function is evaluated here,
// and the only floating-point operations are comparisons, the exact-IEEE
// d = column 8 * 1e-6, r = d / max_soma_distance_dend, and a correctly rounded
// sqrt.  Compiled with --fmad=false, the device gives the bits the host gives.
//
// The functions touch one row or one group and never communicate across threads,
// so the kernels of prune.cu (one thread per row or per group) can run on the host
// unchanged (gpuprune.device.emulated) and the host-twin tests can call them directly.
#ifndef GPUPRUNE_PRUNE_RULES_CUH
#define GPUPRUNE_PRUNE_RULES_CUH

#include "gp_defines.cuh"
#include "philox.cuh"

// gp_rules (parameter-set and probability tables) and gp_dist_tables (p(d) tables of one chunk)
// are generated from gpuprune/device/abi.py into gp_defines.cuh; pointers a kernel does not use
// may be null.

// A row's (src, dest, channel type); gap junctions have type GP_GAP_JUNCTION_TYPE.
GP_HD void gp_row_fields(const gp_i32* rows, gp_i32 width, gp_i64 r, gp_i32 is_synapse, gp_i64* src,
                         gp_i64* dest, gp_i64* type) {
    const gp_i32* row = rows + r * (gp_i64)width;
    *src = row[GP_COL_SRC];
    *dest = row[GP_COL_DEST];
    *type = is_synapse ? (gp_i64)row[GP_COL_TYPE] : (gp_i64)GP_GAP_JUNCTION_TYPE;
}

// Parameter-set index of a group (-1: no pruning parameters, the group is dropped).
GP_HD gp_i32 gp_parameter_set(const gp_rules& R, gp_i32 pre_type, gp_i32 post_type, gp_i64 channel,
                              bool other_unit) {
    if (channel < 0 || channel >= R.lut_channels) {
        return -1;
    }
    const gp_i64 cell = (((gp_i64)pre_type * R.lut_types + post_type) * R.lut_channels + channel) * 2;
    return R.lut[cell + (other_unit ? 1 : 0)];
}

// Each rule's decision from its draw, on its own, so that tests can pin a draw at the exact
// threshold (tests/device/test_host_twins.py): the comparisons are those of the NumPy engine.

// The *_at forms take the parameter or table entry itself (the batched evaluation of
// tune.cuh calls them); the others look it up in the parameter set p.

// Rule 1 (a3): drop the whole group if r_a3 > a3.
GP_HD bool gp_a3_drops_at(double r_a3, double a3) {
    return r_a3 > a3;
}

GP_HD bool gp_a3_drops(const gp_rules& R, gp_i32 p, double r_a3) {
    return (R.flags[p] & GP_HAS_A3) && gp_a3_drops_at(r_a3, R.a3[p]);
}

// Rule 2 (f1): a row stays if r_f1 < f1.
GP_HD bool gp_f1_keeps_at(double r_f1, double f1) {
    return r_f1 < f1;
}

GP_HD bool gp_f1_keeps(const gp_rules& R, gp_i32 p, double r_f1) {
    return gp_f1_keeps_at(r_f1, R.f1[p]);
}

// Rule 2 (distance): a row stays if r_dist < p(d).
GP_HD bool gp_distance_keeps(double r_dist, double p_d) {
    return r_dist < p_d;
}

// Rule 3 (soft_max): a kept row stays if its draw is below the keep probability p_keep(n).
GP_HD bool gp_soft_max_keeps(double r_soft_max, double p_keep) {
    return r_soft_max < p_keep;
}

// Rule 4 (mu2): drop the group of n kept rows if p_mu(n) < r_mu2.
GP_HD bool gp_mu2_drops_at(double p_mu, double r_mu2) {
    return p_mu < r_mu2;
}

GP_HD bool gp_mu2_drops(const gp_rules& R, gp_i32 p, gp_i64 n, double r_mu2) {
    return gp_mu2_drops_at(R.p_mu[(gp_i64)p * R.table_stride + n], r_mu2);
}

// r = d / max_soma_distance_dend must lie in 0..1 for every row of a distance-pruned
// group; division by a positive or negative number is monotonic, so the smallest and
// largest column-8 values decide (a NaN fails, as in the NumPy engine).
GP_HD bool gp_relative_distance_ok(gp_i32 c8_min, gp_i32 c8_max, double msd) {
    const double r_lo = ((double)c8_min * 1e-6) / msd;
    const double r_hi = ((double)c8_max * 1e-6) / msd;
    return r_lo >= 0.0 && r_hi <= 1.0;
}

// p(d) of a row from the host-side table of expression e.
GP_HD double gp_distance_probability(const gp_dist_tables& D, gp_i32 e, gp_i32 c8, gp_i64 file_row) {
    if (D.mode[e] == GP_DIST_DENSE) {
        return D.p[D.offset[e] + ((gp_i64)c8 - D.lo[e])];
    }
    return D.p[D.offset[e] + file_row];
}

// Rule 2 for row k of a live group with parameter set p: keep if r_f1 < f1 and, with
// distance pruning, r_dist < p(d).  `cand` tells cluster pruning whether the row
// passed the distance test (every row does without distance pruning).
GP_HD void gp_row_decide(const gp_rules& R, const gp_dist_tables& D, gp_i32 p, gp_u32 k0, gp_u32 k1,
                         gp_u32 src, gp_u32 k, gp_u32 tword, gp_i32 c8, gp_i64 file_row, gp_u8* keep,
                         gp_u8* cand) {
    if (!(R.flags[p] & GP_ROW_DRAW)) {  // f1 >= 1 and no distance rule: every row stays
        *keep = 1;
        *cand = 1;
        return;
    }
    double r_f1, r_dist;
    gp_row_draws(k0, k1, src, k, tword, &r_f1, &r_dist);
    bool ok = gp_f1_keeps(R, p, r_f1);
    bool passed = true;
    const gp_i32 e = R.dist_index[p];
    if (e >= 0) {
        passed = gp_distance_keeps(r_dist, gp_distance_probability(D, e, c8, file_row));
        ok = ok && passed;
    }
    *keep = ok ? 1 : 0;
    *cand = passed ? 1 : 0;
}

// Rules 3 and 4 for a live group whose rows' keep flags are keep[0 .. size): soft_max
// thins the kept rows with p_keep(n), then mu2 drops the group if p_mu(n) < r_mu2.
// Returns the rows kept (0 if mu2 dropped the group, whose flags are then cleared).
GP_HD gp_i64 gp_soft_max_mu2(const gp_rules& R, gp_i32 p, gp_u32 k0, gp_u32 k1, gp_u32 src, gp_u32 tword,
                             gp_u8* keep, gp_i64 size) {
    gp_i64 n = 0;
    for (gp_i64 k = 0; k < size; ++k) {
        n += keep[k];
    }
    const gp_u8 flags = R.flags[p];
    if ((flags & GP_HAS_SOFT_MAX) && (double)n > R.soft_max[p]) {
        const double threshold = R.p_keep[(gp_i64)p * R.table_stride + n];
        n = 0;
        for (gp_i64 k = 0; k < size; ++k) {
            if (keep[k]) {
                keep[k] = gp_soft_max_keeps(gp_row_draw_soft_max(k0, k1, src, (gp_u32)k, tword), threshold) ? 1 : 0;
                n += keep[k];
            }
        }
    }
    if (flags & GP_HAS_MU2) {
        double r_a3, r_mu2;
        gp_group_draws(k0, k1, src, tword, &r_a3, &r_mu2);
        if (gp_mu2_drops(R, p, n, r_mu2)) {
            for (gp_i64 k = 0; k < size; ++k) {
                keep[k] = 0;
            }
            n = 0;
        }
    }
    return n;
}

// Rule 5, part 1: how many candidates of the group [start, start + size) (sorted
// positions) lie strictly closer than `threshold` voxels to candidate i, itself
// included: the double sqrt of the exact int64 sum of squared coordinate differences.
GP_HD gp_i64 gp_cluster_count(const gp_i32* rows, gp_i32 width, const gp_i64* order, const gp_u8* cand,
                              gp_i64 start, gp_i64 size, gp_i64 i, double threshold) {
    const gp_i32* a = rows + order[i] * (gp_i64)width + GP_COL_X;
    gp_i64 count = 0;
    for (gp_i64 j = start; j < start + size; ++j) {
        if (!cand[j]) {
            continue;
        }
        const gp_i32* b = rows + order[j] * (gp_i64)width + GP_COL_X;
        gp_i64 sq = 0;
        for (int c = 0; c < 3; ++c) {
            const gp_i64 diff = (gp_i64)a[c] - (gp_i64)b[c];
            sq += diff * diff;
        }
        if (sqrt((double)sq) < threshold) {
            ++count;
        }
    }
    return count;
}

// Rule 5, part 2: candidate i is kept if fewer than n_keep candidates come before it
// in the order "larger count first, lower index first among equal counts" (a stable
// sort of -count, as the NumPy engine does in philox mode).
GP_HD bool gp_cluster_keeps(const gp_i64* count, const gp_u8* cand, gp_i64 start, gp_i64 size, gp_i64 i,
                            gp_i64 n_keep) {
    const gp_i64 mine = count[i];
    gp_i64 rank = 0;
    for (gp_i64 j = start; j < start + size; ++j) {
        if (cand[j] && (count[j] > mine || (count[j] == mine && j < i))) {
            ++rank;
        }
    }
    return rank < n_keep;
}

#endif  // GPUPRUNE_PRUNE_RULES_CUH
