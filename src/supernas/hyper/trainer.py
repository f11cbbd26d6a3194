"""Trainers of the hypernets: a random arch per batch (SMASH), a meta-batch of archs (GHN-2).

They reuse the supernet loop (epochs, checkpoints, exact resume), so `supernas train
--method smash|ghn` and `supernas run` treat a hypernet like any supernet. The model options
(hidden size, ...) are trainer options too: they are saved in the checkpoint's trainer
config, which is how `load_supernet` rebuilds the same hypernet.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from supernas.errors import SupernasError
from supernas.hyper import HYPERNETS
from supernas.hyper.base import HyperSupernet
from supernas.space import SearchSpace
from supernas.supernet import Supernet
from supernas.train.loop import Constraint, SupernetTrainer, path_stats
from supernas.train.recipe import Recipe
from supernas.train.registry import register_trainer


class HypernetTrainer(SupernetTrainer):
    """Train a hypernet end to end: `archs_per_step` sampled archs per batch, gradients summed."""

    default_archs = 1

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Constraint | None = None,
        archs_per_step: int | None = None,
        **model_options: Any,
    ) -> None:
        super().__init__(recipe, seed, constraint)
        self.archs_per_step = int(archs_per_step or self.default_archs)
        if self.archs_per_step < 1:
            raise SupernasError(f"{self.name}: archs_per_step must be at least 1")
        defaults = HYPERNETS.get(self.name).defaults
        unknown = sorted(set(model_options) - set(defaults))
        if unknown:
            raise SupernasError(
                f"unknown {self.name} option(s) {unknown}; valid: "
                f"{sorted(['archs_per_step', *defaults])}"
            )
        self.model_options = {**defaults, **model_options}

    def options(self) -> dict[str, Any]:
        return {"archs_per_step": self.archs_per_step, **self.model_options}

    def build(self, space: SearchSpace) -> HyperSupernet:
        """The hypernet this trainer fits (seeded by the trainer's seed)."""
        return HYPERNETS.create(self.name, space, seed=self.seed, **self.model_options)

    def start(self, supernet: Supernet, data: Any) -> None:
        if not isinstance(supernet, HyperSupernet) or supernet.name != self.name:
            raise SupernasError(
                f"{self.name} trains a {self.name} hypernetwork, not {type(supernet).__name__}: "
                f"build it with trainer.build(space) or supernas.hyper.model_for(trainer, space)"
            )
        if supernet.config() != self.model_options:
            raise SupernasError(
                f"{self.name}: the hypernet has options {supernet.config()}, "
                f"the trainer {self.model_options}"
            )

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        total = (0.0, 0, 0)
        for _ in range(self.archs_per_step):
            arch = self.sample(supernet)
            logits, loss = self.backward_path(
                supernet, x, arch, lambda out: self.loss_fn(out, y), where
            )
            stats = path_stats(logits, loss, y)
            total = (total[0] + stats[0], total[1] + stats[1], total[2] + stats[2])
        return total


@register_trainer("smash")
class SMASHTrainer(HypernetTrainer):
    """SMASH (Brock et al. 2018): one random arch per batch."""

    name = "smash"


@register_trainer("ghn")
class GHNTrainer(HypernetTrainer):
    """GHN-2 style: a meta-batch of `archs_per_step` archs per batch (default 2)."""

    name = "ghn"
    default_archs = 2
