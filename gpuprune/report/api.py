"""The Python interface: :func:`report` returns a :class:`Report`; :meth:`Report.save` writes the files."""

import json
import os
import time

from gpuprune.errors import InputError
from gpuprune.report import figures, tables
from gpuprune.report import html as html_page
from gpuprune.report.compute import BIN_WIDTH as BIN_WIDTH
from gpuprune.report.compute import MAX_DISTANCE, compute

JSON_FILE = "report.json"
HTML_FILE = "index.html"


class Report:
    """Every number of a report (:attr:`data`, JSON-ready), with tables, figures and files made from it."""

    def __init__(self, data, timings=None):
        self.data = data
        #: seconds per phase (compute: open, read_pruned, funnel, check, statistics; save: figures, write)
        self.timings = {} if timings is None else timings

    @classmethod
    def load(cls, path):
        """A report from a ``report.json`` (or the directory holding one)."""
        if os.path.isdir(path):
            path = os.path.join(path, JSON_FILE)
        try:
            with open(path) as fh:
                return cls(json.load(fh))
        except FileNotFoundError:
            raise InputError("report file not found", path) from None
        except json.JSONDecodeError as exc:
            raise InputError(f"not a report.json: {exc}", path) from None

    @property
    def pathways(self):
        return self.data["pathways"]

    def table(self):
        """The summary table as text."""
        t = self.data["totals"]
        return (tables.text_table(tables.SUMMARY_HEAD, tables.summary_rows(self.data))
                + f"\n\nsynapses {t['synapses']['putative']:,} -> {t['synapses']['kept']:,}; gap junctions "
                  f"{t['gap_junctions']['putative']:,} -> {t['gap_junctions']['kept']:,}")

    def funnel_table(self, pathway):
        p = figures.find_pathway(self.data, pathway)
        return tables.text_table(tables.FUNNEL_HEAD, tables.funnel_rows(p, self.data["steps"]))

    def _repr_html_(self):  # a report shows as its summary table in a notebook
        return tables.html_table(tables.SUMMARY_HEAD, tables.summary_rows(self.data))

    # figures (matplotlib Figures, for notebooks)
    def plot_pathway(self, pathway=0):
        """The three panels of one pathway (index, ``"pre,post[,connection]"``)."""
        return figures.plot_pathway(self.data, pathway)

    def plot_pathway_funnel(self, pathway=0):
        return figures.plot_pathway_funnel(self.data, pathway)

    def plot_connection_probability(self, pathway=0):
        return figures.plot_connection_probability(self.data, pathway)

    def plot_funnel(self):
        return figures.plot_funnel(self.data)

    def to_json(self):
        return json.dumps(self.data, indent=1, allow_nan=False)

    def save(self, directory, plots=None, workers=None):
        """Write ``report.json``, ``index.html`` and (with matplotlib) one PNG per pathway and ``funnel.png``.

        Parameters
        ----------
        directory : str
            Created if missing.
        plots : bool, optional
            Draw figures (default: when matplotlib is installed).
        workers : int, optional
            Processes drawing the figures (default: one per core, at most 4).

        Returns
        -------
        dict
            ``json``, ``html``, ``figures`` (paths) and ``hint`` (why figures are missing, or None).
        """
        os.makedirs(directory, exist_ok=True)
        plots = figures.have_matplotlib() if plots is None else plots
        hint = None if plots else figures.PLOT_HINT
        pngs = {}
        t0 = time.perf_counter()
        if plots:
            pngs = figures.render_all(self.data, workers)
        t1 = time.perf_counter()
        paths = []
        for key, png in pngs.items():
            p = self.pathways[key] if key != "funnel" else None
            name = "funnel.png" if p is None else f"{key:02d}-{p['pre']}-{p['post']}-{p['name']}.png"
            path = os.path.join(directory, "".join(c if c.isalnum() or c in "-_." else "_" for c in name))
            with open(path, "wb") as fh:
                fh.write(png)
            paths.append(path)
        out = {"json": os.path.join(directory, JSON_FILE), "html": os.path.join(directory, HTML_FILE),
               "figures": paths, "hint": hint}
        with open(out["json"], "w") as fh:
            fh.write(self.to_json())
        with open(out["html"], "w", encoding="utf-8") as fh:
            fh.write(html_page.render(self.data, pngs, hint))
        self.timings["figures"] = t1 - t0
        self.timings["write"] = time.perf_counter() - t1
        return out


def report(network_path, pruned_file=None, *, output=None, config_file=None, rng="philox", random_seed=None,
           bin_width=BIN_WIDTH, max_distance=MAX_DISTANCE, slab=None, centre_margin=None, targets=None,
           progress=None):
    """The connectivity report of a pruned network, against the bundled measurements.

    Parameters
    ----------
    network_path : str
        The network directory (its putative synapses are pruned again in memory, with the
        pruning's own draws, to count what each rule removed; nothing is written there).
    pruned_file : str, optional
        Default ``NETWORK/network-synapses.hdf5``; it must be the prune of this network with
        this config, ``rng`` and seed (checked group by group).
    output : str, optional
        Also write the report's files into this directory (:meth:`Report.save`).
    config_file, rng, random_seed
        As given to :func:`gpuprune.prune` for the pruned file.
    bin_width, max_distance : float
        Distance bins in metres (default 20 um up to 500 um).
    slab : float, optional
        2D distances in the x-y plane, only pairs with ``|dz| <= slab`` (metres), as Snudda's
        striatum analysis (70e-6 there); default 3D distances.
    centre_margin : float, optional
        Only postsynaptic neurons at least this far (metres) inside the bounding box of the
        somata, against edge effects.
    targets : str, dict or list, optional
        Measurements to compare with (:func:`gpuprune.stats.load_targets`: a JSON file, a dict, a
        list, or a bundled dataset name); default every bundled measurement.
    progress : callable or bool, optional
        ``progress(done_rows, total_rows)``, or True for a tqdm bar (``tqdm.auto``: a widget in
        notebooks).

    Returns
    -------
    Report

    Examples
    --------
    >>> rep = gpuprune.report("networks/striatum", output="report")     # doctest: +SKIP
    >>> print(rep.table())                                              # doctest: +SKIP
    >>> rep.plot_pathway("dSPN,iSPN")                                   # doctest: +SKIP
    """
    bar = None
    if progress is False:
        progress = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=1, unit="rows", unit_scale=True, desc="report")

        def progress(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()
    timings = {}
    try:
        data = compute(network_path, pruned_file, config_file=config_file, rng=rng, random_seed=random_seed,
                       bin_width=bin_width, max_distance=max_distance, slab=slab, centre_margin=centre_margin,
                       targets=targets, progress=progress, timings=timings)
    finally:
        if bar is not None:
            bar.close()
    rep = Report(data, timings)
    if output is not None:
        rep.save(output)
    return rep


def demo_report(network_path, directory):
    """``gpuprune demo``'s last step: the report of the pruned network into ``DIRECTORY/report``.

    Prints the summary table (with the comparison against the bundled measurements), where the
    page is and, without matplotlib, the one-line hint; returns :meth:`Report.save`'s paths.
    """
    rep = report(network_path)
    out = rep.save(os.path.join(directory, "report"))
    print()
    print(rep.table())
    if out["hint"]:
        print(out["hint"])
    print(f"report: {os.path.abspath(out['html'])} ({len(out['figures'])} figure(s)); numbers in "
          f"{os.path.abspath(out['json'])}")
    return out
