"""Config -> parameter tables (DESIGN §1 and §3)."""

import json
import logging

import numpy as np
import pytest

from gpuprune.errors import ConfigError
from gpuprune.io.network import Network
from gpuprune.rules import (
    MAX_CONFIG_DEPTH,
    PruningRules,
    config_seed,
    load_config,
    p_keep_table,
    p_mu_table,
    split_connection_key,
)

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
    r = rules({"A,B": {"GABA": {"pruning": {"dist_pruning": "1-d"}}}}, has_max_soma_distance=False)
    assert [e.source for e in r.expressions] == ["1-d"] and not r.expressions[0].uses_r
    assert r.dist_index[r.lut[0, 1, 10, 0]] == 0 and r.needs_row_draw[r.lut[0, 1, 10, 0]]


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


@pytest.mark.parametrize("key,value", [("f1", -0.1), ("f1", 1.5), ("a3", -1e-9), ("a3", 2)])
def test_probabilities_outside_0_1_refused_naming_pathway_and_file(key, value):
    with pytest.raises(ConfigError, match=f"{key} is a probability") as err:
        rules({"A,B": {"GABA": {"pruning": {key: value}}}})
    assert "cfg.json [A,B GABA]" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("key", ["f1", "a3"])
@pytest.mark.parametrize("value", [0, 1, 0.0, 1.0])
def test_probabilities_at_0_and_1_accepted(key, value):
    r = rules({"A,B": {"GABA": {"pruning": {key: value}}}})
    assert getattr(r, key)[r.lut[0, 1, 10, 0]] == value


def test_split_connection_key():
    assert split_connection_key("A,B", "c.json") == ("A", ["B"])
    assert split_connection_key("A,['B', 'C']", "c.json") == ("A", ["B", "C"])
    for bad, fragment in [("AB", "Pre,Post"), (3, "Pre,Post"), ("A,[B, C]", "cannot parse"),
                          ("A,[1, 2]", "list of names"), ("A," + "[" * 100000, "cannot parse")]:
        with pytest.raises(ConfigError, match=fragment) as err:
            split_connection_key(bad, "c.json")
        assert str(err.value).startswith("c.json: ") and len(str(err.value)) < 200_100


def write(tmp_path, data, name="cfg.json"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_config_not_utf8(tmp_path):
    path = write(tmp_path, b'{"regions": {"R\xff": {}}}')
    with pytest.raises(ConfigError, match="not UTF-8") as err:
        load_config(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


@pytest.mark.parametrize("depth", [MAX_CONFIG_DEPTH + 1, 100_000])
def test_config_nested_too_deep(tmp_path, depth):
    path = write(tmp_path, b"[" * depth + b"]" * depth)
    with pytest.raises(ConfigError, match="deeper than") as err:
        load_config(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_config_nested_to_the_limit_loads(tmp_path):
    depth = MAX_CONFIG_DEPTH
    assert load_config(write(tmp_path, b'{"a": ' * (depth - 1) + b"{}" + b"}" * (depth - 1))) is not None


def test_config_not_json_names_file(tmp_path):
    path = write(tmp_path, b"{nope")
    with pytest.raises(ConfigError, match="not valid JSON") as err:
        load_config(path)
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("seed,fragment", [(-1, "0 .. 2\\*\\*64-1"), (2 ** 64, "0 .. 2\\*\\*64-1"),
                                           ("7", "integer"), (1.5, "integer"), (True, "integer"),
                                           (None, "null")])
def test_config_seed_out_of_range_names_config(seed, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        config_seed({"random_seed": {"prune": seed}}, "net/cfg.json")
    assert str(err.value).startswith("net/cfg.json: ")


def test_config_seed_valid():
    assert config_seed({"random_seed": {"prune": 2 ** 64 - 1}}, "c.json") == 2 ** 64 - 1
    assert config_seed({"random_seed": {"detect": 3}}, "c.json") is None
    assert config_seed({}, "c.json") is None


def test_network_with_seed_out_of_range_names_config(data, tmp_path):
    src = data / "prune3"
    cfg = json.loads((src / "network-config.json").read_text())
    cfg["random_seed"] = {"prune": 2 ** 64}
    path = tmp_path / "bad-seed.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="random_seed.prune") as err:
        Network(src, config_file=path)
    assert str(path) in str(err.value)


def test_probability_tables_of_many_values_equal_one_at_a_time():
    """The tuner builds p_keep and p_mu for a whole batch at once; each row equals the one-value table that
    prune uses, bit for bit (elementwise: a value's row does not depend on the others)."""
    import numpy as np

    from gpuprune.rules import p_keep_table, p_keep_tables, p_mu_table, p_mu_tables

    rng = np.random.default_rng(3)
    soft_max = np.concatenate([rng.uniform(0, 10, 500), [0, 1, 2, 3, 2.5]])
    mu2 = np.concatenate([rng.uniform(1e-3, 10, 500), [1, 2, 3, 0.5]])
    for n_max in (0, 5, 40, 700):
        keep, mu = p_keep_tables(soft_max, n_max), p_mu_tables(mu2, n_max)
        assert keep.shape == (soft_max.size, n_max + 1) and mu.shape == (mu2.size, n_max + 1)
        assert keep.tobytes() == np.stack([p_keep_table(v, n_max) for v in soft_max.tolist()]).tobytes()
        assert mu.tobytes() == np.stack([p_mu_table(v, n_max) for v in mu2.tolist()]).tobytes()
