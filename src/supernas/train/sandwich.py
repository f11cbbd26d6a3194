"""The sandwich rule with in-place distillation (BigNAS, Yu et al. 2020; OFA, Cai et al. 2020).

Why: training the largest and the smallest arch at every step bounds the whole space from
both sides (performance of all archs tends to lie between them), and the smaller archs
learn from the largest's soft predictions, which is an easier, less noisy target than
the labels and needs no separately trained teacher.

Each step: the largest arch on the labels, then the smallest and `num_random` uniform archs on
the largest's softmax (soft cross-entropy, teacher logits detached); gradients are summed
and the optimiser is stepped once. History reports the largest arch's loss and accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from supernas.errors import SupernasError
from supernas.hardware import ArchCost
from supernas.space import Arch, SearchSpace
from supernas.supernet import Supernet
from supernas.train.loop import Constraint, SupernetTrainer, path_stats, sample_constrained
from supernas.train.recipe import Recipe
from supernas.train.registry import register_trainer

#: (space name, options) -> (smallest, largest) without a constraint: one search per space.
_EXTREMES: dict[tuple[str, str], tuple[Arch, Arch]] = {}


def _space_key(space: SearchSpace) -> tuple[str, str]:
    return space.name, repr(sorted(space.options.items()))


def _coordinate_search(
    space: SearchSpace,
    start: list[int],
    score: Callable[[list[int]], int],
    feasible: Callable[[list[int]], bool],
    max_sweeps: int = 10,
) -> list[int]:
    """Change one choice at a time to the option that strictly raises `score`, until no
    change helps: parameter counts barely interact across choices (a width changes the next
    layer's input), so a few sweeps reach the extreme."""
    cur = list(start)
    best = score(cur)
    for _ in range(max_sweeps):
        changed = False
        for i, choice in enumerate(space.choices):
            for j in range(len(choice.options)):
                if j == cur[i]:
                    continue
                cand = [*cur[:i], j, *cur[i + 1 :]]
                if feasible(cand):
                    value = score(cand)
                    if value > best:
                        cur, best, changed = cand, value, True
        if not changed:
            break
    return cur


def extreme_archs(
    space: SearchSpace,
    constraint: Constraint | None = None,
    seed: int = 0,
    device: str = "meta",
) -> tuple[Arch, Arch]:
    """(smallest, largest) arch of `space` by parameter count of the standalone network.

    Found by coordinate search on params, counted on standalone networks built on `device`
    ("meta": no storage, cheap for wide spaces; "cpu": faster for tiny ones). Without a
    constraint the search starts from the first option of every choice for the smallest and
    the last for the largest, so ties (e.g. NB201's parameter-free none/skip/pool, a ViT's
    head count) go to the first resp. last option; the result is cached per space (the
    device only changes the speed). With a constraint an infeasible start is replaced by a
    constrained uniform sample (seeded) and only feasible moves are taken: a feasible local
    extreme.
    """
    key = _space_key(space)
    if constraint is None and key in _EXTREMES:
        return _EXTREMES[key]
    # the input shape only matters for FLOPs, which are not counted here
    cost = ArchCost(space, (int(space.options.get("in_channels", 3)), 32, 32), device=device)
    counts = [len(c.options) for c in space.choices]
    rng = np.random.default_rng(seed)

    def arch_of(idx: list[int]) -> Arch:
        return space.decode(tuple(idx))

    def feasible(idx: list[int]) -> bool:
        return constraint is None or constraint(arch_of(idx))

    out = []
    for sign, start in ((-1, [0] * len(counts)), (1, [n - 1 for n in counts])):
        if not feasible(start):
            start = list(space.encode(sample_constrained(space, rng, constraint)))
        best = _coordinate_search(
            space, start, lambda idx, s=sign: s * cost.params(arch_of(idx)), feasible
        )
        out.append(arch_of(best))
    smallest, largest = out
    if constraint is None:
        _EXTREMES[key] = (smallest, largest)
    return smallest, largest


def soft_cross_entropy(logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Cross-entropy against the teacher's softmax (the teacher is not trained by it)."""
    target = F.softmax(teacher_logits.detach(), dim=1)
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@register_trainer("sandwich")
class SandwichTrainer(SupernetTrainer):
    """Largest on labels + smallest and `num_random` random archs distilled from it."""

    name = "sandwich"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Constraint | None = None,
        num_random: int = 2,
    ) -> None:
        super().__init__(recipe, seed, constraint)
        self.num_random = num_random

    def options(self) -> dict[str, Any]:
        return {"num_random": self.num_random}

    def start(self, supernet: Supernet, data: Any) -> None:
        if self.num_random < 0:
            raise SupernasError(f"sandwich: num_random must be >= 0, got {self.num_random}")
        # building on the meta device costs ~1 ms per module: only worth it for big networks
        big = sum(p.numel() for p in supernet.parameters()) > 10_000_000
        self.smallest, self.largest = extreme_archs(
            supernet.space, self.constraint, self.seed, device="meta" if big else "cpu"
        )

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        logits, loss = self.backward_path(
            supernet, x, self.largest, lambda out: self.loss_fn(out, y), where
        )
        teacher = logits.detach()
        students = [self.smallest] + [self.sample(supernet) for _ in range(self.num_random)]
        for arch in students:
            self.backward_path(
                supernet, x, arch, lambda out: soft_cross_entropy(out, teacher), where
            )
        return path_stats(logits, loss, y)
