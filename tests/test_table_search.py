"""Table-driven search: joining and validating CSVs, constraints, table_search and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supernas.bench.table import TableEstimator, load_tables, parse_column_constraint
from supernas.bench.table_search import table_search
from supernas.cli import app
from supernas.errors import SupernasError
from supernas.estimate import Estimator
from supernas.space import get_space

NB201 = Path(__file__).resolve().parents[2] / "shared/data/nb201"
needs_nb201 = pytest.mark.skipif(
    not (NB201 / "accuracy.csv").is_file(), reason="shared NB201 tables absent"
)
runner = CliRunner()


def _write(path: Path, rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(str(c) for c in r) for r in rows) + "\n")
    return path


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path, dict[str, tuple[float, float]]]:
    """25 NB201 archs (two edges vary); accuracy peaks at a known arch, latency grows with i+j."""
    sp = get_space("nb201")
    ops = sp.choices[0].options
    truth, acc, lat = {}, [["arch", "acc", "index"]], [["index", "arch", "lat"]]
    for i, a in enumerate(ops):
        for j, b in enumerate(ops):
            arch = str(sp.arch([a, b, "none", "none", "none", "none"]))
            value = 50.0 + 10 * i - (j - 2) ** 2 + 0.1 * j  # best: i=4, j=2
            truth[arch] = (value, float(i + j))
            acc.append([arch, value, 5 * i + j])
            lat.append([5 * i + j, arch, i + j])
    return _write(tmp_path / "acc.csv", acc), _write(tmp_path / "lat.csv", lat), truth


# -- loading and validation ----------------------------------------------------------------
def test_join_keeps_shared_identical_columns_once(small) -> None:
    acc, lat, truth = small
    t = load_tables([acc, lat])
    assert len(t) == 25 and t.columns == ["acc", "index", "lat"]
    assert t.values("acc") == {a: v[0] for a, v in truth.items()}
    assert t.space().name == "nb201"


def test_join_is_inner_and_differing_columns_get_file_suffixes(small, tmp_path: Path) -> None:
    acc, _, truth = small
    archs = list(truth)
    other = _write(tmp_path / "other.csv", [["arch", "acc"], [archs[0], 1], [archs[1], 2]])
    t = load_tables([acc, other])
    assert len(t) == 2 and {"acc.acc", "other.acc"} <= set(t.columns)
    with pytest.raises(SupernasError, match=r"acc\.acc, other\.acc"):
        t.values("acc")


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([["name", "acc"], ["x", 1]], "no 'arch' column"),
        ([["arch", "acc"], ["a", 1], ["a", 2]], "appears twice"),
        ([["arch", "acc"], ["a", 1, 3]], "line 2: 3 cells"),
    ],
)
def test_bad_csvs_are_clear_errors(tmp_path: Path, rows, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        load_tables([_write(tmp_path / "t.csv", rows)])


def test_missing_file_non_numeric_cells_and_unknown_space(small, tmp_path: Path) -> None:
    _, _, truth = small
    with pytest.raises(SupernasError, match="table not found"):
        load_tables([tmp_path / "nope.csv"])
    arch = next(iter(truth))
    bad = _write(tmp_path / "bad.csv", [["arch", "acc", "note"], [arch, "oops", "text"]])
    t = load_tables([bad])
    with pytest.raises(SupernasError, match=r"bad.csv, column 'acc', line 2 .*'oops'"):
        t.values("acc")
    with pytest.raises(SupernasError, match="unknown column 'nope'"):
        t.values("nope")
    alien = load_tables([_write(tmp_path / "alien.csv", [["arch", "acc"], ["resnet-9", 1]])])
    with pytest.raises(SupernasError, match="not in a known space"):
        alien.space()


def test_estimator_protocol_and_constraints(small) -> None:
    acc, lat, truth = small
    t = load_tables([acc, lat])
    sp = t.space()
    est = TableEstimator(t, "lat", minimize=True)
    assert isinstance(est, Estimator)
    archs = [sp.parse(a) for a in truth]
    assert est.score(archs[:2]) == [-truth[str(a)][1] for a in archs[:2]]
    with pytest.raises(SupernasError, match="not in the table"):
        est.score([sp.arch(["none"] * 5 + ["skip_connect"])])
    c = parse_column_constraint("lat <= 3", t)
    assert [c(a) for a in archs] == [truth[str(a)][1] <= 3 for a in archs]
    med = parse_column_constraint("lat<median", t)
    assert med.threshold == 4.0 and sum(map(med, archs)) == 10
    for bad in ("lat=3", "lat<=fast", "nope<=3"):
        with pytest.raises(SupernasError):
            parse_column_constraint(bad, t)


# -- search --------------------------------------------------------------------------------
def test_exhaustive_finds_the_known_optimum_under_a_constraint(small) -> None:
    acc, lat, truth = small
    best = max(truth, key=lambda a: truth[a][0])
    r = table_search([acc, lat], "acc", strategy="exhaustive", budget=25, seeds=2)
    assert all(s["best_arch"] == best for s in r["seeds"]) and r["oracle"]["arch"] == best
    assert r["regret"]["mean"] == 0.0 and r["std"] == 0.0
    feasible = {a for a, v in truth.items() if v[1] <= 4}
    cbest = max(feasible, key=lambda a: truth[a][0])
    r = table_search(
        [acc, lat],
        "acc",
        constraints=["lat<=4"],
        strategy="exhaustive",
        budget=100,
        seeds=[3],
        strategy_options={"shuffle": True},
    )
    s = r["seeds"][0]
    assert s["queries"] == len(feasible) and s["best_arch"] == cbest and r["feasible_archs"] == 15
    assert s["trajectory"] == sorted(s["trajectory"]) and s["trajectory"][-1] == truth[cbest][0]


def test_multi_objective_front_and_errors(small) -> None:
    acc, lat, truth = small
    r = table_search([acc, lat], "acc", minimize=["lat"], strategy="exhaustive", budget=25, seeds=1)
    front = {p["arch"] for p in r["seeds"][0]["front"]}
    assert front == {p["arch"] for p in r["oracle"]["front"]}
    for a in front:  # nothing in the table is at least as good on both and better on one
        acc_a, lat_a = truth[a]
        assert not any(v[0] >= acc_a and v[1] <= lat_a and v != truth[a] for v in truth.values())
    assert math.isclose(r["mean"], r["oracle"]["hypervolume"]) and r["mean"] > 0
    assert r["reference"] == {"acc": min(v[0] for v in truth.values()), "lat": 8.0}
    with pytest.raises(SupernasError, match="optimises one objective"):
        table_search([acc, lat], "acc", minimize=["lat"], strategy="evolution", seeds=1)
    with pytest.raises(SupernasError, match="use --strategy exhaustive"):
        table_search([acc, lat], "acc", strategy="random", seeds=1)


@needs_nb201
def test_nb201_random_and_evolution_stay_feasible() -> None:
    t = load_tables([NB201 / "accuracy.csv", NB201 / "latency.csv"])
    sp = t.space()
    lat = t.arch_values("edgegpu_latency")
    for strategy in ("random", "evolution"):
        r = table_search(
            t,
            "cifar10_valid",
            report="cifar10_test",
            constraints=["edgegpu_latency<=median"],
            strategy=strategy,
            budget=30,
            seeds=3,
            strategy_options={"population": 10, "sample_size": 3}
            if strategy == "evolution"
            else {},
        )
        assert r["feasible_fraction"] == 1.0 and len(r["seeds"]) == 3
        med = parse_column_constraint("edgegpu_latency<=median", t).threshold
        for s in r["seeds"]:
            assert lat[sp.parse(s["best_arch"])] <= med and len(s["trajectory"]) == 30
            assert s["report"] == t.values("cifar10_test")[s["best_arch"]]


# -- CLI -----------------------------------------------------------------------------------
def test_cli_writes_result_json_and_pngs(small, tmp_path: Path) -> None:
    acc, lat, _ = small
    out = tmp_path / "res" / "result.json"
    args = ["bench", "search", "--table", str(acc), "--table", str(lat), "--objective", "acc"]
    res = runner.invoke(
        app,
        [
            *args,
            "--strategy",
            "exhaustive",
            "--strategy-opt",
            "shuffle=true",
            "--budget",
            "10",
            "--seeds",
            "3",
            "--constraint",
            "lat<=median",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert {"mean", "std", "seeds"} <= set(data) and len(data["seeds"]) == 3
    assert [s["seed"] for s in data["seeds"]] == [0, 1, 2]
    for s in data["seeds"]:
        assert {"seed", "best_arch", "objective", "report", "trajectory"} <= set(s)
        assert len(s["trajectory"]) == 10
    assert (out.parent / "result_regret.png").stat().st_size > 1000
    res = runner.invoke(
        app,
        [
            *args,
            "--minimize",
            "lat",
            "--strategy",
            "exhaustive",
            "--budget",
            "25",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "hypervolume" in res.output
    assert (out.parent / "result_pareto.png").is_file()
    assert (out.parent / "result_pareto.csv").read_text().startswith("seed,arch,acc,lat")


@pytest.mark.parametrize(
    "extra",
    [
        ["--table", "missing.csv", "--objective", "acc"],
        ["--objective", "nope"],
        ["--objective", "acc", "--constraint", "lat=3"],
        ["--objective", "acc", "--strategy", "nope"],
        ["--objective", "acc", "--strategy", "exhaustive", "--strategy-opt", "nope=1"],
        ["--objective", "acc", "--strategy", "random"],
    ],
)
def test_cli_bad_input_is_one_error_line_and_exit_2(small, tmp_path: Path, extra) -> None:
    acc, lat, _ = small
    tables = [] if "missing.csv" in extra else ["--table", str(acc), "--table", str(lat)]
    res = runner.invoke(
        app, ["bench", "search", *tables, *extra, "--out", str(tmp_path / "r.json")]
    )
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
