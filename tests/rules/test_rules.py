"""Config -> parameter tables (DESIGN §1 and §3)."""

import json
import logging

import numpy as np
import pytest

from gpuprune.errors import ConfigError
from gpuprune.io.network import Network
from gpuprune.rules import PruningRules, p_keep_table, p_mu_table

DIST = {"A$$B": {"GABA": {"channel_model_id": 10}, "gap_junction": {"channel_model_id": 3}},
        "B$$A": {"GABA": {"channel_model_id": 10}},
        "A$$A": {"GABA": {"channel_model_id": 10}}}


def rules(connectivity, types=("A", "B"), regions=None, **kw):
    cfg = {"regions": regions or {"R": {"connectivity": connectivity}}}
    return PruningRules(cfg, "cfg.json", list(types), DIST, **kw)


def test_defaults_completed_like_snudda():
    r = rules({"A,B": {"GABA": {"pruning": {"f1": None}}}})
    (ps,) = r.parameter_sets
    assert (ps.f1, ps.soft_max, ps.mu2, ps.a3, ps.dist_pruning, ps.cluster_pruning) == \
        (1.0, None, None, None, None, False)
    assert r.lut[0, 1, 10, 0] == 0 and r.lut[0, 1, 10, 1] == 0
    assert r.lut[1, 0, 10, 0] == -1
    assert not r.needs_row_draw[0]  # f1 = 1 and no distance rule: no draw can change a decision


def test_pruning_other_selected_by_unit():
    r = rules({"A,B": {"GABA": {"pruning": {"f1": 0.5}, "pruning_other": {"f1": 0.25}}}})
    same, other = r.lut[0, 1, 10]
    assert r.f1[same] == 0.5 and r.f1[other] == 0.25
    idx = r.parameter_index(np.array([0, 0]), np.array([1, 1]), np.array([10, 10]), np.array([False, True]))
    assert idx.tolist() == [same, other]
    assert r.parameter_index(np.array([0]), np.array([1]), np.array([99]), np.array([False])).tolist() == [-1]


def test_pruning_other_null_is_error():
    with pytest.raises(ConfigError, match="pruning_other"):
        rules({"A,B": {"GABA": {"pruning": {}, "pruning_other": None}}})


def test_unknown_keys_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="gpuprune"):
        rules({"A,B": {"GABA": {"pruning": {"soft-max": 3, "f1": 0.5}}}})
    assert "soft-max" in caplog.text and "cfg.json" in caplog.text


def test_absent_type_skipped_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="gpuprune"):
        r = rules({"A,Z": {"GABA": {"pruning": {}}}, "A,B": {"GABA": {"pruning": {}}}})
    assert "Z" in caplog.text
    assert len(r.pathways) == 1


def test_missing_connectivity_distribution_is_error():
    with pytest.raises(ConfigError, match="connectivity_distributions"):
        rules({"B,B": {"GABA": {"pruning": {}}}})


def test_post_type_list_and_last_wins():
    r = rules({}, regions={
        "R1": {"connectivity": {"A,['B', 'A']": {"GABA": {"pruning": {"f1": 0.1}}}}},
        "R2": {"connectivity": {"A,B": {"GABA": {"pruning": {"f1": 0.7}}}}},
    })
    assert r.f1[r.lut[0, 1, 10, 0]] == 0.7
    assert r.f1[r.lut[0, 0, 10, 0]] == 0.1


def test_gap_junction_distance_pruning_refused():
    with pytest.raises(ConfigError, match="gap junction"):
        rules({"A,B": {"gap_junction": {"pruning": {"dist_pruning": "1*(d <= 120e-6)"}}}})


def test_expression_in_r_needs_max_soma_distance():
    with pytest.raises(ConfigError, match="max_soma_distance_dend"):
        rules({"A,B": {"GABA": {"pruning": {"dist_pruning": "1-r"}}}}, has_max_soma_distance=False)
    rules({"A,B": {"GABA": {"pruning": {"dist_pruning": "1-d"}}}}, has_max_soma_distance=False)


@pytest.mark.parametrize("block,fragment", [
    ({"f1": "0.5"}, "f1"),
    ({"mu2": 0}, "mu2"),
    ({"soft_max": -1}, "soft_max"),
    ({"a3": True}, "a3"),
    ({"cluster_pruning": "yes"}, "cluster_pruning"),
    ({"dist_pruning": "open('x')"}, "not allowed"),
    ("nope", "object"),
])
def test_bad_values(block, fragment):
    with pytest.raises(ConfigError, match=fragment):
        rules({"A,B": {"GABA": {"pruning": block}}})


def test_probability_tables_match_snudda_arithmetic():
    # Snudda: p_keep = np.divide(2*sm, (1 + np.exp(-(n_keep - sm)/5)) * n_keep) with sm = float(soft_max)
    for sm in (1, 3, 5, 2.5):
        t = p_keep_table(sm, 40)
        for n in range(1, 41):
            n_keep = np.int64(n)
            assert t[n] == np.divide(2 * float(sm), (1 + np.exp(-(n_keep - float(sm)) / 5)) * n_keep)
    # Snudda: p_mu = 1.0 / (1.0 + np.exp(-8.0 / mu2 * (n_keep - mu2))) with the JSON value of mu2
    for mu2 in (2, 15, 1.6864, 3):
        t = p_mu_table(mu2, 40)
        for n in range(0, 41):
            assert t[n] == 1.0 / (1.0 + np.exp(-8.0 / mu2 * (np.int64(n) - mu2)))


def test_real_config(data):
    net = Network(data / "striatum_300")
    r = net.rules
    fs, dspn = net.type_names.index("FS"), net.type_names.index("dSPN")
    i = r.lut[fs, dspn, 11, 0]
    ps = r.parameter_sets[i]
    assert (ps.f1, ps.soft_max, ps.mu2, ps.a3) == (0.5, 5, 2, 1.0)
    assert ps.dist_pruning.source == "exp(-(0.5*d/60e-6)**2)"
    cfg = json.loads((data / "striatum_300" / "network-config.json").read_text())
    assert net.random_seed == cfg["random_seed"]["prune"]
