"""Supernet training (SPOS) and the standalone recipe: learning, exact resume, clear failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from supernas import (
    Recipe,
    SPOSTrainer,
    SupernetEstimator,
    build_supernet,
    get_space,
    load_supernet,
)
from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.train import check_loss, sample_constrained


def small_space(data: Dataset, width: int = 4):
    return get_space("resnet18", base_width=width, in_channels=1, num_classes=10)


def test_spos_on_digits_beats_chance_by_far(digits: Dataset, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_supernet(small_space(digits, width=8))
    history = SPOSTrainer(Recipe(epochs=12, lr=0.2), seed=0).fit(net, digits)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    est = SupernetEstimator(net, digits, recal_batches=4)
    scores = est.score([net.space.sample(s) for s in range(4)])
    assert min(scores) > 0.5 and np.mean(scores) > 0.65  # chance is 0.1


def test_killed_training_resumes_to_identical_weights(digits: Dataset, tmp_path: Path) -> None:
    space = small_space(digits, width=2)
    recipe = Recipe(epochs=2, lr=0.05)

    torch.manual_seed(0)
    straight = build_supernet(space)
    SPOSTrainer(recipe, seed=1).fit(straight, digits, checkpoint=tmp_path / "a.pt")

    class Killed(Exception):
        pass

    def kill(rec: dict) -> None:
        raise Killed

    torch.manual_seed(0)
    first = build_supernet(space)
    with pytest.raises(Killed):
        SPOSTrainer(recipe, seed=1).fit(first, digits, checkpoint=tmp_path / "b.pt", on_epoch=kill)
    resumed = build_supernet(space)  # fresh weights: everything must come from the checkpoint
    history = SPOSTrainer(recipe, seed=1).fit(resumed, digits, checkpoint=tmp_path / "b.pt")
    assert len(history) == 2
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    loaded, ckpt = load_supernet(tmp_path / "b.pt")
    assert ckpt["epoch"] == 2 and loaded.space.options == space.options


def test_resume_with_other_config_is_refused(digits: Dataset, tmp_path: Path) -> None:
    net = build_supernet(small_space(digits, width=2))
    SPOSTrainer(Recipe(epochs=1), seed=0).fit(net, digits, checkpoint=tmp_path / "c.pt")
    with pytest.raises(SupernasError, match="different training config"):
        SPOSTrainer(Recipe(epochs=1, lr=0.2), seed=0).fit(net, digits, checkpoint=tmp_path / "c.pt")


def test_constrained_sampling_only_yields_feasible_paths(digits: Dataset) -> None:
    space = small_space(digits)
    rng = np.random.default_rng(0)
    feasible = lambda a: a.values[0] == 3 and a.values[1] == 0.5  # noqa: E731
    assert all(feasible(sample_constrained(space, rng, feasible)) for _ in range(20))
    with pytest.raises(SupernasError, match="loosen"):
        sample_constrained(space, rng, lambda a: False)


def test_nan_loss_is_a_clear_error(digits: Dataset) -> None:
    with pytest.raises(SupernasError, match="lower the learning rate"):
        check_loss(torch.tensor(float("nan")), "epoch 0 step 0")
    net = build_supernet(small_space(digits, width=2))
    with pytest.raises(SupernasError, match="loss became"):
        SPOSTrainer(Recipe(epochs=3, lr=1e12, grad_clip=0.0), seed=0).fit(net, digits)


@pytest.mark.parametrize(
    "bad", [{"epochs": 0}, {"batch_size": 0}, {"lr": -1.0}, {"label_smoothing": 1.5}]
)
def test_bad_recipe_values(bad: dict) -> None:
    with pytest.raises(SupernasError):
        Recipe(**bad)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "supernet.pt"
    p.write_bytes(b"not a checkpoint at all")
    with pytest.raises(SupernasError, match="corrupt or truncated"):
        load_supernet(p)
    with pytest.raises(SupernasError, match="not found"):
        load_supernet(tmp_path / "missing.pt")
