"""path_dropout (Bender et al. 2018): the drop-rate schedule, the masks, ghost BN, and the
trainer on every space with a mixed forward."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

import supernas
from supernas.cli import app
from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.io import load_checkpoint
from supernas.supernet import Supernet
from supernas.train import (
    PathDropoutTrainer,
    Recipe,
    drop_rate_at,
    get_trainer,
    list_trainers,
    path_masks,
)
from test_differentiable import hand_nb201
from test_trainers import RECIPE, fresh, same_weights, space_of


@pytest.fixture(scope="module")
def data() -> Dataset:
    return supernas.load_data("digits", max_train=128, max_val=64)


class Spy(PathDropoutTrainer):
    """Records the weights and ghost-batch sizes of every forward_mixed call."""

    def start(self, supernet: Supernet, data: Dataset) -> None:
        super().start(supernet, data)
        self.calls: list[tuple[int, list[Tensor]]] = []
        self.rates: list[float] = []
        real = supernet.forward_mixed

        def spy(x: Tensor, weights: list[Tensor]) -> Tensor:
            self.calls.append((len(x), [w.clone() for w in weights]))
            return real(x, weights)

        supernet.forward_mixed = spy  # type: ignore[method-assign]

    def train_step(self, supernet: Supernet, x: Tensor, y: Tensor, where: str) -> Any:
        self.rates.append(self.current_rate())
        return super().train_step(supernet, x, y, where)


def test_registered_with_its_options() -> None:
    assert "path_dropout" in list_trainers()
    t = get_trainer("path_dropout", recipe=RECIPE, seed=3, drop_rate=0.2, ghost_batch=16)
    assert t.config()["drop_rate"] == 0.2 and t.config()["ghost_batch"] == 16
    assert PathDropoutTrainer().options() == {"drop_rate": 0.1, "ghost_batch": 32}


def test_schedule_ramps_linearly_from_zero_to_the_final_rate() -> None:
    rates = [drop_rate_at(s, 11, 0.3) for s in range(11)]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.3)
    assert np.allclose(np.diff(rates), 0.03)
    assert drop_rate_at(0, 1, 0.3) == 0


def test_fit_follows_the_schedule_and_records_it(data: Dataset) -> None:
    recipe = Recipe(epochs=2, batch_size=43, lr=0.05)  # 3 steps an epoch
    t = Spy(recipe, drop_rate=0.5)
    history = t.fit(fresh(space_of("nb201")), data)
    assert t.rates == pytest.approx([0.5 * s / 5 for s in range(6)])
    assert [h["drop_rate"] for h in history] == pytest.approx([0.2, 0.5])


@pytest.mark.parametrize("rate", [0.0, 0.5, 0.9, 1.0])
def test_masks_keep_at_least_one_op_per_choice(rate: float) -> None:
    space = space_of("resnet18")
    rng = np.random.default_rng(0)
    kept = []
    for _ in range(200):
        masks = path_masks(space, rng, rate)
        assert all(set(np.unique(m)) <= {0.0, 1.0} and m.sum() >= 1 for m in masks)
        kept.append(np.mean([m.mean() for m in masks]))
    if rate == 0:
        assert min(kept) == 1
    if rate == 1:  # everything dropped, then one kept: one op per choice, SPOS-like
        assert all(k == pytest.approx(np.mean([1 / 3] * 16)) for k in kept)
    if 0 < rate < 1:
        assert 0 < min(kept) < 1


def test_drop_rate_zero_runs_the_all_ops_sum(data: Dataset) -> None:
    t = Spy(RECIPE, drop_rate=0.0)
    net = fresh(space_of("nb201"))
    t.fit(net, data)
    assert t.calls and all(all(bool((w == 1).all()) for w in ws) for _, ws in t.calls)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ones = [torch.ones(5) for _ in range(6)]
    net = fresh(space_of("nb201")).eval()
    torch.testing.assert_close(net.forward_mixed(x, ones), hand_nb201(net, x, ones))


def test_ghost_batches_each_bn_sees_its_own_statistics(data: Dataset) -> None:
    t = Spy(RECIPE, ghost_batch=8)  # batches of 43: 5 ghost batches of 9, 9, 9, 8, 8
    net = fresh(space_of("nb201"))
    bn_sizes: list[int] = []
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_pre_hook(lambda _m, inp: bn_sizes.append(len(inp[0])))
    t.fit(net, data)
    assert [n for n, _ in t.calls[:5]] == [9, 9, 9, 8, 8]
    assert set(bn_sizes) == {9, 8}
    one = Spy(RECIPE, ghost_batch=64)  # larger than the batch: one ghost batch
    one.fit(fresh(space_of("nb201")), data)
    assert [n for n, _ in one.calls] == [43, 43, 43]


def test_ghost_gradients_are_the_size_weighted_mean() -> None:
    """Without BN in train mode the ghost split changes nothing: same gradients."""
    net = fresh(space_of("nb201")).eval()
    x = torch.randn(20, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(20) % 10
    ones = [torch.ones(5) for _ in range(6)]
    grads = []
    for ghost in (20, 6):
        t = PathDropoutTrainer(RECIPE, ghost_batch=ghost)
        t.loss_fn, t.rate = nn.CrossEntropyLoss(), 0.0
        net.zero_grad(set_to_none=True)
        _, _, n = t.ghost_backward(net, x, y, ones, "test")
        grads.append([p.grad.clone() for p in net.parameters() if p.grad is not None])
        assert n == 20
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["nb201", "resnet18", "mobilenetv2"])
def test_one_epoch_on_every_mixed_space(name: str, data: Dataset) -> None:
    (rec,) = get_trainer("path_dropout", recipe=RECIPE).fit(fresh(space_of(name)), data)
    assert np.isfinite(rec["train_loss"]) and 0 <= rec["train_accuracy"] <= 1


def test_same_seed_same_weights(data: Dataset) -> None:
    space = space_of("nb201")
    a, b, c = fresh(space), fresh(space), fresh(space)
    for net, seed in ((a, 1), (b, 1), (c, 2)):
        get_trainer("path_dropout", recipe=RECIPE, seed=seed, drop_rate=0.5).fit(net, data)
    assert same_weights(a, b) and not same_weights(a, c)


def test_loss_goes_down(data: Dataset) -> None:
    recipe = Recipe(epochs=6, batch_size=43, lr=0.05)
    history = get_trainer("path_dropout", recipe=recipe, drop_rate=0.2).fit(
        fresh(space_of("nb201")), data
    )
    losses = [h["train_loss"] for h in history]
    assert losses[-1] < 0.8 * losses[0], losses


def test_clear_errors(data: Dataset) -> None:
    with pytest.raises(SupernasError, match=r"forward_mixed.*vit"):
        get_trainer("path_dropout", recipe=RECIPE).fit(fresh(space_of("vit")), data)
    with pytest.raises(SupernasError, match="constraints"):
        PathDropoutTrainer(RECIPE, constraint=lambda a: True).fit(fresh(space_of("nb201")), data)
    for bad, match in (({"drop_rate": 1.5}, "drop_rate"), ({"ghost_batch": 0}, "ghost_batch")):
        with pytest.raises(SupernasError, match=match):
            PathDropoutTrainer(RECIPE, **bad).fit(fresh(space_of("nb201")), data)


def test_cli_train_path_dropout_on_digits(tmp_path: Path) -> None:
    args = ["train", "--method", "path_dropout", "--space", "nb201", "--space-opt", "C=4"]
    args += ["--space-opt", "N=1", "--epochs", "1", "--max-train", "64", "--max-val", "32"]
    args += ["--trainer-opt", "drop_rate=0.2", "--trainer-opt", "ghost_batch=16"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path), "--quiet"])
    assert r.exit_code == 0, r.output
    trainer = load_checkpoint(tmp_path / "supernet.pt")["trainer"]
    assert trainer["name"] == "path_dropout"
    assert (trainer["drop_rate"], trainer["ghost_batch"]) == (0.2, 16)
