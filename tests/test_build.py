"""`supernas bench build`: ground-truth tables that resume, run in parallel and match training."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supernas.bench.build import BuildPlan, build_table, materialize, open_table, table_summary
from supernas.cli import app
from supernas.errors import SupernasError
from supernas.estimate import train_arch
from supernas.estimate.cached import COLUMNS
from supernas.hardware import count_flops, count_params
from supernas.train import Recipe

runner = CliRunner()
DATA = {"data": "digits", "max_train": 86, "max_val": 43}
RECIPE = Recipe(epochs=1, batch_size=43, channels_last=True)


def plan(**kw) -> BuildPlan:
    args = {
        "space": "nb201",
        "space_options": {"C": 2, "N": 1},
        "data": DATA,
        "recipe": RECIPE,
        "archs": 3,
        "seeds": 2,
    }
    return BuildPlan(**{**args, **kw})


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_equal_standalone_training_and_a_rerun_trains_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    res = build_table(path, plan())
    assert res["trained"] == 6 and res["rows"] == res["total"] == 6
    got = rows(path)
    assert list(got[0]) == list(COLUMNS)
    # arch by arch, every seed of each: a partial table holds whole archs
    assert [r["seed"] for r in got] == ["0", "1"] * 3
    space, data = materialize(plan())
    arch = space.parse(got[3]["arch"])
    model, want = train_arch(space, arch, data, RECIPE, seed=1)
    assert float(got[3]["val_accuracy"]) == want.val_accuracy
    assert float(got[3]["test_accuracy"]) == want.test_accuracy
    assert int(got[3]["params"]) == count_params(model)
    assert int(got[3]["flops"]) == count_flops(model, data.input_shape)
    again = build_table(path, plan())
    assert again["trained"] == 0 and rows(path) == got


def test_limit_then_resume_after_a_kill_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    assert build_table(path, plan(), limit=3)["trained"] == 3
    text = path.read_text()
    path.write_text(text[:-5])  # a kill inside the third row's last number
    res = build_table(path, plan(archs=2))
    assert res["trained"] == 2 and res["rows"] == 4
    lines = path.read_text().splitlines()
    assert len(lines) == 5 and lines[:3] == text.splitlines()[:3]  # header + 2 kept rows
    # the cut row was trained again whole: the same numbers but its time
    assert lines[3].rsplit(",", 1)[0] == text.splitlines()[3].rsplit(",", 1)[0]


def test_parallel_workers_write_the_same_numbers(tmp_path: Path) -> None:
    serial, parallel = tmp_path / "s.csv", tmp_path / "p.csv"
    build_table(serial, plan(archs=2))
    build_table(parallel, plan(archs=2, workers=2))

    def key(r: dict[str, str]) -> tuple[str, str]:
        return r["arch"], r["seed"]

    drop = {"train_seconds"}
    a = sorted(({k: v for k, v in r.items() if k not in drop} for r in rows(serial)), key=key)
    b = sorted(({k: v for k, v in r.items() if k not in drop} for r in rows(parallel)), key=key)
    assert a == b


def test_refuses_another_recipe_and_wrong_channels(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    open_table(path, plan())
    with pytest.raises(SupernasError, match="recipe"):
        open_table(path, plan(recipe=Recipe(epochs=2, batch_size=43)))
    with pytest.raises(SupernasError, match="in_channels=1"):
        materialize(plan(space_options={"C": 2, "N": 1, "in_channels": 3}))
    with pytest.raises(SupernasError, match="at least 1"):
        plan(archs=0)


def test_cli_builds_resumes_and_resizes(tmp_path: Path) -> None:
    out = tmp_path / "t.csv"

    def build(archs: int, epochs: int = 1):
        args = [
            "bench", "build", "--out", str(out), "--space", "nb201",
            "--space-opt", "C=2", "--space-opt", "N=1", "--data", "digits",
            "--max-train", "86", "--max-val", "43", "--image-size", "4", "--seeds", "1",
            "--batch-size", "43", "--archs", str(archs), "--epochs", str(epochs), "-q",
        ]  # fmt: skip
        return runner.invoke(app, args)

    r = build(2)
    assert r.exit_code == 0, r.output
    assert "wrote 2 rows" in " ".join(r.output.split()) and len(rows(out)) == 2
    assert (
        '"input_shape": [\n    1,\n    4,\n    4\n  ]' in (tmp_path / "t.csv.meta.json").read_text()
    )
    r = build(3)  # the first two archs are kept: the draw is the same
    assert r.exit_code == 0, r.output
    assert "wrote 1 rows" in " ".join(r.output.split()) and len(rows(out)) == 3
    r = build(3, epochs=2)  # another recipe: a clear error
    assert r.exit_code == 2 and "other settings" in " ".join(r.output.split())


def test_table_summary_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    lines = [",".join(COLUMNS)]
    acc = {"a": (0.80, 0.82), "b": (0.70, 0.69), "c": (0.90, 0.88)}
    for arch, pair in acc.items():
        for seed, v in enumerate(pair):
            lines.append(f"{arch},{seed},{v},{v},10,20,{10.0 * (seed + 1)}")
    path.write_text("\n".join(lines) + "\n")
    s = table_summary(path)
    assert (s["rows"], s["archs"]) == (6, 3)
    assert s["min"] == pytest.approx(0.695) and s["max"] == pytest.approx(0.89)
    assert s["mean_abs_seed_diff"] == pytest.approx((0.02 + 0.01 + 0.02) / 3)
    assert s["ceiling_kendall"] == pytest.approx(1.0)  # the seeds order a < b < c alike
    assert s["train_hours"] == pytest.approx(90 / 3600) and s["median_run_seconds"] == 20
