"""The report's funnel against a reference made of real prunes.

Every draw is a pure function of (seed, dest, src, type, row) in philox mode, and in snudda mode
a group with parameters consumes ``3n + 2`` numbers whatever they are; so the rows and pairs left
after step k equal what ``gpuprune.prune`` keeps with a config holding only the rules up to step k
(DESIGN §3 order).  The last step must equal the pruned file.
"""

import copy
import json

import numpy as np
import pytest
from conftest import copy_network

import gpuprune
from gpuprune import engine
from gpuprune.io.network import Network
from gpuprune.report.funnel import STEPS, run_funnel

#: the pruning keys each step adds (DESIGN §3); "rule" and "putative" are counted without pruning
STEP_KEYS = {"a3": ("a3",), "f1": ("a3", "f1", "dist_pruning"), "soft_max": ("a3", "f1", "dist_pruning", "soft_max"),
             "mu2": ("a3", "f1", "dist_pruning", "soft_max", "mu2")}


def _restrict(config, keys):
    cfg = copy.deepcopy(config)
    for region in cfg.get("regions", {}).values():
        for per_type in region.get("connectivity", {}).values():
            for con in per_type.values():
                for block in ("pruning", "pruning_other"):
                    if isinstance(con.get(block), dict):
                        con[block] = {k: v for k, v in con[block].items() if k in keys}
    return cfg


def _pathway_counts(result):
    return {(p.pre, p.post, p.name.split(" (")[0]): (p.kept_rows, p.connected_pairs) for p in result.pathways}


def _funnel_counts(net, funnel, step):
    i = STEPS.index(step)
    out = {}
    for code in np.flatnonzero(funnel.rows[0]):
        pre, post, ch = (int(v) for v in funnel.codes.decode(int(code)))
        names = net.rules.describe(pre, post, ch)
        name = names[2] if names else ("gap_junction" if ch == 3 else f"channel {ch}")
        out[(net.type_names[pre], net.type_names[post], name)] = (int(funnel.rows[i, code]),
                                                                  int(funnel.pairs[i, code]))
    return out


def check_funnel(path, config_name, rng, tmp_path):
    config_path = path / config_name
    config = json.loads(config_path.read_text())
    net = Network(path, config_file=str(config_path))
    funnel = run_funnel(net, engine.PruneContext.from_network(net, mode=rng), row_budget=50_000)
    full = gpuprune.prune(path, config_file=str(config_path), rng=rng, device="cpu", workers=1,
                          output_file=str(tmp_path / "full.hdf5"))
    assert _funnel_counts(net, funnel, "putative") == {k: (p.putative_rows, p.putative_pairs) for k, p in
                                                       {(p.pre, p.post, p.name.split(" (")[0]): p
                                                        for p in full.pathways}.items()}
    assert _funnel_counts(net, funnel, "cluster") == _pathway_counts(full)
    assert funnel.kept_rows == {"synapses": full.synapses_after, "gap_junctions": full.gap_junctions_after}
    for step, keys in STEP_KEYS.items():
        cfg_file = tmp_path / f"config-{step}.json"
        cfg_file.write_text(json.dumps(_restrict(config, keys)))
        part = gpuprune.prune(path, config_file=str(cfg_file), random_seed=net.random_seed, rng=rng, device="cpu",
                              workers=1, output_file=str(tmp_path / f"{step}.hdf5"))
        assert _funnel_counts(net, funnel, step) == _pathway_counts(part), step
    # without cluster pruning the rows after mu2 and after cluster are the same
    assert np.array_equal(funnel.rows[STEPS.index("mu2")], funnel.rows[STEPS.index("cluster")])
    # groups of the funnel pass = the putative pairs, their kept rows = the pruned file's
    for kind, g in funnel.groups.items():
        assert int(g.putative.sum()) == net.num_rows(kind)
        assert int(g.kept.sum()) == funnel.kept_rows[kind]


@pytest.mark.parametrize("rng", ["philox", "snudda"])
@pytest.mark.parametrize("config", ["network-config.json"] + [f"network-config-test-{i}.json" for i in range(1, 10)])
def test_funnel_prune3(tmp_path, config, rng):
    check_funnel(copy_network("prune3", tmp_path), config, rng, tmp_path)


@pytest.mark.parametrize("network,config,rng", [
    ("striatum_300", "network-config-cluster.json", "philox"),
    ("striatum_300_pop", "network-config.json", "snudda"),
])
def test_funnel_striatum(tmp_path, network, config, rng):
    check_funnel(copy_network(network, tmp_path), config, rng, tmp_path)


@pytest.mark.parametrize("rng", ["philox", "snudda"])
def test_funnel_generated(tmp_path, rng):
    from gpuprune import synth

    path = tmp_path / "net"
    synth.generate_network(str(path), num_neurons=120, synapses_per_neuron=300, seed=7)
    check_funnel(path, "network-config.json", rng, tmp_path)
