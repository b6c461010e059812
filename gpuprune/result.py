"""What a prune returns: :class:`PruneResult` (counts, timings, the per-pathway :class:`PathwayStats`)."""

from dataclasses import dataclass, field


@dataclass
class PathwayStats:
    """Counts for one pathway (pre type, post type, connection type)."""

    pre: str
    post: str
    name: str
    kind: str
    putative_rows: int
    kept_rows: int
    putative_pairs: int
    connected_pairs: int


@dataclass
class PruneResult:
    """What a prune run did.

    Attributes
    ----------
    output_file : str
    synapses_before, synapses_after, gap_junctions_before, gap_junctions_after : int
    pathways : list of PathwayStats
    timings : dict
        Seconds: ``plan``, ``prune`` (read + prune + write, wall), ``total``, and the
        sums over chunks of ``read`` and ``compute`` (CPU time in workers).
    device, rng : str
    random_seed : int
    """

    output_file: str
    synapses_before: int
    synapses_after: int
    gap_junctions_before: int
    gap_junctions_after: int
    pathways: list
    timings: dict
    device: str
    rng: str
    random_seed: int
    workers: int = 1
    chunks: int = 0
    extra: dict = field(default_factory=dict)

    def table(self):
        """The per-pathway table as text."""
        head = ("pre", "post", "connection", "putative", "kept", "pairs", "connected", "kept %")
        lines = [head]
        for p in self.pathways:
            pct = 100.0 * p.kept_rows / p.putative_rows if p.putative_rows else 0.0
            lines.append((p.pre, p.post, p.name, f"{p.putative_rows:,}", f"{p.kept_rows:,}",
                          f"{p.putative_pairs:,}", f"{p.connected_pairs:,}", f"{pct:.1f}"))
        widths = [max(len(str(r[i])) for r in lines) for i in range(len(head))]
        out = []
        for k, r in enumerate(lines):
            cells = [str(c).ljust(w) if i < 3 else str(c).rjust(w)
                     for i, (c, w) in enumerate(zip(r, widths, strict=True))]
            out.append("  ".join(cells))
            if k == 0:
                out.append("  ".join("-" * w for w in widths))
        total = (f"synapses {self.synapses_before:,} -> {self.synapses_after:,}; gap junctions "
                 f"{self.gap_junctions_before:,} -> {self.gap_junctions_after:,}")
        return "\n".join(out + ["", total])

    @property
    def rows_per_second(self):
        n = self.synapses_before + self.gap_junctions_before
        return n / self.timings["total"] if self.timings.get("total") else float("nan")

