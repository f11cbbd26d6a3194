"""PC-DARTS (Xu et al., ICLR 2020): partial channel connections plus edge normalization.

DARTS' mixed op runs every option on every channel, so memory limits the batch and the
weight-free ops win early. PC-DARTS changes two things, both in the supernet's forward:

- partial channels: on each edge only the first C/K channels of the input go through the
  mixed op; the other channels bypass it unchanged, and a channel shuffle (K groups)
  interleaves the two parts, so later edges sample other channels. K times less op
  memory and compute per edge, and a regularised (noisier) alpha signal.
- edge normalization: one logit beta per edge; per node, softmax(beta) over its incoming
  edges multiplies each edge's output. Why: with partial channels the sampled channels
  change between steps, and beta stabilises which edges a node relies on.

Alpha and beta are fitted together by Adam on val batches (first order, as the paper), the
weights by the Recipe on train batches (the shared DARTS step). The paper derives the cell
from alpha * beta per edge: it keeps each node's top-2 incoming edges by beta-weighted
strength and the argmax op on each. On NB201 every edge is kept, so the derived arch is the
argmax op of alpha per edge (beta scales a whole edge and cannot change its argmax): beta
only reweights the edges during the search. Supported on nb201, whose `forward_mixed`
implements `partial` and `edge_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace
from supernas.space.nb201 import EDGES
from supernas.supernet import Supernet
from supernas.train.darts import DifferentiableTrainer, _Step, _zeros_for_none, weights_frozen
from supernas.train.recipe import Recipe
from supernas.train.registry import register_trainer


def edge_softmax(betas: Tensor) -> list[Tensor]:
    """Per NB201 edge, softmax of beta over the edges entering the same node (0-dim each).

    Node 1 has the single edge 1<-0, whose weight is therefore always 1 (its beta gets no
    gradient), as PC-DARTS' first node with its own inputs.
    """
    out: list[Tensor] = [betas[0]] * len(EDGES)
    for node in sorted({dst for dst, _ in EDGES}):
        idx = [e for e, (dst, _) in enumerate(EDGES) if dst == node]
        probs = betas[idx].softmax(0)
        for k, e in enumerate(idx):
            out[e] = probs[k]
    return out


@register_trainer("pcdarts")
class PCDARTSTrainer(DifferentiableTrainer):
    """PC-DARTS: DARTS on 1/K of each edge's channels, edges weighted by softmax(beta)."""

    name = "pcdarts"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Callable[[Arch], bool] | None = None,
        partial: int = 4,
        warmup_epochs: int = 0,
        arch_lr: float = 6e-4,
        arch_weight_decay: float = 1e-3,
    ) -> None:
        if isinstance(partial, bool) or not isinstance(partial, int) or partial < 1:
            raise SupernasError(f"pcdarts: partial (K) must be a positive integer, not {partial!r}")
        if (
            isinstance(warmup_epochs, bool)
            or not isinstance(warmup_epochs, int)
            or warmup_epochs < 0
        ):
            raise SupernasError(
                f"pcdarts: warmup_epochs must be a non-negative integer, not {warmup_epochs!r}"
            )
        super().__init__(recipe, seed, constraint, arch_lr, arch_weight_decay)
        self.partial = partial
        self.warmup_epochs = warmup_epochs
        self._betas: Tensor | None = None

    def options(self) -> dict[str, Any]:
        return {"partial": self.partial, "warmup_epochs": self.warmup_epochs, **super().options()}

    def update_arch(self, supernet: Supernet, x: Tensor, y: Tensor, where: str) -> None:
        """No arch step during the first `warmup_epochs` epochs (the paper: 15 of 50).

        Why: PC-DARTS lets the weights train alone first, so alpha and beta are not fitted
        to untrained ops (which favours the parameter-free ones).
        """
        if self._epoch >= self.warmup_epochs:
            super().update_arch(supernet, x, y, where)

    def start(self, supernet: Supernet, data: Dataset) -> None:
        """Refuse a space or width PC-DARTS cannot run on, then DARTS' set-up."""
        space = supernet.space
        if space.name != "nb201":
            raise SupernasError(
                f"pcdarts needs the nb201 space (its cell graph and partial-channel mixed "
                f"forward), not {space.name}; use darts or gdas there"
            )
        C = int(space.options["C"])
        if C % self.partial:
            raise SupernasError(
                f"pcdarts: partial K={self.partial} must divide the cell width C={C}; "
                f"choose K among {[k for k in range(1, C + 1) if C % k == 0]} or change C"
            )
        super().start(supernet, data)

    def init_alphas(self, space: SearchSpace, gen: torch.Generator) -> list[Tensor]:
        """DARTS' alpha, then beta: 1e-3 * N(0, 1) per edge (PC-DARTS' init), seeded."""
        alphas = super().init_alphas(space, gen)
        device = self.params[0].device if self.params else torch.device("cpu")
        betas = 1e-3 * torch.randn(len(EDGES), generator=gen)
        self._betas = betas.to(device).requires_grad_()
        return alphas

    def arch_parameters(self) -> list[Tensor]:
        """Alpha per edge, then the edge logits beta: what Adam moves and the checkpoint keeps."""
        assert self._betas is not None
        return [*self._alphas, self._betas]

    def edge_weights(self) -> list[Tensor]:
        """The current edge normalization: softmax(beta) per node, one scalar per edge."""
        assert self._betas is not None
        return edge_softmax(self._betas)

    def mixed_weights(self, alphas: Sequence[Tensor], *, arch_step: bool) -> list[Tensor]:
        return [a.softmax(0) for a in alphas]

    def mixed_forward(
        self, supernet: Supernet, x: Tensor, weights: Sequence[Tensor], *, arch_step: bool
    ) -> Tensor:
        edges = self.edge_weights()
        if not arch_step:
            edges = [w.detach() for w in edges]
        return supernet.forward_mixed(x, weights, partial=self.partial, edge_weights=edges)

    def arch_grads(self, step: _Step) -> tuple[list[Tensor], Tensor]:
        """First-order gradient of the val loss in alpha and beta together."""
        xv, yv = step.val
        weights = self.mixed_weights(step.alphas, arch_step=True)
        params = self.arch_parameters()
        with weights_frozen(step.supernet):
            out = self.mixed_forward(step.supernet, xv, weights, arch_step=True)
            loss = step.loss_fn(out, yv)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        return _zeros_for_none(grads, params), loss.detach()

    def betas(self) -> dict[str, float]:
        """softmax(beta) per edge name (per node): how much each node relies on each edge."""
        space, _ = self._fitted()
        return {
            c.name: float(w.detach())
            for c, w in zip(space.choices, self.edge_weights(), strict=True)
        }

    def epoch_record(self) -> dict[str, Any]:
        return {**super().epoch_record(), "betas": self.betas()}
