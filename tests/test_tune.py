"""`supernas bench tune`: per-method search spaces, the TPE study, its resume, the CLI."""

from __future__ import annotations

import inspect
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from torch import nn
from typer.testing import CliRunner

import supernas.estimate.cached as cached_mod
from supernas.bench import TableEstimator, load_tables
from supernas.bench.tune import SEARCH_SPACES, search_space, split_params, tune
from supernas.cli import app
from supernas.data import load_data
from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace, get_space
from supernas.train import TRAINERS, Recipe, TrainResult, get_trainer
from supernas.train.darts import DARTSTrainer

runner = CliRunner()
SPACE = get_space("nb201", C=4, N=1, in_channels=1, num_classes=10)
TINY = [
    "--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "--data", "digits",
    "--max-train", "86", "--max-val", "43", "--batch-size", "43", "--epochs", "1",
    "--scratch-epochs", "1", "--seed", "0", "--quiet",
]  # fmt: skip


def _score(space: SearchSpace, arch: Arch) -> float:
    """A deterministic fake true score, different for most archs."""
    code = sum((i + 1) * v for i, v in enumerate(space.encode(arch)))
    return (code % 97) / 97


@pytest.fixture()
def fit_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Instant scratch truth, and a count of the supernet trainings a command runs.

    Why fake the scratch training: the study's own cost is the supernet trainings; the
    truth is only looked up, and its caching is tested in test_anytime.py.
    """

    def fake(space: SearchSpace, arch: Arch, data: Any, recipe: Recipe, seed: int = 0):
        acc = _score(space, arch)
        net = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(data.input_shape), 2))
        return net, TrainResult(acc, acc / 2, [], 0.25)

    monkeypatch.setattr(cached_mod, "train_arch", fake)
    calls: list[int] = []
    real = DARTSTrainer.fit

    def counted(self: DARTSTrainer, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DARTSTrainer, "fit", counted)
    return calls


def _sample(method: str, pick: int) -> dict[str, Any]:
    """The low end (pick=0) or the high end (pick=-1) of every range, or a choice."""
    out: dict[str, Any] = {}
    for name, p in search_space(method).items():
        if p.kind == "categorical":
            out[name] = p.choices[pick]
        else:
            out[name] = (p.low, p.high)[pick]
    return out


@pytest.mark.parametrize("method", sorted(SEARCH_SPACES))
def test_search_spaces_name_only_real_trainer_options(method: str) -> None:
    accepted = set(inspect.signature(TRAINERS.get(method)).parameters)
    for pick in (0, -1):
        params = _sample(method, pick)
        lr, opts = split_params(params)
        assert lr is not None and set(opts) <= accepted - {"recipe", "seed", "constraint"}
        trainer = get_trainer(method, recipe=Recipe(epochs=1, lr=lr), seed=0, **opts)
        for k, v in opts.items():
            assert trainer.options()[k] == v


def test_unknown_method_lists_the_tunable_ones() -> None:
    with pytest.raises(SupernasError, match="tunable methods are darts, enas, fbnet"):
        search_space("spos")
    r = runner.invoke(
        app, ["bench", "tune", "--method", "spos", "--scratch-cache", "x.csv", "--out", "s.json"]
    )
    assert r.exit_code == 2
    assert "darts, enas, fbnet, gdas, pcdarts, proxyless" in r.output


def _study(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_cli_two_trials_resume_and_same_seed(tmp_path: Path, fit_calls: list[int]) -> None:
    cache = str(tmp_path / "cache.csv")
    out, out2 = tmp_path / "study.json", tmp_path / "again.json"
    args = ["bench", "tune", "--method", "darts", *TINY, "--scratch-cache", cache]
    r = runner.invoke(app, [*args, "--trials", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(fit_calls) == 2
    study = _study(out)
    assert [t["number"] for t in study["trials"]] == [0, 1]
    for t in study["trials"]:
        assert math.isfinite(t["value"]) and set(t["params"]) == {"lr", "arch_lr"}
        traj = t["user_attrs"]["trajectory"]
        assert len(traj) == 1 and t["value"] == traj[-1]["score"]
        assert t["user_attrs"]["final_arch"] == traj[-1]["arch"]
        assert t["value"] == pytest.approx(_score(SPACE, SPACE.parse(traj[-1]["arch"])))
    assert study["best"]["value"] == max(t["value"] for t in study["trials"])
    assert (tmp_path / "study_tune.png").stat().st_size > 0
    assert "best: trial" in r.output
    # the same seed, killed after one trial and resumed: only the second trial runs again,
    # and both draw the parameters (and reach the values) of the uninterrupted study
    r = runner.invoke(app, [*args, "--trials", "1", "--out", str(out2)])
    assert r.exit_code == 0, r.output
    first = _study(out2)["trials"]
    assert len(first) == 1 and len(fit_calls) == 3
    r = runner.invoke(app, [*args, "--trials", "2", "--out", str(out2)])
    assert r.exit_code == 0, r.output
    assert len(fit_calls) == 4
    resumed = _study(out2)["trials"]
    assert resumed[0] == first[0]
    assert [t["params"] for t in resumed] == [t["params"] for t in study["trials"]]
    assert [t["value"] for t in resumed] == [t["value"] for t in study["trials"]]
    # a finished study runs nothing; other settings are refused, not mixed
    r = runner.invoke(app, [*args, "--trials", "2", "--out", str(out2)])
    assert r.exit_code == 0 and len(fit_calls) == 4
    r = runner.invoke(app, [*args, "--trials", "3", "--seed", "1", "--out", str(out2)])
    assert r.exit_code == 2 and "other settings" in r.output and "seed" in r.output
    assert len(fit_calls) == 4


def test_tune_against_a_table_covering_the_space(tmp_path: Path) -> None:
    """The table truth: a hand-made CSV with a score for every one of the 15,625 archs."""
    table = tmp_path / "nb201.csv"
    table.write_text("arch,acc\n" + "".join(f"{a},{_score(SPACE, a)}\n" for a in SPACE.enumerate()))
    truth = TableEstimator(load_tables([str(table)]), "acc")
    data = load_data("digits", max_train=86, max_val=43)
    out = tmp_path / "gdas.json"
    t0 = time.perf_counter()
    doc = tune("gdas", SPACE, data, truth, epochs=1, batch_size=43, trials=1, seed=3, out=out)
    assert time.perf_counter() - t0 < 30
    (trial,) = doc["trials"]
    assert set(trial["params"]) == {"lr", "arch_lr", "tau_max"}
    arch = SPACE.parse(trial["user_attrs"]["final_arch"])
    assert trial["value"] == pytest.approx(_score(SPACE, arch))
    assert _study(out) == json.loads(json.dumps(doc))


def test_a_failed_trial_is_kept_and_retold(
    tmp_path: Path, fit_calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A diverging trial does not end the study; a resume re-tells it as failed."""
    from supernas.estimate import CachedTrainFromScratch

    data = load_data("digits", max_train=86, max_val=43)
    truth = CachedTrainFromScratch(tmp_path / "c.csv", SPACE, data, Recipe(epochs=1))
    real = DARTSTrainer.fit

    def diverge(self: DARTSTrainer, *args: Any, **kwargs: Any) -> Any:
        raise SupernasError("training loss became nan")

    monkeypatch.setattr(DARTSTrainer, "fit", diverge)
    out = tmp_path / "s.json"
    kw: dict[str, Any] = {"epochs": 1, "batch_size": 43, "seed": 0, "out": out}
    doc = tune("darts", SPACE, data, truth, trials=1, **kw)
    assert doc["trials"][0]["value"] is None and "nan" in doc["trials"][0]["user_attrs"]["error"]
    assert doc["best"] is None
    monkeypatch.setattr(DARTSTrainer, "fit", real)
    doc = tune("darts", SPACE, data, truth, trials=2, **kw)
    assert doc["trials"][0]["value"] is None and math.isfinite(doc["trials"][1]["value"])
    assert doc["best"]["number"] == 1
