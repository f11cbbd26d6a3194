"""Anytime evaluation: the persistent scratch cache, trajectories, one-shot ranking, the CLI."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import supernas.estimate.cached as cached_mod
from supernas.bench import (
    TableEstimator,
    anytime_trajectory,
    load_tables,
    oneshot_ranking,
    sample_archs,
)
from supernas.cli import app
from supernas.data import load_data
from supernas.errors import SupernasError
from supernas.estimate import CachedTrainFromScratch
from supernas.space import Arch, SearchSpace, get_space
from supernas.supernet import build_supernet
from supernas.train import Recipe, TrainResult

runner = CliRunner()
SPACE = get_space("nb201", C=4, N=1, in_channels=1, num_classes=10)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", max_train=86, max_val=43)


@pytest.fixture()
def fake_training(monkeypatch: pytest.MonkeyPatch) -> list[Arch]:
    """Replace standalone training by an instant, deterministic fake that logs its calls."""
    calls: list[Arch] = []

    def fake(space: SearchSpace, arch: Arch, data, recipe: Recipe, seed: int = 0):
        calls.append(arch)
        code = sum((i + 1) * v for i, v in enumerate(space.encode(arch)))
        acc = (code % 97) / 97 + seed / 1000
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), TrainResult(acc, acc / 2, [], 0.25)

    monkeypatch.setattr(cached_mod, "train_arch", fake)
    return calls


def archs(n: int, seed: int = 0) -> list[Arch]:
    return sample_archs(SPACE, n, seed)


def test_cache_writes_one_row_per_arch_and_never_retrains(
    tmp_path: Path, digits, fake_training: list[Arch]
) -> None:
    path = tmp_path / "cache.csv"
    a = archs(3)
    est = CachedTrainFromScratch(path, SPACE, digits, Recipe(epochs=1))
    first = est.score([a[0], a[1], a[0]])
    assert len(fake_training) == 2 and est.trained == 2
    lines = path.read_text().splitlines()
    assert lines[0] == "arch,seed,val_accuracy,test_accuracy,params,flops,train_seconds"
    assert [ln.split(",")[0] for ln in lines[1:]] == [str(a[0]), str(a[1])]
    # params and FLOPs of the fake nn.Linear(64, 2) on 8x8 digits
    assert lines[1].split(",")[4:6] == ["130", "256"]
    again = CachedTrainFromScratch(path, SPACE, digits, Recipe(epochs=1))
    assert again.score([a[1], a[0]]) == [first[1], first[0]]
    assert len(fake_training) == 2 and again.trained == 0
    again.score([a[2]])
    assert len(fake_training) == 3 and len(path.read_text().splitlines()) == 4
    # another seed is another row; test metric reads the other column
    other = CachedTrainFromScratch(path, SPACE, digits, Recipe(epochs=1), seed=1, metric="test")
    assert other.score([a[0]]) == [pytest.approx((first[0] + 0.001) / 2)]
    assert len(fake_training) == 4


def test_cache_survives_a_kill_mid_append(
    tmp_path: Path, digits, fake_training: list[Arch]
) -> None:
    path = tmp_path / "cache.csv"
    a = archs(3)
    CachedTrainFromScratch(path, SPACE, digits, Recipe(epochs=1)).score(a)
    text = path.read_text()
    path.write_text(text[:-7])  # the last row cut inside its final number, no newline
    est = CachedTrainFromScratch(path, SPACE, digits, Recipe(epochs=1))
    assert not est.cached(a[2]) and est.cached(a[0]) and est.cached(a[1])
    est.score(a)
    assert est.trained == 1 and fake_training[-1] == a[2]
    assert path.read_text() == text  # cut line dropped, row rewritten whole
    tab = load_tables([path])
    assert len(tab) == 3
    truth = TableEstimator(tab, "val_accuracy")
    assert truth.score(a) == est.score(a)


def test_cache_refuses_other_settings(tmp_path: Path, digits, fake_training: list[Arch]) -> None:
    path = tmp_path / "cache.csv"
    CachedTrainFromScratch(path, SPACE, digits, Recipe(epochs=1)).score(archs(1))
    with pytest.raises(SupernasError, match="recipe"):
        CachedTrainFromScratch(path, SPACE, digits, Recipe(epochs=2))
    plain = tmp_path / "plain.csv"
    plain.write_text("arch,acc\nx,1\n")
    with pytest.raises(SupernasError, match="not a scratch cache"):
        CachedTrainFromScratch(plain, SPACE, digits)


def test_cache_trains_for_real_deterministically(tmp_path: Path, digits) -> None:
    a = archs(1, seed=3)
    recipe = Recipe(epochs=1, batch_size=43)
    r1 = CachedTrainFromScratch(tmp_path / "a.csv", SPACE, digits, recipe).score(a)
    r2 = CachedTrainFromScratch(tmp_path / "b.csv", SPACE, digits, recipe).score(a)
    assert r1 == r2 and 0.0 <= r1[0] <= 1.0
    row = (tmp_path / "a.csv").read_text().splitlines()[1].split(",")
    assert int(row[4]) > 0 and int(row[5]) > 0 and float(row[6]) > 0


class Counting:
    """A truth that records every query, to check the trajectory deduplicates them."""

    name = "counting"

    def __init__(self, inner: TableEstimator) -> None:
        self.inner = inner
        self.queries: list[list[Arch]] = []

    def score(self, archs: Sequence[Arch]) -> list[float]:
        self.queries.append(list(archs))
        return self.inner.score(archs)


def _table(tmp_path: Path, values: dict[Arch, float]) -> TableEstimator:
    path = tmp_path / "truth.csv"
    path.write_text("arch,acc\n" + "".join(f"{a},{v}\n" for a, v in values.items()))
    return TableEstimator(load_tables([path]), "acc")


def test_anytime_trajectory_matches_hand_computation(tmp_path: Path) -> None:
    a, b, c = archs(3)
    truth = Counting(_table(tmp_path, {a: 70.0, b: 90.0, c: 80.0}))
    history = [{"epoch": e, "arch": str(x)} for e, x in enumerate([a, b, b, c, a], start=1)]
    traj = anytime_trajectory(history, truth, SPACE)
    assert [(r["epoch"], r["score"], r["best_so_far"]) for r in traj] == [
        (1, 70.0, 70.0),
        (2, 90.0, 90.0),
        (3, 90.0, 90.0),
        (4, 80.0, 90.0),
        (5, 70.0, 90.0),
    ]
    assert [r["arch"] for r in traj] == [str(x) for x in (a, b, b, c, a)]
    assert truth.queries == [[a, b, c]]  # one query, each arch once
    with pytest.raises(SupernasError, match="no 'arch'"):
        anytime_trajectory([{"epoch": 1, "train_loss": 1.0}], truth, SPACE)


def test_sample_archs_is_seeded_and_distinct() -> None:
    s = sample_archs(SPACE, 6, seed=2)
    assert s == sample_archs(SPACE, 6, seed=2) and len(set(s)) == 6
    pool = archs(5)
    picked = sample_archs(SPACE, 3, seed=1, pool=pool)
    assert set(picked) <= set(pool) and picked == sample_archs(SPACE, 3, seed=1, pool=pool)
    with pytest.raises(SupernasError):
        sample_archs(SPACE, 6, pool=pool)


def test_oneshot_ranking_on_a_tiny_supernet(tmp_path: Path, digits) -> None:
    torch.manual_seed(0)
    supernet = build_supernet(SPACE)
    sample = archs(6, seed=1)
    truth = _table(tmp_path, {x: 50.0 + i for i, x in enumerate(sample)})
    res = oneshot_ranking(supernet, digits, truth, sample, recal_batches=1)
    assert res["n"] == 6 and res["truth"] == [50.0 + i for i in range(6)]
    assert len(res["supernet"]) == 6
    for key in ("kendall", "spearman", "top_precision"):
        assert math.isfinite(res[key]), res


def _invoke(*args: str):
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r


def test_cli_anytime_end_to_end_reuses_the_cache(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _invoke(
        "train", "--method", "darts", "--space", "nb201", "--space-opt", "C=4",
        "--space-opt", "N=1", "--max-train", "86", "--max-val", "43", "--batch-size", "43",
        "--epochs", "2", "--out", str(run), "--quiet",
    )  # fmt: skip
    cache, out = tmp_path / "cache.csv", tmp_path / "res.json"
    args = [
        "bench", "anytime", "--train-json", str(run / "train.json"), "--scratch-cache",
        str(cache), "--data", "digits", "--epochs", "1", "--max-train", "86", "--max-val",
        "43", "--batch-size", "43", "--out", str(out), "--quiet",
    ]  # fmt: skip
    _invoke(*args)
    res = json.loads(out.read_text())
    (traj,) = [r["trajectory"] for r in res["runs"]]
    assert [r["epoch"] for r in traj] == [1, 2]
    history = json.loads((run / "train.json").read_text())["history"]
    assert [r["arch"] for r in traj] == [h["arch"] for h in history]
    assert (tmp_path / "res_anytime.png").stat().st_size > 0
    rows = cache.read_text()
    assert res["trained"] == len(rows.splitlines()) - 1 == len({r["arch"] for r in traj})
    _invoke(*args)
    assert cache.read_text() == rows and json.loads(out.read_text())["trained"] == 0
    # the cache is a table: the same trajectory with --table
    out2 = tmp_path / "tab.json"
    _invoke(
        "bench", "anytime", "--train-json", str(run / "train.json"), "--table", str(cache),
        "--target", "val_accuracy", "--out", str(out2), "--quiet",
    )  # fmt: skip
    assert json.loads(out2.read_text())["runs"][0]["trajectory"] == traj
    # a hand-made table and the run's supernet: the one-shot ranking of a seeded sample
    table = tmp_path / "truth.csv"
    others = [a for a in archs(4) if str(a) not in {r["arch"] for r in traj}]
    table.write_text(
        "arch,acc\n" + "".join(f"{a},{i}\n" for i, a in enumerate([traj[0]["arch"], *others]))
    )
    _invoke(
        "bench", "anytime", "--train-json", str(run / "train.json"), "--table", str(table),
        "--target", "acc", "--supernet", str(run / "supernet.pt"), "--sample", "3",
        "--recal-batches", "1", "--max-train", "86", "--max-val", "43", "--out", str(out2),
    )  # fmt: skip
    oneshot = json.loads(out2.read_text())["runs"][0]["oneshot"]
    assert oneshot["n"] == 3 and len(set(oneshot["archs"])) == 3


def test_cli_anytime_bad_input(tmp_path: Path) -> None:
    r = runner.invoke(app, ["bench", "anytime", "--train-json", str(tmp_path / "x.json")])
    assert r.exit_code == 2 and "one truth" in r.output
