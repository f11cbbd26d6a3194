"""The proxy registry, ensembles, ProxyEstimator, the proxy batch and the two CLI commands.

Each proxy's own value is checked by hand in the test_proxies_<family>.py files; here every
registered proxy runs on every space through the same suite.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import SHARED_DATA
from supernas.bench.correlate import correlation, top_precision
from supernas.cli import app
from supernas.errors import SupernasError
from supernas.proxies import (
    PROXIES,
    Ensemble,
    ProxyEstimator,
    get_proxy,
    list_proxies,
    majority_vote,
    proxy_batch,
    rank_average,
)
from supernas.space import Arch, get_space, list_spaces
from test_supernet import SMALL

runner = CliRunner()
TABLE = SHARED_DATA / "nb201" / "accuracy.csv"
DISCONNECTED = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def tiny(space: str):
    """The smallest networks of each space, with a batch that fits them."""
    if space == "nb201":
        sp = get_space("nb201", C=4, N=1)
        return sp, proxy_batch("random", sp, batch_size=8, seed=0)
    sp = get_space(space, **{**SMALL.get(space, {}), "in_channels": 1, "num_classes": 10})
    gen = torch.Generator().manual_seed(0)
    return sp, (torch.randn(8, 1, 8, 8, generator=gen), torch.arange(8) % 10)


# -- ensembles -----------------------------------------------------------------------------
def test_majority_vote_by_hand() -> None:
    # members (columns) disagree on b vs c; a beats both under every member.
    s = np.array([[3.0, 3.0, 3.0], [2.0, 1.0, 2.0], [1.0, 2.0, 1.0]])
    # a beats b and c: 2/2; b beats c (2 of 3 members): 1/2; c beats nobody: 0.
    assert majority_vote(s).tolist() == [1.0, 0.5, 0.0]


def test_majority_vote_ties_and_nan() -> None:
    s = np.array([[1.0, np.nan], [1.0, 0.0]])  # a member tie and a member NaN (worst)
    # a vs b: member 0 ties, member 1 says b (NaN < 0): b wins the majority.
    assert majority_vote(s).tolist() == [0.0, 1.0]


def test_rank_average_by_hand() -> None:
    s = np.array([[1.0, 30.0], [2.0, 10.0], [3.0, 20.0]])
    # ranks: col0 1,2,3; col1 3,1,2 -> means 2, 1.5, 2.5 over n=3
    assert rank_average(s) == pytest.approx([2 / 3, 0.5, 2.5 / 3])


def test_ensemble_spelling_and_errors() -> None:
    e = get_proxy("rankavg:params+flops")
    assert isinstance(e, Ensemble) and e.members == ("params", "flops")
    assert isinstance(get_proxy("vote"), Ensemble)
    with pytest.raises(SupernasError, match=r"valid:.*params"):
        get_proxy("no_such_proxy")
    with pytest.raises(SupernasError, match="at least two"):
        get_proxy("rankavg:params")
    with pytest.raises(SupernasError, match="valid:"):
        get_proxy("rankavg:params+nope")
    with pytest.raises(SupernasError, match="unknown ensemble"):
        get_proxy("mean:params+flops")


def test_registry_lists_the_issue_proxies() -> None:
    wanted = {"params", "flops", "vote"}
    assert wanted <= set(list_proxies())


# -- every proxy on every space ---------------------------------------------------------------
@pytest.mark.parametrize("space", list_spaces())
@pytest.mark.parametrize("name", list_proxies())
def test_every_proxy_runs_on_every_space_deterministically(name: str, space: str) -> None:
    sp, batch = tiny(space)
    archs = [sp.sample(np.random.default_rng(i)) for i in range(3)]
    first = ProxyEstimator(sp, [name], batch, seed=3).score_table(archs)[name]
    again = ProxyEstimator(sp, [name], batch, seed=3).score_table(archs)[name]
    assert len(first) == 3 and all(isinstance(v, float) for v in first)
    np.testing.assert_array_equal(np.array(first), np.array(again))


@pytest.mark.parametrize("name", list_proxies())
def test_every_proxy_survives_a_disconnected_cell(name: str) -> None:
    sp, batch = tiny("nb201")
    est = ProxyEstimator(sp, [name], batch)
    (value,) = est.score_table([sp.parse(DISCONNECTED)])[name]
    assert isinstance(value, float)  # NaN is fine (counted); a crash is not
    if math.isnan(value):
        assert sum(est.warnings.values()) >= 1


# -- ProxyEstimator ------------------------------------------------------------------------
def test_scores_do_not_depend_on_order_or_company() -> None:
    sp, batch = tiny("nb201")
    a, b = (sp.sample(np.random.default_rng(i)) for i in (1, 2))
    est = ProxyEstimator(sp, ["l2_norm" if "l2_norm" in PROXIES else "params"], batch, seed=0)
    assert est.score([a, b]) == est.score([b, a])[::-1]
    assert est.score([a]) == est.score([a, b])[:1]


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    sp, batch = tiny("nb201")
    a = sp.sample(np.random.default_rng(0))
    w = [ProxyEstimator(sp, ["params"], batch, seed=s).network(a).stem[0].weight for s in (0, 0, 1)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_undefined_scores_become_counted_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    sp, batch = tiny("nb201")
    monkeypatch.setitem(PROXIES._items, "t_inf", lambda *_: math.inf)

    def boom(model, batch, loss_fn):
        raise RuntimeError("singular matrix")

    monkeypatch.setitem(PROXIES._items, "t_boom", boom)
    est = ProxyEstimator(sp, ["t_inf", "t_boom", "params"], batch)
    archs = [sp.sample(np.random.default_rng(i)) for i in range(2)]
    table = est.score_table(archs)
    assert all(math.isnan(v) for v in table["t_inf"] + table["t_boom"])
    assert all(v > 0 for v in table["params"])
    assert est.warnings == {"t_inf": 2, "t_boom": 2}


def test_a_programming_error_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    sp, batch = tiny("nb201")

    def buggy(model, batch, loss_fn):
        raise KeyError("bug")

    monkeypatch.setitem(PROXIES._items, "t_bug", buggy)
    with pytest.raises(KeyError):
        ProxyEstimator(sp, ["t_bug"], batch).score([sp.sample(np.random.default_rng(0))])


def test_checkpoint_resumes_without_rescoring(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    sp, batch = tiny("nb201")
    calls = []

    def counting(model, batch, loss_fn):
        calls.append(1)
        return float(sum(p.numel() for p in model.parameters()))

    monkeypatch.setitem(PROXIES._items, "t_count", counting)
    archs = [sp.sample(np.random.default_rng(i)) for i in range(5)]
    ckpt = tmp_path / "raw.json"
    first = ProxyEstimator(sp, ["t_count"], batch).score_table(archs[:3], checkpoint=ckpt, every=1)
    assert len(calls) == 3
    # A "killed" run scored 3 of 5: the rerun over the same 5 archs must refuse (other archs)...
    with pytest.raises(SupernasError, match="other settings"):
        ProxyEstimator(sp, ["t_count"], batch).score_table(archs, checkpoint=ckpt)
    # ...and over the same archs it reuses every saved row.
    again = ProxyEstimator(sp, ["t_count"], batch).score_table(archs[:3], checkpoint=ckpt)
    assert again == first and len(calls) == 3


def test_ensemble_scores_against_a_fixed_reference() -> None:
    sp, batch = tiny("nb201")
    est = ProxyEstimator(sp, ["rankavg:params+flops"], batch, reference=8)
    a, b = (sp.sample(np.random.default_rng(i)) for i in (5, 6))
    assert est.score([a, b]) == est.score([b, a])[::-1]
    assert all(0 < v <= 1 for v in est.score([a, b]))


def test_az_nas_members_come_from_one_pass_when_registered() -> None:
    if "az_nas" not in PROXIES:
        pytest.skip("az_nas not registered")
    ens = get_proxy("az_nas")
    assert isinstance(ens, Ensemble) and ens.measure is not None and len(ens.members) == 4


# -- the batch -----------------------------------------------------------------------------
def test_nb201_batch_is_fashion_mnist_as_cifar_shaped_images() -> None:
    sp = get_space("nb201", C=4, N=1)
    x, y = proxy_batch("fashion-mnist", sp, batch_size=16, seed=1)
    assert x.shape == (16, 3, 32, 32) and y.shape == (16,)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    x2, y2 = proxy_batch("fashion-mnist", sp, batch_size=16, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_batch_errors() -> None:
    sp = get_space("nb201", C=4, N=1, num_classes=5)
    with pytest.raises(SupernasError, match="10 classes"):
        proxy_batch("digits", sp, batch_size=8)
    with pytest.raises(SupernasError, match="at least 2"):
        proxy_batch("random", sp, batch_size=1)


# -- correlation ---------------------------------------------------------------------------
def test_top_precision_by_hand() -> None:
    truth = np.arange(10.0)
    est = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9.5, 9.0])
    assert top_precision(est, truth, 0.2) == 1.0
    assert top_precision(-truth, truth, 0.2) == 0.0


def test_nan_is_worst_or_dropped() -> None:
    truth = [1.0, 2.0, 3.0, 4.0]
    worst = correlation([math.nan, 2.0, 3.0, 4.0], truth)
    assert worst["spearman"] == pytest.approx(1.0) and worst["n_nan"] == 1 and worst["n"] == 4
    dropped = correlation([4.0, math.nan, 3.0, 5.0], truth, nan="drop")
    assert dropped["n"] == 3 and dropped["spearman"] == pytest.approx(0.5)


# -- CLI ----------------------------------------------------------------------------------
def _archs_csv(path, archs):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "arch", "note"])
        for i, a in enumerate(archs):
            w.writerow([i, a, "ignored"])


NB201_TINY = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1"]


def test_cli_proxies_then_correlate(tmp_path) -> None:
    sp = get_space("nb201")
    archs = [str(sp.sample(np.random.default_rng(i))) for i in range(6)] + [DISCONNECTED]
    _archs_csv(tmp_path / "a.csv", archs)
    out = tmp_path / "scores.csv"
    r = runner.invoke(
        app,
        [
            "proxies",
            *NB201_TINY,
            "--archs",
            str(tmp_path / "a.csv"),
            "--proxies",
            "params,flops,rankavg:params+flops",
            "--data",
            "random",
            "--batch-size",
            "8",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert [row["arch"] for row in rows] == archs  # input order kept
    assert list(rows[0]) == ["arch", "params", "flops", "rankavg:params+flops"]
    assert not (tmp_path / "scores.csv.partial.json").exists()
    r = runner.invoke(
        app,
        [
            "correlate",
            "--scores",
            str(out),
            "--table",
            str(TABLE),
            "--target",
            "cifar10_test",
            "--json",
            str(tmp_path / "c.json"),
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "c.json").read_text())["proxies"]
    assert set(res) == {"params", "flops", "rankavg:params+flops"}
    assert res["params"]["n"] == 7 and -1 <= res["params"]["spearman"] <= 1


def test_cli_writes_nan_as_an_empty_cell(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROXIES._items, "t_nan", lambda *_: math.nan)
    out = tmp_path / "s.csv"
    r = runner.invoke(
        app,
        [
            "proxies",
            *NB201_TINY,
            "--sample",
            "2",
            "--proxies",
            "t_nan,params",
            "-q",
            "--batch-size",
            "4",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert [row["t_nan"] for row in rows] == ["", ""] and all(row["params"] for row in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "2", "--proxies", "nope"], "unknown proxy 'nope'; valid:"),
        (["--proxies", "params"], "either --archs FILE or --sample N"),
        (["--sample", "2", "--proxies", "params", "--space", "nosuch"], "unknown space"),
        (["--sample", "2", "--data", "nosuch"], "nosuch"),
    ],
)
def test_cli_proxies_bad_input(args, message, tmp_path) -> None:
    r = runner.invoke(app, ["proxies", *args, "--out", str(tmp_path / "s.csv"), "-q"])
    assert r.exit_code == 2 and message in r.output


def test_cli_proxies_names_the_bad_line(tmp_path) -> None:
    _archs_csv(tmp_path / "a.csv", [str(get_space("nb201").sample(0)), "|bogus~0|"])
    r = runner.invoke(
        app, ["proxies", "--archs", str(tmp_path / "a.csv"), "--out", str(tmp_path / "s.csv")]
    )
    assert r.exit_code == 2 and "line 3" in r.output


def test_cli_correlate_bad_input(tmp_path) -> None:
    (tmp_path / "s.csv").write_text("arch,p\n|none~0|+|none~0|none~1|+|none~0|none~1|x~2|,1\n")
    r = runner.invoke(
        app,
        [
            "correlate",
            "--scores",
            str(tmp_path / "s.csv"),
            "--target",
            "cifar10_test",
            "--table",
            str(TABLE),
        ],
    )
    assert r.exit_code == 2 and "line 2" in r.output
    r = runner.invoke(
        app,
        [
            "correlate",
            "--scores",
            str(tmp_path / "s.csv"),
            "--target",
            "no_col",
            "--table",
            str(TABLE),
        ],
    )
    assert r.exit_code == 2 and "unknown column" in r.output


def test_cli_zero_shot_search_finds_the_biggest_net_by_params(tmp_path) -> None:
    """The top-k of a zero-shot search are the evaluated archs with the highest proxy value."""
    out = tmp_path / "r.json"
    r = runner.invoke(
        app,
        [
            "search",
            "--proxy",
            "params",
            *NB201_TINY,
            "--data",
            "random",
            "--budget",
            "30",
            "--strategy",
            "random",
            "--batch-size",
            "4",
            "--top-k",
            "3",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    values = [t["estimate"] for t in res["top_k"]]
    assert values == sorted(values, reverse=True)
    sp = get_space("nb201", C=4, N=1)
    evaluated = [Arch.from_json(t["arch"]) for t in res["result"]["trials"]]
    best = max(ProxyEstimator(sp, ["params"], proxy_batch("random", sp)).score(evaluated))
    assert values[0] == best


def test_cli_search_needs_exactly_one_estimator(tmp_path) -> None:
    r = runner.invoke(app, ["search", "--budget", "2"])
    assert r.exit_code == 2 and "either --supernet" in r.output
