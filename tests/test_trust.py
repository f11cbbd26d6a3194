"""Trust report: multi-seed tables, the seed noise ceiling, trust metrics, `supernas trust`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supernas.bench.table import load_tables, seed_values
from supernas.bench.trust import create_estimator, noise_ceiling, trust_metrics, verdict
from supernas.cli import app
from supernas.data import load_data
from supernas.errors import SupernasError
from supernas.space import get_space

runner = CliRunner()
HEADER = "arch,seed,val_accuracy,test_accuracy,params,flops,train_seconds,note"
# Hand-checked: seed 0 ranks a<b<c<d, seed 1 ranks b<a<c<d (one discordant pair of six).
ROWS = [
    "a,0,0.40,0.50,100,10,1.0,1",
    "a,1,0.44,0.54,100,10,3.0,1",
    "b,0,0.45,0.60,200,20,1.0,1",
    "b,1,0.47,0.52,200,20,1.0,1",
    "c,0,0.60,0.70,300,30,1.0,1",
    "c,1,0.62,0.74,300,30,1.0,oops",
    "d,0,0.70,0.80,400,40,1.0,1",
    "d,1,0.72,0.78,400,40,1.0,1",
    "e,0,0.90,0.90,500,50,1.0,1",  # one seed only: in the table, not in the ceiling
]
MEANS = {"a": 0.52, "b": 0.56, "c": 0.72, "d": 0.79, "e": 0.90}


def _csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def two_seeds(tmp_path: Path) -> Path:
    return _csv(tmp_path / "truth.csv", ROWS)


# -- multi-seed tables -------------------------------------------------------------------------
def test_multi_seed_rows_are_averaged_per_arch(two_seeds: Path) -> None:
    t = load_tables([two_seeds])
    assert t.archs == list("abcde") and "seed" not in t.columns and "n_seeds" in t.columns
    assert t.values("test_accuracy") == pytest.approx(MEANS)
    assert t.values("train_seconds")["a"] == pytest.approx(2.0)
    assert t.values("n_seeds") == {"a": 2, "b": 2, "c": 2, "d": 2, "e": 1}
    with pytest.raises(SupernasError, match=r"arch c\): the seeds disagree \(lines 6, 7\)"):
        t.values("note")
    assert seed_values(two_seeds, "test_accuracy")["1"] == pytest.approx(
        {"a": 0.54, "b": 0.52, "c": 0.74, "d": 0.78}
    )


def test_multi_seed_joins_with_a_single_seed_table(two_seeds: Path, tmp_path: Path) -> None:
    lat = _csv(tmp_path / "lat.csv", ["a,100,1.5", "b,200,2.5", "c,300,3.5"], "arch,params,lat")
    t = load_tables([two_seeds, lat])
    assert t.archs == list("abc") and "params" in t.columns  # equal per arch: kept once
    assert t.values("lat") == {"a": 1.5, "b": 2.5, "c": 3.5}


def test_repeated_arch_and_seed_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    bad = _csv(tmp_path / "dup.csv", ["a,0,0.4,0.5,1,1,1,x", "a,1,0.4,0.5,1,1,1,x", ROWS[0]])
    with pytest.raises(SupernasError, match=r"'a' with seed 0 appears twice \(lines 2 and 4\)"):
        load_tables([bad])


def test_bad_number_in_one_seed_names_file_line_and_arch(tmp_path: Path) -> None:
    bad = _csv(tmp_path / "bad.csv", ["a,0,0.4,oops,1,1,1,x", "a,1,0.4,oops,1,1,1,x"])
    with pytest.raises(SupernasError, match=r"bad.csv, column 'test_accuracy', line 2 .*'oops'"):
        load_tables([bad]).values("test_accuracy")


# -- noise ceiling, metrics, verdict -----------------------------------------------------------
def test_noise_ceiling_by_hand(two_seeds: Path) -> None:
    c = noise_ceiling(two_seeds)
    assert c["seeds"] == ["0", "1"] and c["n_archs"] == 4 and len(c["pairs"]) == 1
    assert c["kendall"] == pytest.approx(2 / 3)  # (5 concordant - 1 discordant) / 6
    assert c["spearman"] == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    assert c["mean_abs_seed_diff"] == pytest.approx((0.04 + 0.08 + 0.04 + 0.02) / 4)
    assert c["pairs"][0]["n"] == 4


def test_one_seed_ceiling_is_nan_with_a_reason(tmp_path: Path) -> None:
    one = _csv(tmp_path / "one.csv", [r for r in ROWS if ",0," in r])
    c = noise_ceiling(one)
    assert math.isnan(c["kendall"]) and "one seed" in c["reason"]
    m = trust_metrics([1, 2, 3], [1, 2, 3], ceiling_tau=c["kendall"])
    assert math.isnan(m["fraction_of_ceiling"]) and "no noise ceiling" in verdict(m, c)


def test_trust_metrics_by_hand(two_seeds: Path) -> None:
    truth = [MEANS[a] for a in "abcd"]
    estimate = [0.1, 0.3, 0.9, 0.5]  # ranks a<b<d<c: only (c, d) is discordant
    ceiling = noise_ceiling(two_seeds)
    m = trust_metrics(estimate, truth, top_k=(1, 2, 9), ceiling_tau=ceiling["kendall"])
    assert m["kendall"] == pytest.approx(2 / 3)
    assert m["top_k"] == {"1": 0.0, "2": 1.0}  # k larger than n is left out
    assert m["regret"] == pytest.approx(0.79 - 0.72)  # the estimator picks c, the best is d
    assert m["fraction_of_ceiling"] == pytest.approx(1.0)
    assert "as good as a second training seed" in verdict(m, ceiling)


def test_verdict_when_seeds_do_not_separate_the_archs() -> None:
    m = trust_metrics([1, 2, 3, 4], [1, 2, 3, 4], ceiling_tau=0.1)
    text = verdict(m, {"kendall": 0.1, "reason": ""})
    assert "not separable above seed noise" in text and "params" in text


def test_unknown_estimator_kind_lists_valid_kinds() -> None:
    sp = get_space("nb201")
    with pytest.raises(SupernasError, match=r"valid kinds: supernet:PATH.*proxy:NAME.*table:"):
        create_estimator("oracle", sp)
    with pytest.raises(SupernasError, match="needs an argument"):
        create_estimator("proxy:", sp)


# -- the command -------------------------------------------------------------------------------
@pytest.fixture
def nb201_table(tmp_path: Path) -> Path:
    """12 NB201 archs x 2 seeds, truth noisy around a trend, with a meta.json (C=4, N=1)."""
    sp = get_space("nb201")
    archs = list(dict.fromkeys(str(sp.sample(i)) for i in range(12)))
    rows = []
    for i, a in enumerate(archs):
        for s in (0, 1):
            acc = 0.5 + 0.02 * i + 0.1 * ((i * 7 + s * 3) % 5) / 5
            rows.append(f'"{a}",{s},{acc:.4f},{acc:.4f},0,0,1.0')
    path = _csv(tmp_path / "nb.csv", rows, HEADER.removesuffix(",note"))
    meta = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "data": "digits"}
    (tmp_path / "nb.csv.meta.json").write_text(json.dumps(meta))
    return path


def test_cli_params_matches_trust_metrics(nb201_table: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(
        app, ["trust", "--estimator", "params", "--table", str(nb201_table), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    got = json.loads((out / "trust.json").read_text())
    assert got["space"]["options"]["C"] == 4 and got["space"]["options"]["N"] == 1
    tab = load_tables([nb201_table])
    sp = get_space("nb201", C=4, N=1, in_channels=1, num_classes=10)
    archs = [sp.parse(a) for a in tab.archs]
    scores = create_estimator("params", sp, load_data("digits")).score(archs)
    ceiling = noise_ceiling(nb201_table)
    want = trust_metrics(
        scores, list(tab.values("test_accuracy").values()), ceiling_tau=ceiling["kendall"]
    )
    assert got["n"] == len(archs) == 12
    assert got["metrics"].pop("top_k") == want.pop("top_k")
    assert got["metrics"] == pytest.approx(want)
    assert got["ceiling"]["kendall"] == pytest.approx(ceiling["kendall"])
    assert got["verdict"] == verdict(want, ceiling) and got["verdict"] in res.output
    assert (out / "trust_scatter.png").stat().st_size > 0
    assert "Kendall tau" in (out / "trust.md").read_text()


def test_cli_table_estimator_equal_to_the_truth_has_tau_one(
    nb201_table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "self"
    spec = f"table:{nb201_table}:test_accuracy"
    args = ["trust", "--estimator", spec, "--table", str(nb201_table), "--out", str(out)]
    res = runner.invoke(app, [*args, "--max-archs", "8", "-q"])
    assert res.exit_code == 0, res.output
    got = json.loads((out / "trust.json").read_text())
    assert got["n"] == 8 and got["metrics"]["kendall"] == pytest.approx(1.0)
    assert got["metrics"]["regret"] == 0.0 and got["metrics"]["top_k"]["5"] == 1.0


def test_cli_unknown_estimator_is_one_error_line(nb201_table: Path, tmp_path: Path) -> None:
    args = ["--table", str(nb201_table), "--out", str(tmp_path / "x")]
    res = runner.invoke(app, ["trust", "--estimator", "oracle", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: unknown estimator 'oracle'")
    assert "params, flops, table:FILE:COLUMN" in lines[0]
