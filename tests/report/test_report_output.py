"""The report's files: self-contained HTML, non-empty figures, report.json round trip, the CLI, bad input."""

import base64
import html.parser
import json
import os
import struct
import sys

import h5py
import pytest
from conftest import copy_network

import gpuprune
from gpuprune.cli.main import main as cli_main
from gpuprune.errors import InputError
from gpuprune.report import Report


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    path = copy_network("striatum_300", tmp)
    gpuprune.prune(str(path), device="cpu", workers=1)
    return path


class _Resources(html.parser.HTMLParser):
    """Every URL-bearing attribute of a page."""

    URL_ATTRS = {"src", "href", "srcset", "data", "poster", "action", "background"}

    def __init__(self):
        super().__init__()
        self.urls, self.images, self.tags = [], [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for k, v in attrs:
            if k in self.URL_ATTRS and v is not None:
                self.urls.append(v)
                if tag == "img":
                    self.images.append(v)


def _png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def rep(pruned):
    return gpuprune.report(str(pruned))


def test_html_self_contained_figures_and_json(rep, tmp_path):
    rep.save(str(tmp_path / "rep"))
    page = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    parser = _Resources()
    parser.feed(page)
    assert parser.urls and all(u.startswith("data:image/png;base64,") for u in parser.urls), parser.urls
    assert not parser.tags & {"script", "link", "iframe", "object", "embed"}
    assert "url(" not in page and "@import" not in page  # no CSS resource either
    assert len(parser.images) == 1 + len(rep.pathways)
    for u in parser.images:
        w, h = _png_size(base64.b64decode(u.split(",", 1)[1]))
        assert w > 100 and h > 100
    pngs = sorted(p for p in os.listdir(tmp_path / "rep") if p.endswith(".png"))
    assert len(pngs) == 1 + len(rep.pathways)
    for name in pngs:
        data = (tmp_path / "rep" / name).read_bytes()
        w, h = _png_size(data)
        assert w > 100 and h > 100 and len(data) > 5000
    loaded = Report.load(str(tmp_path / "rep"))
    assert loaded.data == rep.data
    assert json.loads(loaded.to_json()) == rep.data
    table = rep.table().splitlines()
    assert len(table) == 2 + len(rep.pathways) + 2 and table[0].split()[:3] == ["pre", "post", "connection"]


def test_figures_for_notebooks(rep):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    assert isinstance(rep.plot_pathway("dSPN,iSPN"), Figure)
    assert isinstance(rep.plot_connection_probability("iSPN,dSPN,GABA"), Figure)
    assert isinstance(rep.plot_funnel(), Figure)
    with pytest.raises(InputError, match="no pathway 'XX,YY'"):
        rep.plot_pathway("XX,YY")
    assert "<table" in rep._repr_html_()


def test_without_matplotlib(pruned, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert cli_main(["report", str(pruned), "--output", str(tmp_path / "r"), "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == 'figures skipped: matplotlib is not installed (pip install "gpuprune[plot]")'
    assert sorted(os.listdir(tmp_path / "r")) == ["index.html", "report.json"]
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert "<table" in page and "matplotlib is not installed" in page


def test_cli_writes_the_report(pruned, tmp_path, capsys):
    out_dir = tmp_path / "cli"
    assert cli_main(["report", str(pruned), "--output", str(out_dir), "--slab", "70", "--bin-width", "25",
                        "--max-distance", "300", "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "connected pairs" in text and f"wrote {out_dir / 'index.html'}" in text
    data = json.loads((out_dir / "report.json").read_text())
    assert data["options"]["distance"] == "2d" and data["options"]["slab"] == pytest.approx(70e-6)
    assert len(data["pathways"][0]["after"]["bins"]) == 12


def _error(capsys, argv):
    assert cli_main(["report", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input(pruned, tmp_path, capsys):
    net = str(pruned)
    # a missing pruned file
    assert "pruned file not found" in _error(capsys, [net, "--pruned", str(tmp_path / "none.hdf5"), "--quiet"])
    # a pruned file of another network
    other = copy_network("prune3", tmp_path)
    gpuprune.prune(str(other), device="cpu", workers=1)
    err = _error(capsys, [net, "--pruned", str(other / "network-synapses.hdf5"), "--quiet"])
    assert "belongs to another network" in err and "network-synapses.hdf5" in err
    # the same network pruned with another seed
    gpuprune.prune(net, device="cpu", workers=1, random_seed=5, output_file=str(tmp_path / "seed5.hdf5"))
    err = _error(capsys, [net, "--pruned", str(tmp_path / "seed5.hdf5"), "--quiet"])
    assert "differ from a prune of this network" in err
    assert cli_main(["report", net, "--pruned", str(tmp_path / "seed5.hdf5"), "--seed", "5", "--quiet", "--no-plots",
                        "--output", str(tmp_path / "ok")]) == 0
    capsys.readouterr()
    # not an HDF5 file
    bad = tmp_path / "bad.hdf5"
    bad.write_text("nope")
    assert "not a readable pruned network file" in _error(capsys, [net, "--pruned", str(bad), "--quiet"])
    # no pathway with data: targets that name none of the network's pathways
    err = _error(capsys, [net, "--quiet", "--targets", str(_targets(tmp_path))])
    assert "no pathway of the network matches the targets" in err
    # a network without pruning rules
    cfg = json.loads((pruned / "network-config.json").read_text())
    for region in cfg["regions"].values():
        region["connectivity"] = {}
    (tmp_path / "norules.json").write_text(json.dumps(cfg))
    gpuprune.prune(net, device="cpu", workers=1, config_file=str(tmp_path / "norules.json"),
                   output_file=str(tmp_path / "norules.hdf5"))
    err = _error(capsys, [net, "--quiet", "--config", str(tmp_path / "norules.json"), "--pruned",
                          str(tmp_path / "norules.hdf5")])
    assert "no pathway has pruning rules" in err
    with h5py.File(pruned / "network-synapses.hdf5", "r") as f:  # inputs are never modified
        assert f["network/synapses"].shape[0] > 0


def _targets(tmp_path):
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"pathway": "ChIN,LTS,GABA", "bins": [[0, 100e-6, 0.2]]}))
    return path
