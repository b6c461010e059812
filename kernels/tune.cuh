// gpuprune: the batched evaluation of a tuned pathway (gpuprune/tune/device.py drives it).
//
// The model (gpuprune/tune/model.py) holds, per group, its first row, parameter block, r_a3
// and r_mu2, and per row that passed the fixed distance test its r_f1 and r_sm, rows sorted
// by group and then by r_f1.  For P parameter sets, one thread per group (and, when
// sets_per_thread < P, per tile of that many sets) reads each of its rows once for all its
// sets and applies DESIGN §3 in order with the rule functions of
// prune_rules.cuh: f1 (rows with r_f1 < f1; sorted by r_f1, they are the group's first n),
// a3, soft_max (the first n rows stay when r_sm < p_keep(n)), mu2.  Cluster pruning changes
// which rows a group keeps, never how many, so it is not evaluated.  With a z cut (T.inside
// not null), the kept rows inside it are counted too (T.counted).  The result is the same
// integers as gpuprune.tune.evaluate.Evaluator (NumPy): only comparisons, against
// parameters and host-built tables.
#ifndef GPUPRUNE_TUNE_CUH
#define GPUPRUNE_TUNE_CUH

#include "gp_defines.cuh"
#include "prune_rules.cuh"

// Kept rows of group g for the parameter sets p0 <= p < p1, written to T.kept[p * n_groups + g]
// (and those inside the z cut to T.counted).
GP_HD void gp_tune_group(const gp_tune_args& T, gp_i64 g, gp_i64 p0, gp_i64 p1) {
    const gp_i64 G = T.n_groups;
    const gp_i64 B = T.n_blocks;
    const gp_i64 b = T.block[g];
    const gp_i64 lo = T.lo[g];
    const gp_i64 hi = T.lo[g + 1];
    const bool cut = T.inside != 0;
    // f1 (after the distance test, fixed during a fit): every row once, for all sets
    for (gp_i64 p = p0; p < p1; ++p) {
        T.work[p * G + g] = 0;
        if (cut) {
            T.counted[p * G + g] = 0;
        }
    }
    for (gp_i64 i = lo; i < hi; ++i) {
        const double r = T.r_f1[i];
        const bool in = cut && T.inside[i];
        for (gp_i64 p = p0; p < p1; ++p) {
            const bool keeps = gp_f1_keeps_at(r, T.f1[p * B + b]);
            T.work[p * G + g] += keeps ? 1 : 0;
            if (in) {
                T.counted[p * G + g] += keeps ? 1 : 0;
            }
        }
    }
    // a3 drops the group whole; soft_max's survivors start at zero
    const double r_a3 = T.r_a3[g];
    gp_i64 revisit = 0;  // rows soft_max revisits: the largest n above soft_max
    for (gp_i64 p = p0; p < p1; ++p) {
        gp_i32 n = T.work[p * G + g];
        if (gp_a3_drops_at(r_a3, T.a3[p * B + b])) {
            n = 0;
            T.work[p * G + g] = 0;
            if (cut) {
                T.counted[p * G + g] = 0;
            }
        }
        const bool over = (double)n > T.soft_max[p * B + b];
        if (over && n > revisit) {
            revisit = n;
        }
        if (over && cut) {
            T.counted[p * G + g] = 0;  // recounted from the rows soft_max keeps
        }
        T.kept[p * G + g] = 0;
    }
    // soft_max: of the first n rows, those with r_sm < p_keep(n) stay; every row once, for all sets
    for (gp_i64 i = lo; i < lo + revisit; ++i) {
        const double r = T.r_sm[i];
        const gp_i64 at = i - lo;
        const bool in = cut && T.inside[i];
        for (gp_i64 p = p0; p < p1; ++p) {
            const gp_i32 n = T.work[p * G + g];
            if (at < n && (double)n > T.soft_max[p * B + b]) {
                const bool stays = gp_soft_max_keeps(r, T.p_keep[(p * B + b) * T.width + n]);
                T.kept[p * G + g] += stays ? 1 : 0;
                if (in) {
                    T.counted[p * G + g] += stays ? 1 : 0;
                }
            }
        }
    }
    // groups not above soft_max keep their n; mu2 drops the group by its final count
    const double r_mu2 = T.r_mu2[g];
    for (gp_i64 p = p0; p < p1; ++p) {
        const gp_i32 n = T.work[p * G + g];
        gp_i32 k = (double)n > T.soft_max[p * B + b] ? T.kept[p * G + g] : n;
        if (gp_mu2_drops_at(T.p_mu[(p * B + b) * T.width + k], r_mu2)) {
            k = 0;
            if (cut) {
                T.counted[p * G + g] = 0;
            }
        }
        T.kept[p * G + g] = k;
    }
}

#endif  // GPUPRUNE_TUNE_CUH
