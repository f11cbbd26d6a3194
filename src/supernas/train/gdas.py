"""GDAS (Dong & Yang 2019): DARTS with one Gumbel-softmax sampled op per choice per forward.

Per forward and per choice, GDAS draws a Gumbel-softmax sample p = softmax((log_softmax(alpha)
+ g) / tau), takes its argmax k, and uses the straight-through weights one_hot(k) - p.detach()
+ p: in value 1 for k (to rounding) and exactly 0 elsewhere, with p's gradient. `forward_mixed`
never computes an option whose weight is exactly 0, so only the chosen op runs (one path,
SPOS's cost) while alpha still gets a gradient through the chosen weight (and, as in GDAS's
official code, through the zero weights added in place of their ops). tau falls linearly
from tau_max to tau_min over the epochs. Alpha and weights are updated as in first-order
DARTS (alpha by Adam on val batches); the arch is the argmax of alpha per choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from supernas.errors import SupernasError
from supernas.space import Arch
from supernas.train.darts import DifferentiableTrainer
from supernas.train.recipe import Recipe
from supernas.train.registry import register_trainer


def gumbel_hard(
    alpha: Tensor, tau: float, gen: torch.Generator, *, straight_through: bool = True
) -> Tensor:
    """One hard Gumbel-softmax sample of a logit vector (noise from `gen`, on the CPU).

    With `straight_through`, one_hot - p.detach() + p (alpha's gradient, one-hot value);
    otherwise the exact one-hot, for the weight step where alpha needs no gradient.
    """
    while True:  # an exponential draw of exactly 0 gives an infinite Gumbel: redraw
        gumbel = -torch.empty(len(alpha)).exponential_(generator=gen).log()
        if torch.isfinite(gumbel).all():
            break
    probs = ((alpha.log_softmax(0) + gumbel.to(alpha.device)) / tau).softmax(0)
    one_hot = torch.zeros_like(probs).scatter_(0, probs.detach().argmax().view(1), 1.0)
    if not straight_through:
        return one_hot
    return one_hot - probs.detach() + probs


@register_trainer("gdas")
class GDASTrainer(DifferentiableTrainer):
    """GDAS: one Gumbel-sampled op per choice per forward; alpha by Adam on val batches."""

    name = "gdas"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Callable[[Arch], bool] | None = None,
        tau_max: float = 10.0,
        tau_min: float = 0.1,
        arch_lr: float = 3e-4,
        arch_weight_decay: float = 1e-3,
    ) -> None:
        if not 0 < tau_min <= tau_max:
            raise SupernasError(
                f"gdas: need 0 < tau_min <= tau_max, got tau_min={tau_min}, tau_max={tau_max}"
            )
        super().__init__(recipe, seed, constraint, arch_lr, arch_weight_decay)
        self.tau_max = tau_max
        self.tau_min = tau_min
        self.tau = tau_max

    def options(self) -> dict[str, Any]:
        return {"tau_max": self.tau_max, "tau_min": self.tau_min, **super().options()}

    def start_epoch(self, epoch: int) -> dict[str, Any]:
        """tau_max at the first epoch to tau_min at the last (linear, per epoch, as GDAS)."""
        frac = epoch / (self.epochs - 1) if self.epochs > 1 else 0.0
        self.tau = self.tau_max - (self.tau_max - self.tau_min) * frac
        return {"tau": self.tau}

    def mixed_weights(self, alphas: Sequence[Tensor], *, arch_step: bool) -> list[Tensor]:
        return [
            gumbel_hard(a, self.tau, self.sample_gen, straight_through=arch_step) for a in alphas
        ]
