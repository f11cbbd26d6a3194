"""Hypernetworks (smash, ghn): exact shapes on every space, the Supernet contract, learning
on unseen archs, determinism, the CLI path (train -> search -> retrain --init-from)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import supernas
from supernas.cli import app
from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.estimate import HypernetEstimator
from supernas.hyper import GHN, HYPERNETS, SMASH, HyperSupernet, list_hypernets
from supernas.hyper.finetune import compare_init, init_from_hypernet
from supernas.hyper.graph import trace_graph
from supernas.io import load_checkpoint
from supernas.space import Choice, SearchSpace, get_space
from supernas.supernet import build_network, build_supernet
from supernas.train import Recipe, get_trainer, list_trainers, load_supernet
from test_supernet import SMALL

METHODS = ["smash", "ghn"]
#: plus resnet50, a space with standalone networks but no supernet: a hypernet's use case
SPACES = ["nb201", "resnet18", "mobilenetv2", "vit", *(["resnet50"] * ("resnet50" in SMALL))]
RECIPE = Recipe(epochs=2, batch_size=43, lr=0.05)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return supernas.load_data("digits", max_train=128, max_val=64)


def space_of(name: str) -> SearchSpace:
    return get_space(name, in_channels=1, num_classes=10, **SMALL[name])


def hyper(method: str, space: str = "nb201", seed: int = 0) -> HyperSupernet:
    return HYPERNETS.create(method, space_of(space), seed=seed)


def images(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def test_registered_as_hypernets_and_trainers() -> None:
    assert set(METHODS) <= set(list_hypernets()) and set(METHODS) <= set(list_trainers())
    assert HYPERNETS.get("smash") is SMASH and HYPERNETS.get("ghn") is GHN


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("method", METHODS)
def test_generated_weights_have_exactly_the_extracted_shapes(method: str, space: str) -> None:
    h = hyper(method, space)
    for seed in range(2):
        arch = h.space.sample(seed)
        generated = {k: tuple(v.shape) for k, v in h.generate(arch).items()}
        fresh = build_network(h.space, arch)
        assert generated == {k: tuple(p.shape) for k, p in fresh.named_parameters()}
        assert generated == {k: tuple(p.shape) for k, p in h.extract(arch).named_parameters()}


@pytest.mark.parametrize("space", ["nb201", "resnet18"])
@pytest.mark.parametrize("method", METHODS)
def test_forward_equals_the_extracted_network(method: str, space: str) -> None:
    h = hyper(method, space).eval()
    x = images()
    for seed in range(2):
        arch = h.space.sample(seed)
        with torch.no_grad():
            assert torch.allclose(h(x, arch), h.extract(arch)(x), atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_training_lowers_the_loss_of_unseen_archs(method: str, data: Dataset) -> None:
    trainer = get_trainer(method, recipe=RECIPE, seed=0)
    h = trainer.build(space_of("nb201"))
    x, y = next(data.batches("val", 64))
    unseen = [h.space.sample(s) for s in (101, 102, 103)]  # the trainer draws from seed 0

    def loss() -> float:
        with torch.no_grad():
            return sum(float(torch.nn.functional.cross_entropy(h(x, a), y)) for a in unseen)

    before = loss()
    history = trainer.fit(h, data)
    assert torch.isfinite(torch.tensor(history[-1]["train_loss"]))
    assert loss() < before


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_generated_weights(method: str) -> None:
    arch = space_of("resnet18").sample(3)
    a, b, c = hyper(method, "resnet18"), hyper(method, "resnet18"), hyper(method, "resnet18", 1)
    wa, wb, wc = a.generate(arch), b.generate(arch), c.generate(arch)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_graph_follows_the_wiring() -> None:
    sp = space_of("resnet18")
    nodes = trace_graph(build_network(sp, sp.sample(0)), (1, 8, 8))
    assert nodes[0].type == "input" and nodes[-1].type == "Linear"
    assert all(u < v for v, n in enumerate(nodes) for u in n.preds)
    params = {p for n in nodes for p in n.params}
    assert params == {k for k, _ in build_network(sp, sp.sample(0)).named_parameters()}


def test_estimator_scores_and_init_from_hypernet(data: Dataset) -> None:
    h = hyper("smash")
    archs = [h.space.sample(s) for s in range(3)]
    scores = HypernetEstimator(h, data).score(archs)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    net = init_from_hypernet(h, archs[0])
    generated = h.generate(archs[0])
    assert all(torch.equal(p, generated[k]) for k, p in net.named_parameters())
    assert "running_mean" in "".join(net.state_dict())  # ordinary BN for retraining
    res = compare_init(h, archs[0], data, steps=2, recipe=Recipe(batch_size=32, lr=0.05))
    assert set(res) >= {"hypernet", "random"} and 0.0 <= res["hypernet"] <= 1.0


def test_bad_input_is_a_clear_error(data: Dataset) -> None:
    toy = SearchSpace("toy_no_network", [Choice("a", (1, 2))])
    with pytest.raises(SupernasError, match="no standalone network"):
        SMASH(toy)
    with pytest.raises(SupernasError, match="unknown ghn option"):
        GHN(space_of("nb201"), width=3)
    with pytest.raises(SupernasError, match="unknown smash option"):
        get_trainer("smash", recipe=RECIPE, hidden_size=3)
    with pytest.raises(SupernasError, match="trains a smash hypernetwork"):
        get_trainer("smash", recipe=RECIPE).fit(build_supernet(space_of("nb201")), data)
    with pytest.raises(SupernasError):
        hyper("ghn").generate(space_of("resnet18").sample(0))


def run(*args: str) -> None:
    r = CliRunner().invoke(app, [*args, "--max-train", "64", "--max-val", "32"])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("method", METHODS)
def test_cli_train_search_and_retrain_from_the_hypernet(method: str, tmp_path: Path) -> None:
    nb201 = ("--space", "nb201", "--space-opt", "C=2", "--space-opt", "N=1")
    run("train", "--method", method, *nb201, "--epochs", "1", "--out", str(tmp_path), "--quiet")
    ckpt = load_checkpoint(tmp_path / "supernet.pt")
    assert ckpt["trainer"]["name"] == method
    net, _ = load_supernet(tmp_path / "supernet.pt")
    assert isinstance(net, HYPERNETS.get(method))
    out = tmp_path / "search.json"
    ckpt_path = str(tmp_path / "supernet.pt")
    run("search", "--supernet", ckpt_path, "--strategy", "random", "--budget", "3", "--top-k", "1")
    run("search", "--supernet", ckpt_path, "--budget", "3", "--out", str(out), "--quiet")
    best = supernas.io.read_json(out)["top_k"][0]["arch"]
    run(
        "retrain",
        "--init-from",
        ckpt_path,
        "--arch",
        best,
        "--epochs",
        "1",
        "--compare-steps",
        "0,2",
        "--out",
        str(tmp_path / "b"),
    )
    assert (tmp_path / "b" / "model.pt").is_file()
    compared = supernas.io.read_json(tmp_path / "b" / "result.json")["init_compare"]
    assert [c["steps"] for c in compared] == [0, 2]
    assert all(0 <= c["hypernet"] <= 1 and 0 <= c["random"] <= 1 for c in compared)
    r = CliRunner().invoke(
        app, ["retrain", "--arch", best, "--compare-steps", "x", "--out", str(tmp_path / "c")]
    )
    assert r.exit_code == 2 and "--init-from" in r.output


class Killed(Exception):
    pass


def kill(rec: dict) -> None:
    if rec["epoch"] == 1:
        raise Killed


def test_a_killed_smash_training_resumes_to_the_uninterrupted_weights(
    data: Dataset, tmp_path: Path
) -> None:
    def fit(**kw: object) -> HyperSupernet:
        trainer = get_trainer("smash", recipe=RECIPE, seed=0)
        h = trainer.build(space_of("nb201"))
        trainer.fit(h, data, **kw)  # type: ignore[arg-type]
        return h

    straight = fit()
    with pytest.raises(Killed):
        fit(checkpoint=tmp_path / "h.pt", on_epoch=kill)
    resumed = fit(checkpoint=tmp_path / "h.pt")
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
