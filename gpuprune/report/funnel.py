"""The pruning funnel: rows and pairs left after each rule, from the pruning's own draws.

The network is pruned again, chunk by chunk, through :func:`gpuprune.engine.prune_chunk`
with its ``trace`` hook, so every count comes from the same decisions (and the same
random numbers) as the output file; the last step therefore equals the pruned file.
Nothing is written.  The same pass records every putative group (pair and channel type,
putative and kept rows), from which the connectivity statistics are computed.
"""

from dataclasses import dataclass

import numpy as np

from gpuprune import engine
from gpuprune.engine.pathway import PathwayCodes
from gpuprune.format import GAP_JUNCTIONS, SYNAPSES
from gpuprune.io.reader import close_files, read_chunk
from gpuprune.rules.params import GAP_JUNCTION_CHANNEL

#: the funnel's steps, in DESIGN §3 order ("rule": groups that have pruning parameters at all)
STEPS = ("putative", "rule", "a3", "f1", "soft_max", "mu2", "cluster")
#: rows per chunk of the funnel pass
ROW_BUDGET = 2_000_000


@dataclass
class Groups:
    """Every putative group of one data kind (pairs merged across split runs): arrays of equal length."""

    src: np.ndarray
    dest: np.ndarray
    channel: np.ndarray
    code: np.ndarray  # pathway code
    putative: np.ndarray  # putative rows
    kept: np.ndarray  # rows kept by the pruning


@dataclass
class Funnel:
    """Rows and pairs (groups with at least one row) left after each step, per pathway code.

    ``rows`` and ``pairs`` are int64 arrays of shape (len(STEPS), codes.size).
    """

    codes: PathwayCodes
    rows: np.ndarray
    pairs: np.ndarray
    groups: dict  # kind name -> Groups
    kept_rows: dict  # kind name -> rows the prune kept (= what it would write)

    @property
    def steps(self):
        return STEPS


class _Tracer:
    """Collects one chunk's per-step counts; ``prune_chunk`` calls it (see its ``trace`` argument)."""

    def __init__(self, code_of, rows, pairs, n_neurons):
        self.code_of, self.rows, self.pairs, self.n = code_of, rows, pairs, n_neurons
        self.chunk = None

    def __call__(self, starts, sizes, g_src, g_dest, g_typ):
        code = self.code_of(g_src, g_dest, g_typ)
        key = (g_dest.astype(np.int64) * self.n + g_src) * (1 << 16) + g_typ
        # snudda mode may split a (pair, type) into several runs: count each pair once
        split = key.size > 1 and not bool(np.all(key[1:] > key[:-1]))
        self.chunk = {"starts": starts, "sizes": sizes, "code": code, "key": key, "split": split,
                      "src": g_src, "dest": g_dest, "typ": g_typ}
        self._add(0, sizes, code, key, split)
        return self._step

    def _step(self, name, keep):
        c = self.chunk
        kept = np.add.reduceat(keep.astype(np.int64), c["starts"])
        self._add(STEPS.index(name), kept, c["code"], c["key"], c["split"])
        if name == "cluster":
            c["kept"] = kept

    def _add(self, step, kept, code, key, split):
        size = self.rows.shape[1]
        self.rows[step] += np.bincount(code, weights=kept, minlength=size).astype(np.int64)
        on = kept > 0
        if split:
            _, first = np.unique(key[on], return_index=True)
            self.pairs[step] += np.bincount(code[on][first], minlength=size)
        else:
            self.pairs[step] += np.bincount(code[on], minlength=size)


def _merge_groups(parts):
    """Concatenate the chunks' groups and merge runs of one (pair, type) that snudda mode split."""
    if not parts:
        z = np.zeros(0, dtype=np.int64)
        return Groups(z, z, z, z, z, z)
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("key", "src", "dest", "typ", "code", "sizes",
                                                               "kept")}
    key = cat["key"]
    if key.size > 1 and not bool(np.all(key[1:] > key[:-1])):
        uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
        sums = {k: np.bincount(inv, weights=cat[k], minlength=uniq.size).astype(np.int64) for k in ("sizes", "kept")}
        cat = {k: cat[k][first] for k in ("src", "dest", "typ", "code")} | sums
    return Groups(cat["src"].astype(np.int64), cat["dest"].astype(np.int64), cat["typ"].astype(np.int64),
                  cat["code"].astype(np.int64), cat["sizes"].astype(np.int64), cat["kept"].astype(np.int64))


def run_funnel(net, ctx, row_budget=ROW_BUDGET, progress=None):
    """Prune ``net`` in memory with ``ctx`` (an :class:`engine.PruneContext`) and count each step.

    Parameters
    ----------
    net : gpuprune.io.network.Network
    ctx : gpuprune.engine.PruneContext
        Mode and seed must be those the pruned file was made with.
    row_budget : int
        Rows per chunk (bounds memory; the counts do not depend on it).
    progress : callable, optional
        ``progress(done_rows, total_rows)`` after each chunk.

    Returns
    -------
    Funnel
    """
    codes = PathwayCodes.from_context(ctx)
    rows = np.zeros((len(STEPS), codes.size), dtype=np.int64)
    pairs = np.zeros_like(rows)
    tracer = _Tracer(lambda s, d, t: codes.encode(ctx.neuron_type[s], ctx.neuron_type[d], t), rows, pairs,
                     ctx.num_neurons)
    spec = net.spec()["files"]
    total = sum(net.num_rows(k.name) for k in (SYNAPSES, GAP_JUNCTIONS))
    done = 0
    groups, kept_rows = {}, {}
    try:
        for kind in (SYNAPSES, GAP_JUNCTIONS):
            parts, kept_rows[kind.name] = [], 0
            for chunk in net.plan(kind.name, row_budget):
                data, runs = read_chunk(spec[kind.name], kind, chunk, with_lookup=ctx.mode == engine.SNUDDA)
                tracer.chunk = None
                res = engine.prune_chunk(ctx, kind, data, chunk.dest_lo, chunk.dest_hi, lookup_runs=runs,
                                         trace=tracer)
                kept_rows[kind.name] += res.rows.shape[0]
                if tracer.chunk is not None:
                    parts.append(tracer.chunk)
                done += chunk.num_rows
                if progress is not None:
                    progress(done, total)
            groups[kind.name] = _merge_groups(parts)
    finally:
        close_files()
    return Funnel(codes, rows, pairs, groups, kept_rows)


def is_gap_junction_code(codes, code):
    return int(codes.decode(int(code))[2]) == GAP_JUNCTION_CHANNEL
