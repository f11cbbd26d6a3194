"""GreedyNAS (You et al. 2020): train the supernet mostly on paths that look good.

Why: a uniform path is often a weak arch that the search will never pick; its updates cost
capacity that the good archs need. Each step samples `num_paths` paths, scores each by its
loss on a small fixed validation subset (no gradient), and trains only the `top_k` best
(gradients summed, one optimiser step). A candidate pool keeps the best paths seen with
their validation loss; with probability epsilon, rising linearly from 0 to `epsilon_max`
over training, a path is drawn from the pool instead of uniformly (exploitation).

Scoring uses train-mode BN (batch statistics, as the paths are trained) but the supernet's
BN running statistics are restored afterwards, so scoring never changes the supernet.
The pool's scores are the loss when a path last entered it (the paper does the same); the
paper's early stop of pool updates is not implemented.

The pool is `trainer.pool` after `fit` (best first), saved in every checkpoint (`read_pool`
reads it from `supernet.pt`), and in the last history record as `candidate_pool`. Its
arch strings are what the `greedy_pool` search strategy takes as `pool`:
`get_strategy("greedy_pool", space, pool=[a for a, _ in read_pool("out/supernet.pt")])`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.io import load_checkpoint
from supernas.space import Arch
from supernas.supernet import Supernet
from supernas.train.loop import Constraint, SupernetTrainer, path_stats
from supernas.train.recipe import Recipe, check_loss
from supernas.train.registry import register_trainer


def read_pool(path: str | Path) -> list[tuple[str, float]]:
    """The candidate pool saved in a GreedyNAS `supernet.pt`: (arch, val loss), best first."""
    ckpt = load_checkpoint(path)
    if "pool" not in ckpt:
        raise SupernasError(f"{path} has no candidate pool: train it with --method greedynas")
    return [(str(a), float(s)) for a, s in ckpt["pool"]]


@register_trainer("greedynas")
class GreedyNASTrainer(SupernetTrainer):
    """Multi-path sampling with rejection: train the top_k of num_paths paths per batch."""

    name = "greedynas"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Constraint | None = None,
        num_paths: int = 10,
        top_k: int = 5,
        pool_size: int = 100,
        epsilon_max: float = 0.8,
        val_batches: int = 1,
    ) -> None:
        super().__init__(recipe, seed, constraint)
        self.num_paths = num_paths
        self.top_k = top_k
        self.pool_size = pool_size
        self.epsilon_max = epsilon_max
        self.val_batches = val_batches
        self.pool: list[tuple[str, float]] = []

    def options(self) -> dict[str, Any]:
        return {
            "num_paths": self.num_paths,
            "top_k": self.top_k,
            "pool_size": self.pool_size,
            "epsilon_max": self.epsilon_max,
            "val_batches": self.val_batches,
        }

    def start(self, supernet: Supernet, data: Dataset) -> None:
        if not 1 <= self.top_k <= self.num_paths:
            raise SupernasError(
                f"greedynas: need 1 <= top_k <= num_paths, got {self.top_k} and {self.num_paths}"
            )
        if self.pool_size < 1 or self.val_batches < 1 or not 0 <= self.epsilon_max <= 1:
            raise SupernasError(
                "greedynas: pool_size and val_batches must be >= 1, epsilon_max in [0, 1]"
            )
        split = "val" if len(data.x_val) else "train"  # a dataset without val: first train batch
        # fixed and unshuffled: every path of the whole run is scored on the same examples
        self.val = list(data.batches(split, self.recipe.batch_size, limit=self.val_batches))
        self.space = supernet.space
        self.pool = []
        self.pool_archs: list[Arch] = []

    @property
    def epsilon(self) -> float:
        """Probability of drawing from the pool: linear from 0 to epsilon_max over training."""
        return self.epsilon_max * self.progress

    def draw(self, supernet: Supernet) -> Arch:
        if self.pool and self.rng.random() < self.epsilon:
            return self.pool_archs[int(self.rng.integers(len(self.pool)))]
        return self.sample(supernet)

    @torch.no_grad()
    def score(self, supernet: Supernet, arch: Arch, where: str) -> float:
        """Mean loss of `arch` on the fixed validation subset (lower is better)."""
        total, n = 0.0, 0
        for x, y in self.val:
            loss = self.loss_fn(supernet(x, arch), y)
            check_loss(loss, f"{where} (scoring arch {arch})")
            total += loss.item() * len(y)
            n += len(y)
        return total / n

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        archs = [self.draw(supernet) for _ in range(self.num_paths)]
        buffers = {k: b.clone() for k, b in supernet.named_buffers()}
        try:
            scores = [self.score(supernet, a, where) for a in archs]
        finally:
            with torch.no_grad():
                for k, b in supernet.named_buffers():
                    b.copy_(buffers[k])
        order = sorted(range(len(archs)), key=lambda i: scores[i])[: self.top_k]  # stable
        loss_sum, correct, n = 0.0, 0, 0
        for i in order:
            logits, loss = self.backward_path(
                supernet, x, archs[i], lambda out: self.loss_fn(out, y), where
            )
            s, c, k = path_stats(logits, loss, y)
            loss_sum, correct, n = loss_sum + s, correct + c, n + k
        self.update_pool([(archs[i], scores[i]) for i in order])
        return loss_sum, correct, n

    def update_pool(self, scored: list[tuple[Arch, float]]) -> None:
        """Insert (or refresh) scored paths; keep the `pool_size` lowest losses, best first."""
        entries = dict(zip(self.pool_archs, (s for _, s in self.pool), strict=True))
        for arch, s in scored:
            entries[arch] = s
        best = sorted(entries.items(), key=lambda e: e[1])[: self.pool_size]
        self.pool_archs = [a for a, _ in best]
        self.pool = [(str(a), s) for a, s in best]

    def extra_state(self) -> dict[str, Any]:
        return {"pool": [[a, s] for a, s in self.pool]}

    def load_extra_state(self, ckpt: dict[str, Any]) -> None:
        self.pool = [(str(a), float(s)) for a, s in ckpt.get("pool", [])]
        self.pool_archs = [self.space.parse(a) for a, _ in self.pool]

    def epoch_record(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "pool_size": len(self.pool),
            "pool_best_loss": self.pool[0][1] if self.pool else None,
        }

    def finish(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not history:
            return history
        last = {**history[-1], "candidate_pool": [[a, s] for a, s in self.pool]}
        return [*history[:-1], last]
