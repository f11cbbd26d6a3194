"""ENAS: the LSTM controller (valid samples, exact log-probabilities), REINFORCE on an oracle
reward, the alternating fit on tiny NB201 (BN left alone, determinism, exact resume), the CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import supernas
from supernas.cli import app
from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.io import load_checkpoint
from supernas.space import Arch, Choice, SearchSpace, get_space
from supernas.supernet import Supernet
from supernas.train import ENASTrainer, Recipe, get_trainer, list_trainers
from supernas.train.enas import val_accuracy
from test_supernet import TRAIN_SPACES
from test_trainers import fresh, same_weights, space_of


@pytest.fixture(scope="module")
def data() -> Dataset:
    return supernas.load_data("digits", max_train=128, max_val=64)


#: 128 examples in 3 batches of 43, 43, 42 (no batch of 1 for BN on 1x1 maps)
RECIPE = Recipe(epochs=1, batch_size=43, lr=0.05)
FAST = {"controller_steps": 3}


def same_controller(a: ENASTrainer, b: ENASTrainer) -> bool:
    assert a.controller is not None and b.controller is not None
    sa, sb = a.controller.state_dict(), b.controller.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa) and a.baseline == b.baseline


TOY = SearchSpace("enas_toy", [Choice(f"c{i}", ("a", "b", "c")) for i in range(4)])


def test_enas_is_registered_and_its_options_are_in_the_config() -> None:
    assert "enas" in list_trainers()
    cfg = get_trainer("enas", recipe=RECIPE, seed=3, controller_steps=7).config()
    assert cfg["name"] == "enas" and cfg["seed"] == 3 and cfg["controller_steps"] == 7
    assert cfg["controller_lr"] == 3.5e-4 and cfg["hidden"] == 64
    assert cfg["tanh_constant"] == 2.5 and cfg["temperature"] == 5.0
    assert cfg["baseline_decay"] == 0.99 and cfg["entropy_weight"] == 1e-4
    with pytest.raises(SupernasError, match="derive"):
        ENASTrainer().derive()


@pytest.mark.parametrize("name", TRAIN_SPACES)
def test_controller_samples_valid_archs_for_every_space(name: str) -> None:
    space = space_of(name)
    trainer = ENASTrainer(seed=0)
    trainer.init_controller(space)
    rng = np.random.default_rng(0)
    archs = [trainer.propose(rng) for _ in range(6)]
    assert all(a in space for a in archs)
    assert len(set(archs)) > 1  # a near-uniform start: samples differ
    assert trainer.derive() in space
    alphas = trainer.alphas()
    assert list(alphas) == list(space.names)
    for c in space.choices:
        assert len(alphas[c.name]) == len(c.options)
        assert abs(sum(alphas[c.name]) - 1) < 1e-5
    # the mode is the argmax along the greedy decode
    assert space.encode(trainer.derive()) == tuple(
        int(np.argmax(alphas[c.name])) for c in space.choices
    )


def test_log_prob_is_the_sum_of_per_step_log_softmax_entries() -> None:
    trainer = ENASTrainer(seed=1)
    trainer.init_controller(TOY)
    ctrl = trainer.controller
    assert ctrl is not None
    rng = np.random.default_rng(0)
    idx = [TOY.encode(trainer.propose(rng)) for _ in range(3)]
    logp, ent = ctrl.evaluate(idx)
    for row, lp, h_total in zip(idx, logp, ent, strict=True):
        with torch.no_grad():  # by hand: LSTM cell, head, /5, 2.5 * tanh, log-softmax
            x, state, want, h_sum = ctrl.start, None, 0.0, 0.0
            for i, k in enumerate(row):
                state = ctrl.lstm(x, state)
                z = 2.5 * torch.tanh(ctrl.heads[i](state[0])[0] / 5.0)
                assert float(z.abs().max()) <= 2.5
                ls = torch.log_softmax(z, 0)
                want += float(ls[k])
                h_sum += float(-(ls.exp() * ls).sum())
                x = ctrl.embeddings[i].weight[k][None] if i + 1 < len(row) else x
        assert float(lp.detach()) == pytest.approx(want, abs=1e-5)
        assert float(h_total.detach()) == pytest.approx(h_sum, abs=1e-5)
    assert logp.requires_grad  # the loss differentiates through it


def test_reinforce_converges_to_the_arch_an_oracle_rewards() -> None:
    target = TOY.decode([2, 0, 1, 2])
    trainer = ENASTrainer(seed=0, controller_lr=3.5e-3)  # 10x the paper's lr: a cheap test
    trainer.init_controller(TOY)
    rng = np.random.default_rng(0)
    assert trainer.derive() != target
    for _ in range(200):
        trainer.controller_step(rng, lambda a: float(a == target))
    assert trainer.derive() == target
    probs = trainer.alphas()
    # p(target) along the greedy decode, far above uniform (1/81)
    assert (
        np.prod([probs[c.name][k] for c, k in zip(TOY.choices, [2, 0, 1, 2], strict=True)]) > 0.15
    )
    assert trainer.baseline is not None and 0 < trainer.baseline < 1


def test_two_epochs_on_tiny_nb201_record_the_controller_and_leave_bn_alone(
    data: Dataset,
) -> None:
    modes: list[bool] = []

    def reward(supernet: Supernet, arch: Arch, x: torch.Tensor, y: torch.Tensor) -> float:
        modes.append(supernet.training and not torch.is_grad_enabled())
        return val_accuracy(supernet, arch, x, y)

    space = space_of("nb201")
    net = fresh(space)
    trainer = ENASTrainer(Recipe(epochs=2, batch_size=43, lr=0.05), reward_fn=reward, **FAST)
    history = trainer.fit(net, data)
    assert len(history) == 2 and len(modes) == 2 * 3 and all(modes)  # train mode, no grad
    for rec in history:
        assert {"arch", "alphas", "reward_mean", "baseline", "entropy", "seconds"} <= set(rec)
        assert space.parse(rec["arch"]) in space
        assert 0 <= rec["reward_mean"] <= 1 and np.isfinite(rec["train_loss"])
        assert rec["entropy"] > 0
    assert history[-1]["arch"] == str(trainer.derive())
    assert history[-1]["alphas"] == trainer.alphas()
    net.train()
    before = {k: v.clone() for k, v in net.named_buffers()}
    trainer.controller_phase()
    assert all(torch.equal(v, before[k]) for k, v in net.named_buffers())
    x, y = data.x_val[:43], data.y_val[:43]  # the test has teeth: a reward forward moves BN
    val_accuracy(net, trainer.derive(), x, y)
    assert not all(torch.equal(v, before[k]) for k, v in net.named_buffers())


def test_same_seed_same_run(data: Dataset) -> None:
    space = space_of("nb201")
    runs = []
    for seed in (1, 1, 2):
        net, trainer = fresh(space), ENASTrainer(RECIPE, seed=seed, **FAST)
        runs.append((net, trainer, trainer.fit(net, data)))
    (a, ta, ha), (b, tb, hb), (c, tc, _) = runs
    assert same_weights(a, b) and same_controller(ta, tb)
    drop = ("seconds",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in ha] == [
        {k: v for k, v in h.items() if k not in drop} for h in hb
    ]
    assert not same_weights(a, c) and not same_controller(ta, tc)


class Killed(Exception):
    pass


def kill(rec: dict[str, Any]) -> None:
    raise Killed


def test_killed_training_resumes_to_the_uninterrupted_result(data: Dataset, tmp_path: Path) -> None:
    space = space_of("nb201")
    recipe = Recipe(epochs=2, batch_size=43, lr=0.05)
    straight = fresh(space)
    t_straight = ENASTrainer(recipe, seed=1, **FAST)
    h_straight = t_straight.fit(straight, data, checkpoint=tmp_path / "a.pt")
    with pytest.raises(Killed):
        ENASTrainer(recipe, seed=1, **FAST).fit(
            fresh(space), data, checkpoint=tmp_path / "b.pt", on_epoch=kill
        )
    ckpt = load_checkpoint(tmp_path / "b.pt")
    assert ckpt["epoch"] == 1 and set(ckpt["enas"]) >= {"controller", "baseline"}
    resumed = fresh(space, seed=5)  # other weights: everything must come from the checkpoint
    t_resumed = ENASTrainer(recipe, seed=7, **FAST)
    with pytest.raises(SupernasError, match="different training config"):
        t_resumed.fit(resumed, data, checkpoint=tmp_path / "b.pt")
    t_resumed = ENASTrainer(recipe, seed=1, **FAST)
    h_resumed = t_resumed.fit(resumed, data, checkpoint=tmp_path / "b.pt")
    assert same_weights(straight, resumed) and same_controller(t_straight, t_resumed)
    sa = t_straight.controller_opt.state_dict()["state"]
    sb = t_resumed.controller_opt.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])
    drop = ("seconds",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in h_resumed] == [
        {k: v for k, v in h.items() if k not in drop} for h in h_straight
    ]


class Recording(ENASTrainer):
    """Records every path that is trained."""

    def backward_path(self, supernet, x, arch, loss_of, where):  # type: ignore[no-untyped-def]
        self.trained.append(arch)
        return super().backward_path(supernet, x, arch, loss_of, where)


def test_constraint_is_respected_with_one_warning_on_fallback(data: Dataset) -> None:
    space = space_of("nb201")
    only = lambda a: set(a.values[:3]) == {"none"}  # noqa: E731  (1 arch in 125)
    trainer = Recording(RECIPE, constraint=only, max_resample=1, **FAST)
    trainer.trained = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(fresh(space), data)
    assert sum("enas" in str(w.message) for w in caught) == 1
    assert len(trainer.trained) == 3 and all(only(a) for a in trainer.trained)
    loose = lambda a: a.values[0] != "none"  # noqa: E731
    trainer = Recording(RECIPE, constraint=loose, **FAST)
    trainer.trained = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the controller meets it: no fallback
        trainer.fit(fresh(space), data)
    assert len(trainer.trained) == 3 and all(loose(a) for a in trainer.trained)


@pytest.mark.parametrize(
    ("option", "value"),
    [("controller_steps", -1), ("num_samples", 0), ("baseline_decay", 1.5), ("hidden", 2.0)],
)
def test_bad_options_are_clear(option: str, value: Any) -> None:
    with pytest.raises(SupernasError, match=option):
        ENASTrainer(**{option: value}).init_controller(TOY)


def test_several_samples_per_step_and_no_controller_phase(data: Dataset) -> None:
    space = space_of("nb201")
    trainer = ENASTrainer(RECIPE, controller_steps=2, num_samples=3)
    rec = trainer.fit(fresh(space), data)[-1]
    assert 0 <= rec["reward_mean"] <= 1
    idle = ENASTrainer(RECIPE, controller_steps=0)
    rec = idle.fit(fresh(space), data)[-1]
    assert rec["reward_mean"] is None and idle.baseline is None


def test_cli_train_with_enas_writes_the_derived_arch(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app,
        [
            *("train", "--method", "enas", "--space", "nb201"),
            *("--space-opt", "C=4", "--space-opt", "N=1", "--epochs", "1"),
            *("--max-train", "64", "--max-val", "32", "--out", str(tmp_path), "--quiet"),
        ],
    )
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "supernet.pt")
    assert ckpt["trainer"]["name"] == "enas" and "enas" in ckpt
    result = json.loads((tmp_path / "train.json").read_text())
    assert result["arch"] == result["history"][-1]["arch"]
    assert set(result["alphas"]) == set(get_space("nb201").names)
    assert "derived arch (enas)" in r.output
