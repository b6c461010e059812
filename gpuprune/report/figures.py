"""Matplotlib figures of a report (``gpuprune[plot]``); each function returns a Figure for a notebook.

Every function takes the report dict (:func:`gpuprune.report.compute.compute`, or
:attr:`Report.data`) and reads nothing else, so figures can be redrawn from ``report.json``.
"""

import io

import numpy as np

from gpuprune.errors import InputError

PLOT_HINT = 'figures skipped: matplotlib is not installed (pip install "gpuprune[plot]")'


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _log_y(ax):
    """Log y axis with plain-text tick labels: the default ones are mathtext, whose parser is most
    of the drawing time of a figure."""
    from matplotlib.ticker import LogFormatter, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
    ax.yaxis.set_minor_locator(NullLocator())  # minor ticks are a Tick object each: most of a log axis' cost


def _nan(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def pathway_label(p):
    return f"{p['pre']} → {p['post']} ({p['name']})"


def find_pathway(data, pathway):
    """A pathway of the report by index, by ``"pre,post[,name]"`` or by its dict."""
    if isinstance(pathway, dict):
        return pathway
    if isinstance(pathway, int):
        return data["pathways"][pathway]
    parts = [s.strip() for s in str(pathway).split(",")]
    for p in data["pathways"]:
        if [p["pre"], p["post"], p["name"]][:len(parts)] == parts:
            return p
    raise InputError(f"no pathway {pathway!r} in the report; it has "
                     f"{', '.join(','.join((p['pre'], p['post'], p['name'])) for p in data['pathways'])}")


def draw_connection_probability(ax, p, options):
    """P(connect) against soma distance, before and after pruning, Wilson 95 % bands, measurements."""
    for which, colour in (("before", "tab:grey"), ("after", "tab:blue")):
        c = p[which]
        bins = np.array(c["bins"], dtype=np.float64) * 1e6
        mid = bins.mean(axis=1)
        prob, lo, hi = _nan(c["probability"]), _nan(c["ci95"][0]), _nan(c["ci95"][1])
        label = "putative" if which == "before" else "pruned"
        ax.plot(mid, prob, "-", color=colour, label=label)
        ax.fill_between(mid, lo, hi, color=colour, alpha=0.25, linewidth=0)
    for e in p["experiments"]:
        model = _nan(e["model"]["probability"])
        for (s, t), pe, lo, hi, pm in zip(e["bins"], _nan(e["P"]), _nan(e["ci95"][0]), _nan(e["ci95"][1]),
                                          model, strict=True):
            s, t = s * 1e6, t * 1e6
            ax.plot([s, t], [pe, pe], "-", color="tab:red", linewidth=2)  # measured over [0, limit]
            if np.isfinite(lo):
                ax.errorbar([t], [pe], yerr=[[pe - lo], [hi - pe]], color="tab:red", capsize=3)
            ax.plot([t], [pm], "o", mfc="none", color="tab:blue")  # the model over the same range
    if p["experiments"]:
        ax.plot([], [], "-", color="tab:red", label="measured, 0..limit (95% CI)")
        ax.plot([], [], "o", mfc="none", color="tab:blue", label="pruned, 0..limit")
    ax.set_xlabel(f"soma distance ({options['distance'].upper()}, µm)")
    ax.set_ylabel("P(connect)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="x-small", loc="center right")


def draw_synapses_per_pair(ax, p):
    for which, label in (("before", "putative"), ("after", "pruned")):
        h = np.array(p["synapses_per_pair"][which], dtype=np.int64)
        if h.size > 1:  # stairs: one artist, however many bins (bars are one artist each, and slow)
            ax.stairs(h[1:], np.arange(0.5, h.size), fill=True, alpha=0.5, label=label)
            _log_y(ax)
    a = p["after"]["synapses_per_pair"]
    if a["pairs"]:
        ax.set_title(f"pruned: mean {a['mean']:.2f}, std {a['std']:.2f}", fontsize="small")
    ax.set_xlabel("synapses per connected pair")
    ax.set_ylabel("pairs")
    ax.legend(fontsize="small", loc="upper right")


def draw_degrees(ax, p):
    for key, label in (("out_degree", f"out-degree ({p['pre']})"), ("in_degree", f"in-degree ({p['post']})")):
        h = np.array(p[key], dtype=np.int64)
        if h.size:
            ax.step(np.arange(h.size), h, where="mid", label=label)
    ax.set_xlabel("connected partners (pruned)")
    ax.set_ylabel("neurons")
    ax.legend(fontsize="small", loc="upper right")


def draw_funnel(ax, p, steps):
    rows = np.array(p["funnel"]["rows"], dtype=np.float64)
    pairs = np.array(p["funnel"]["pairs"], dtype=np.float64)
    x = np.arange(len(steps))
    ax.plot(x, rows, "o-", label="rows")
    ax.plot(x, pairs, "s-", label="pairs")
    ax.set_xticks(x, steps, rotation=30, fontsize="small")
    if rows.max() > 0:
        _log_y(ax)
    ax.set_ylabel("left after step")
    ax.legend(fontsize="small", loc="upper right")


def plot_pathway(data, pathway):
    """One figure with three panels of a pathway: P(connect), synapses per pair, degrees.

    (Its funnel is in :func:`plot_funnel`, one line per pathway, and in the tables; a fourth
    panel would add a third to the drawing time, most of a report's time.)
    """
    p = find_pathway(data, pathway)
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    draw_connection_probability(axes[0], p, data["options"])
    draw_synapses_per_pair(axes[1], p)
    draw_degrees(axes[2], p)
    fig.suptitle(pathway_label(p))
    # fixed margins: tight_layout draws the figure once more to measure it
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.86, wspace=0.25)
    return fig


def _one_panel(data, pathway, draw, *args):
    """A Figure of one pathway drawn by ``draw(ax, pathway_data, *args)``, titled with the pathway."""
    p = find_pathway(data, pathway)
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    draw(ax, p, *args)
    ax.set_title(pathway_label(p))
    fig.tight_layout()
    return fig


def plot_pathway_funnel(data, pathway):
    """Rows and pairs left after each step of one pathway (a Figure)."""
    return _one_panel(data, pathway, draw_funnel, data["steps"])


def plot_connection_probability(data, pathway):
    """P(connect) against soma distance of one pathway (a Figure)."""
    return _one_panel(data, pathway, draw_connection_probability, data["options"])


def plot_funnel(data):
    """Fraction of putative rows left after each step, one line per pathway with rules (a Figure)."""
    fig, ax = _pyplot().subplots(figsize=(7, 4.5))
    steps = data["steps"]
    for p in data["pathways"]:
        rows = np.array(p["funnel"]["rows"], dtype=np.float64)
        if p["has_rule"] and rows[0] > 0:
            ax.plot(np.arange(len(steps)), rows / rows[0], "o-", label=pathway_label(p))
    ax.set_xticks(np.arange(len(steps)), steps)
    _log_y(ax)
    ax.set_ylabel("fraction of putative rows left")
    ax.legend(fontsize="x-small", ncol=2, loc="lower left")
    fig.tight_layout()
    return fig


def png_bytes(fig, dpi=90):
    """The figure as PNG bytes; closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    _pyplot().close(fig)
    return buf.getvalue()


_worker_data = None


def _init_worker(data):
    global _worker_data
    import matplotlib

    matplotlib.use("Agg")
    _worker_data = data


def _render(key):
    fig = plot_funnel(_worker_data) if key == "funnel" else plot_pathway(_worker_data, key)
    return key, png_bytes(fig)


def render_all(data, workers=None):
    """PNG bytes of the funnel figure and of every pathway's figure: {"funnel": ..., 0: ..., 1: ...}.

    Drawing is most of a report's time (about a second per figure), so figures are drawn
    in ``workers`` processes (default: one per available core, at most 4).
    """
    import concurrent.futures
    import multiprocessing
    import os

    keys = ["funnel", *range(len(data["pathways"]))]
    if workers is None:
        workers = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers <= 1 or len(keys) < 4:
        _init_worker(data)
        return dict(_render(k) for k in keys)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    _pyplot()  # imported once here: forked workers share it (about a second each otherwise)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                                initializer=_init_worker, initargs=(data,)) as ex:
        return dict(ex.map(_render, keys, chunksize=max(1, len(keys) // (4 * workers))))
