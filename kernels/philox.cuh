// gpuprune: Philox4x32-10 and the draw layout of DESIGN §4, for host and device.
//
// Bit-exact twin of gpuprune/rng/philox.py.  A call maps a 128-bit counter (c0..c3) and a
// 64-bit key (k0, k1) to four 32-bit words through ten rounds; u(a, b) turns two
// words into a double in [0, 1) with 53 random bits.  Only integer operations and
// one exact scaling by 2**-53 are used, so every compiler gives the same bits.
//
// Reference: J. K. Salmon, M. A. Moraes, R. O. Dror and D. E. Shaw, "Parallel random
// numbers: as easy as 1, 2, 3", SC'11 (2011); Random123 (D. E. Shaw Research).
#ifndef GPUPRUNE_PHILOX_CUH
#define GPUPRUNE_PHILOX_CUH

#include "gp_defines.cuh"

#define GP_PHILOX_M0 0xD2511F53u
#define GP_PHILOX_M1 0xCD9E8D57u
#define GP_PHILOX_W0 0x9E3779B9u
#define GP_PHILOX_W1 0xBB67AE85u
#define GP_PHILOX_ROUNDS 10
// 2**-53, exact in binary64
#define GP_TWO_M53 (1.0 / 9007199254740992.0)

struct gp_x4 {
    gp_u32 v0, v1, v2, v3;
};

// Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1).
GP_HD gp_x4 gp_philox4x32_10(gp_u32 c0, gp_u32 c1, gp_u32 c2, gp_u32 c3, gp_u32 k0, gp_u32 k1) {
    for (int r = 0; r < GP_PHILOX_ROUNDS; ++r) {
        if (r > 0) {  // the key is bumped between rounds, not before the first
            k0 += GP_PHILOX_W0;
            k1 += GP_PHILOX_W1;
        }
        const gp_u64 p0 = (gp_u64)GP_PHILOX_M0 * (gp_u64)c0;
        const gp_u64 p1 = (gp_u64)GP_PHILOX_M1 * (gp_u64)c2;
        const gp_u32 hi0 = (gp_u32)(p0 >> 32), lo0 = (gp_u32)p0;
        const gp_u32 hi1 = (gp_u32)(p1 >> 32), lo1 = (gp_u32)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    gp_x4 out;
    out.v0 = c0;
    out.v1 = c1;
    out.v2 = c2;
    out.v3 = c3;
    return out;
}

// u(hi, lo) = (((hi << 32) | lo) >> 11) * 2**-53: a double in [0, 1).
GP_HD double gp_u01(gp_u32 hi, gp_u32 lo) {
    return (double)(((((gp_u64)hi) << 32) | (gp_u64)lo) >> 11) * GP_TWO_M53;
}

// Per-neuron key: (x0, x1) of counter (d, 0, 0, GP_KEY_TAG) under the master seed.
GP_HD void gp_neuron_key(gp_u64 seed, gp_u32 dest, gp_u32* k0, gp_u32* k1) {
    const gp_x4 x = gp_philox4x32_10(dest, 0u, 0u, (gp_u32)GP_KEY_TAG, (gp_u32)(seed & 0xFFFFFFFFull),
                                     (gp_u32)(seed >> 32));
    *k0 = x.v0;
    *k1 = x.v1;
}

// Counter word 2: channel type | data kind << 16.
GP_HD gp_u32 gp_type_word(gp_u32 channel_type, gp_u32 kind) {
    return channel_type | (kind << 16);
}

// Row k of a group: counter (src, k, tword, 0) gives r_f1 = u(x0, x1), r_dist = u(x2, x3).
GP_HD void gp_row_draws(gp_u32 k0, gp_u32 k1, gp_u32 src, gp_u32 row, gp_u32 tword, double* r_f1,
                        double* r_dist) {
    const gp_x4 x = gp_philox4x32_10(src, row, tword, 0u, k0, k1);
    *r_f1 = gp_u01(x.v0, x.v1);
    *r_dist = gp_u01(x.v2, x.v3);
}

// Row k of a group: counter (src, k, tword, 1) gives r_sm = u(x0, x1).
GP_HD double gp_row_draw_soft_max(gp_u32 k0, gp_u32 k1, gp_u32 src, gp_u32 row, gp_u32 tword) {
    const gp_x4 x = gp_philox4x32_10(src, row, tword, 1u, k0, k1);
    return gp_u01(x.v0, x.v1);
}

// Per group: counter (src, GP_GROUP_ROW, tword, 0) gives r_a3 = u(x0, x1), r_mu2 = u(x2, x3).
GP_HD void gp_group_draws(gp_u32 k0, gp_u32 k1, gp_u32 src, gp_u32 tword, double* r_a3, double* r_mu2) {
    const gp_x4 x = gp_philox4x32_10(src, (gp_u32)GP_GROUP_ROW, tword, 0u, k0, k1);
    *r_a3 = gp_u01(x.v0, x.v1);
    *r_mu2 = gp_u01(x.v2, x.v3);
}

#endif  // GPUPRUNE_PHILOX_CUH
