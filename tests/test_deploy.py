"""Multi-objective supernet search and train-once-deploy-many, against exact oracles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supernas import ArchCost, get_space
from supernas.cli import app
from supernas.deploy import deploy_many, pareto_search
from supernas.errors import SupernasError
from supernas.search.pareto import hypervolume, non_dominated
from supernas.space import Arch

OP_SCORE = {
    "none": 0.0,
    "skip_connect": 0.3,
    "avg_pool_3x3": 0.2,
    "nor_conv_1x1": 0.6,
    "nor_conv_3x3": 1.0,
}


@pytest.fixture(scope="module")
def space():
    return get_space("nb201", C=4, N=1, in_channels=1)


@pytest.fixture(scope="module")
def cost(space):
    return ArchCost(space, (1, 8, 8))


def score(archs: list[Arch]) -> list[float]:
    """A synthetic accuracy: bigger ops score higher, so it conflicts with params."""
    return [sum(OP_SCORE[str(v)] for v in a.values) / 6 for a in archs]


def test_pareto_front_is_non_dominated_and_keeps_all_hypervolume(space, cost) -> None:
    res = pareto_search(space, score, cost, ["params"], strategy="nsga2", budget=40, seed=0)
    pts = [(e["estimate"], -e["params"]) for e in res["evaluated"]]
    front = {(f["estimate"], -f["params"]) for f in res["front"]}
    assert front == {pts[i] for i in non_dominated(pts)}
    ref = (0.0, -res["reference"]["params"])
    # dominated points add no volume: the front's hypervolume equals all points' hypervolume
    assert res["hypervolume"] == pytest.approx(hypervolume(pts, ref))
    assert res["hypervolume"] > 0
    for f in res["front"]:
        assert f["params"] == cost.params(space.parse(f["arch"]))


def test_deploy_many_one_best_arch_per_target(space, cost) -> None:
    small = min(cost.params(space.sample(s)) for s in range(20))
    rows = deploy_many(
        space,
        score,
        cost,
        [f"params<={small}", "params<=1e9", "params<=1"],
        strategy="evolution",
        budget=30,
        seed=0,
    )
    assert [r["target"] for r in rows] == [f"params<={small}", "params<=1e9", "params<=1"]
    assert rows[0]["params"] <= small and rows[1]["best_arch"] is not None
    assert rows[1]["estimate"] >= rows[0]["estimate"]  # a looser target can only help here
    assert rows[2]["best_arch"] is None and "loosen" in rows[2]["error"]


def test_pareto_search_needs_a_metric(space, cost) -> None:
    with pytest.raises(SupernasError, match="at least one metric"):
        pareto_search(space, score, cost, [])
    with pytest.raises(SupernasError, match="unknown cost metric"):
        pareto_search(space, score, cost, ["watts"])


def test_cli_pareto_and_deploy(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "train",
            "--space",
            "nb201",
            "--space-opt",
            "C=4",
            "--space-opt",
            "N=1",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    sn = str(tmp_path / "supernet.pt")
    out = tmp_path / "front.json"
    r = runner.invoke(
        app,
        [
            "search",
            "--supernet",
            sn,
            "--objective",
            "accuracy",
            "--minimize",
            "params",
            "--budget",
            "12",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["front"] and res["hypervolume"] > 0
    assert (tmp_path / "front.front.csv").read_text().startswith("arch,estimate,params")
    assert (tmp_path / "front.front.png").stat().st_size > 1000
    r = runner.invoke(
        app,
        [
            "search",
            "--supernet",
            sn,
            "--target",
            "params<=20000",
            "--target",
            "params<=1e9",
            "--budget",
            "6",
            "--out",
            str(tmp_path / "d.json"),
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "d.json").read_text())["targets"]
    assert len(rows) == 2 and all(r["best_arch"] for r in rows)
    r = runner.invoke(
        app, ["search", "--supernet", sn, "--minimize", "params", "--target", "params<=1e9"]
    )
    assert r.exit_code == 2 and "either --minimize" in r.output
    r = runner.invoke(app, ["search", "--supernet", sn, "--objective", "loss"])
    assert r.exit_code == 2 and "valid: accuracy" in r.output
