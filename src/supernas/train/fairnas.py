"""FairNAS (Chu et al. 2021, strict fairness): every option of every choice trained equally.

Why: with one uniform path per step (SPOS) some options get more updates than others in any
finite run, and the supernet ranks them by luck. FairNAS draws, per step and per choice, a
random permutation of its options; path j takes option perm_c[j] of choice c. Over the m
paths of a step each option then appears equally often, the m gradients of the same batch
are accumulated, and only then is the optimiser stepped.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace
from supernas.supernet import Supernet
from supernas.train.loop import Constraint, SupernetTrainer, path_stats, sample_constrained
from supernas.train.recipe import Recipe
from supernas.train.registry import register_trainer


def fair_num_paths(counts: Sequence[int], max_paths: int = 12) -> int:
    """Paths per step: lcm of the option counts (exact fairness) if at most `max_paths`.

    Otherwise the largest option count: then a choice with fewer options uses each option
    floor(m/n) or ceil(m/n) times (off by at most one), which keeps the cost of a step at
    that of the paper's equal-size spaces instead of e.g. 42 paths for 6- and 7-option blocks.
    """
    lcm = math.lcm(*counts) if counts else 1
    return lcm if lcm <= max_paths else max(counts, default=1)


def fair_paths(
    space: SearchSpace, rng: np.random.Generator, num_paths: int | None = None
) -> list[Arch]:
    """The m paths of one FairNAS step: per choice, random permutations of its options laid
    end to end (as many as m needs), path j taking entry j."""
    counts = [len(c.options) for c in space.choices]
    m = num_paths if num_paths is not None else fair_num_paths(counts)
    if m < 1:
        raise SupernasError(f"fairnas: the number of paths must be at least 1, got {m}")
    columns = [np.concatenate([rng.permutation(n) for _ in range(-(-m // n))])[:m] for n in counts]
    return [space.decode(tuple(int(col[j]) for col in columns)) for j in range(m)]


@register_trainer("fairnas")
class FairNASTrainer(SupernetTrainer):
    """Train with m fair paths per batch (gradients summed over them, one optimiser step).

    With a constraint, the permutations are redrawn up to `max_resample` times until every
    path is feasible; if that fails the step falls back to m SPOS-style constrained samples
    (fairness is then only on average) and a warning is given once per fit.
    """

    name = "fairnas"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Constraint | None = None,
        max_paths: int = 12,
        max_resample: int = 20,
    ) -> None:
        super().__init__(recipe, seed, constraint)
        self.max_paths = max_paths
        self.max_resample = max_resample

    def options(self) -> dict[str, Any]:
        return {"max_paths": self.max_paths, "max_resample": self.max_resample}

    def start(self, supernet: Supernet, data: Any) -> None:
        if self.max_paths < 1 or self.max_resample < 0:
            raise SupernasError("fairnas: max_paths must be >= 1 and max_resample >= 0")
        counts = [len(c.options) for c in supernet.space.choices]
        self.num_paths = fair_num_paths(counts, self.max_paths)
        self.warned = False

    def paths(self, space: SearchSpace) -> list[Arch]:
        """This step's paths: fair ones that meet the constraint, else constrained samples."""
        for _ in range(self.max_resample + 1):
            archs = fair_paths(space, self.rng, self.num_paths)
            if self.constraint is None or all(self.constraint(a) for a in archs):
                return archs
        if not self.warned:
            warnings.warn(
                f"fairnas: no fair set of {self.num_paths} paths met the constraint in "
                f"{self.max_resample + 1} draws; such steps use constrained uniform samples",
                stacklevel=2,
            )
            self.warned = True
        return [sample_constrained(space, self.rng, self.constraint) for _ in archs]

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        loss_sum, correct, n = 0.0, 0, 0
        for arch in self.paths(supernet.space):
            logits, loss = self.backward_path(
                supernet, x, arch, lambda out: self.loss_fn(out, y), where
            )
            s, c, k = path_stats(logits, loss, y)
            loss_sum, correct, n = loss_sum + s, correct + c, n + k
        return loss_sum, correct, n
