"""Cluster pruning: keep a group's most clustered candidate rows (DESIGN §3), batched over groups."""

import numpy as np

#: at most this many int64 entries in one batch of cluster-pruning distance matrices.
CLUSTER_BATCH_ENTRIES = 1 << 22
#: Snudda's cluster radius (metres).
CLUSTER_DISTANCE = 10e-6


def cluster_select(ctx, coords_of, cand_pos, cand_group, n_keep_of_group, stable):
    """Cluster pruning for many groups at once, batched by candidate count.

    Parameters
    ----------
    coords_of : callable
        Maps chunk-order row positions to (k, 3) int64 voxel coordinates.
    cand_pos, cand_group : ndarray
        Candidate rows (positions, grouped and ascending within a group) and their group.
    n_keep_of_group : ndarray
        Rows to keep per group (indexed by group id).
    stable : bool
        Ties by lower index (philox) or NumPy's default argsort order (snudda).

    Returns
    -------
    ndarray
        Positions of the rows to keep.
    """
    threshold = CLUSTER_DISTANCE / ctx.voxel_size
    groups, first, m_of = np.unique(cand_group, return_index=True, return_counts=True)
    kept = []
    for m in np.unique(m_of):  # one pass per distinct candidate count, not per group
        sel = np.flatnonzero(m_of == m)
        per_batch = max(1, CLUSTER_BATCH_ENTRIES // int(m * m))
        for b in range(0, sel.size, per_batch):
            s = sel[b:b + per_batch]
            pos = cand_pos[first[s][:, None] + np.arange(m)]  # (G, m)
            coords = coords_of(pos.reshape(-1)).reshape(s.size, m, 3)
            counts = np.zeros((s.size, m), dtype=np.int64)
            rows_per_block = max(1, CLUSTER_BATCH_ENTRIES // max(1, s.size * m))
            for r0 in range(0, m, rows_per_block):  # blocks of rows for very large groups
                sub = coords[:, r0:r0 + rows_per_block]
                sq = np.zeros((s.size, sub.shape[1], m), dtype=np.int64)
                for a in range(3):
                    diff = sub[:, :, None, a] - coords[:, None, :, a]
                    sq += diff * diff
                counts[:, r0:r0 + rows_per_block] = (np.sqrt(sq.astype(np.float64)) < threshold).sum(axis=2)
            order = np.argsort(-counts, axis=1, kind="stable" if stable else None)
            take = np.arange(m)[None, :] < n_keep_of_group[groups[s]][:, None]
            kept.append(np.take_along_axis(pos, order, axis=1)[take])
    return np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
