"""Train-from-scratch: the ground truth that every other estimator is measured against."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace
from supernas.supernet import build_network
from supernas.train import Recipe, TrainResult, evaluate, train_epochs, train_model


def train_arch(
    space: SearchSpace, arch: Arch, data: Dataset, recipe: Recipe, seed: int = 0
) -> tuple[torch.nn.Module, TrainResult]:
    """Build `arch` with seeded init (global RNG untouched) and train it with `recipe`."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_network(space, arch)
    return model, train_model(model, data, recipe, seed=seed)


def val_curve(
    space: SearchSpace, arch: Arch, data: Dataset, recipe: Recipe, seed: int = 0
) -> Iterator[float]:
    """Val accuracy after each epoch of standalone training: a multi-fidelity objective.

    The cosine schedule spans `recipe.epochs`. Closing the generator stops the training,
    which is how learning-curve extrapolation saves the epochs of a bad run.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_network(space, arch)
    for _ in train_epochs(model, data, recipe, seed):
        model.eval()
        yield evaluate(model, data.batches("val", 256))[0]


class TrainFromScratch:
    """Score = accuracy (0..1) on `metric` ('val' or 'test') after standalone training."""

    name = "scratch"

    def __init__(
        self,
        space: SearchSpace,
        data: Dataset,
        recipe: Recipe | None = None,
        *,
        seed: int = 0,
        metric: str = "val",
        on_arch: Callable[[], None] | None = None,
    ) -> None:
        self.space = space
        self.data = data
        self.recipe = recipe or Recipe()
        self.seed = seed
        self.metric = metric
        self.on_arch = on_arch
        self.results: dict[Arch, TrainResult] = {}

    def train(self, arch: Arch) -> TrainResult:
        arch = self.space.validate(arch)
        if arch not in self.results:
            _, self.results[arch] = train_arch(self.space, arch, self.data, self.recipe, self.seed)
        return self.results[arch]

    def score(self, archs: Sequence[Arch]) -> list[float]:
        if self.metric not in ("val", "test"):
            raise SupernasError(f"metric must be 'val' or 'test', got {self.metric!r}")
        out = []
        for a in archs:
            r = self.train(a)
            out.append(r.val_accuracy if self.metric == "val" else r.test_accuracy)
            if self.on_arch:
                self.on_arch()
        return out
