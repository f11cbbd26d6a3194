"""Path dropout (Bender et al. 2018, *Understanding and Simplifying One-Shot Architecture
Search*): every op of every choice trained at once, each dropped at a scheduled rate.

Why: a one-shot model trained with all ops on comes to rely on their combination, so a
single path (what the search ranks) is no longer meaningful; dropping ops at random forces
each to be useful on its own. The rate ramps linearly from 0 at the first step to
`drop_rate` at the last, so early training co-trains everything and late training comes
closer to the sub-networks that are ranked.

Per step and per choice, each option is dropped independently with probability r; if all
are dropped, one uniformly drawn option is kept. The kept ops' outputs are summed with
weight 1 (the supernet's `forward_mixed` with 0/1 weights; a dropped op never runs). They
are not rescaled by 1/(1 - r): at drop rate 0 the forward is then exactly the all-ops sum,
and a rescaling would not make the train-time scale that of a single path anyway (resnet18
and mobilenetv2 blocks sum up to 9 resp. 7 ops). Ghost BN: the batch is split into
floor(n / ghost_batch) near-equal ghost batches (each at least `ghost_batch` examples; a
smaller batch is one), each is forwarded on its own so every BN normalises with its
ghost batch's statistics, and their losses are averaged weighted by size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.space import SearchSpace
from supernas.supernet import Supernet
from supernas.train.loop import Constraint, SupernetTrainer, path_stats
from supernas.train.recipe import Recipe, check_loss
from supernas.train.registry import register_trainer


def drop_rate_at(step: int, total_steps: int, final: float) -> float:
    """The linear schedule: 0 at step 0, `final` at the last step (`total_steps - 1`)."""
    if total_steps <= 1:
        return 0.0
    return final * min(step, total_steps - 1) / (total_steps - 1)


def path_masks(space: SearchSpace, rng: np.random.Generator, rate: float) -> list[np.ndarray]:
    """Per choice, a 0/1 float mask over its options: each dropped with probability `rate`,
    at least one kept (a uniformly drawn one when all were dropped)."""
    masks = []
    for c in space.choices:
        keep = rng.random(len(c.options)) >= rate
        if not keep.any():
            keep[rng.integers(len(c.options))] = True
        masks.append(keep.astype(np.float32))
    return masks


def ghost_splits(n: int, ghost_batch: int) -> int:
    """How many ghost batches a batch of `n` is split into (each >= ghost_batch, or one)."""
    return max(1, n // ghost_batch)


@register_trainer("path_dropout")
class PathDropoutTrainer(SupernetTrainer):
    """All paths at once, ops dropped at a linearly scheduled rate, BN over ghost batches."""

    name = "path_dropout"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Constraint | None = None,
        drop_rate: float = 0.1,
        ghost_batch: int = 32,
    ) -> None:
        super().__init__(recipe, seed, constraint)
        self.drop_rate = drop_rate
        self.ghost_batch = ghost_batch

    def options(self) -> dict[str, Any]:
        return {"drop_rate": self.drop_rate, "ghost_batch": self.ghost_batch}

    def start(self, supernet: Supernet, data: Dataset) -> None:
        if self.constraint is not None:
            raise SupernasError(
                "path_dropout does not support params/FLOPs constraints (it trains all "
                "paths at once); use spos or fairnas, or constrain the search stage instead"
            )
        if not 0 <= self.drop_rate <= 1:
            raise SupernasError(f"path_dropout: drop_rate must be in [0, 1], got {self.drop_rate}")
        if isinstance(self.ghost_batch, bool) or not isinstance(self.ghost_batch, int):
            raise SupernasError(
                f"path_dropout: ghost_batch must be an integer, got {self.ghost_batch!r}"
            )
        if self.ghost_batch < 1:
            raise SupernasError(f"path_dropout: ghost_batch must be >= 1, got {self.ghost_batch}")
        if type(supernet).forward_mixed is Supernet.forward_mixed:
            raise SupernasError(
                f"path_dropout needs a supernet that runs all ops at once (forward_mixed); "
                f"space {supernet.space.name} has none (nb201, resnet18 and mobilenetv2 do): "
                "use spos, fairnas or sandwich"
            )
        self.rate = 0.0

    def current_rate(self) -> float:
        """The drop rate of the step about to run."""
        return drop_rate_at(self.global_step, self.total_steps, self.drop_rate)

    def masks(self, space: SearchSpace, device: torch.device) -> list[Tensor]:
        """This step's `forward_mixed` weights: 1 for kept ops, 0 for dropped ones."""
        self.rate = self.current_rate()
        return [torch.from_numpy(m).to(device) for m in path_masks(space, self.rng, self.rate)]

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        weights = self.masks(supernet.space, x.device)
        return self.ghost_backward(supernet, x, y, weights, where)

    def ghost_backward(
        self, supernet: Supernet, x: Tensor, y: Tensor, weights: Sequence[Tensor], where: str
    ) -> tuple[float, int, int]:
        """Forward and backward each ghost batch; gradients sum to the size-weighted mean."""
        k = ghost_splits(len(y), self.ghost_batch)
        loss_sum, correct, n = 0.0, 0, 0
        for xs, ys in zip(x.tensor_split(k), y.tensor_split(k), strict=True):
            logits = supernet.forward_mixed(xs, weights)
            loss = self.loss_fn(logits, ys)
            check_loss(loss, f"{where} (drop rate {self.rate:.3f})")
            (loss * (len(ys) / len(y))).backward()
            s, c, m = path_stats(logits, loss, ys)
            loss_sum, correct, n = loss_sum + s, correct + c, n + m
        return loss_sum, correct, n

    def epoch_record(self) -> dict[str, Any]:
        """The drop rate of the epoch's last step."""
        return {"drop_rate": self.rate}
