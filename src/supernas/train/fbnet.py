"""FBNet (Wu et al., CVPR 2019): Gumbel-softmax weights over all ops, latency-aware loss.

Per forward and per choice, FBNet draws the soft Gumbel-softmax mask
m = softmax((alpha + g) / tau) (g: Gumbel noise, seeded) and runs every op weighted by m,
as DARTS with noise. tau starts at `tau0` = 5 and is multiplied by `tau_decay` = 0.956
each epoch, as the paper. The alpha step (Adam, lr 1e-2, weight decay 5e-4: the paper's)
minimises, on a val batch,

    CE * alpha_coef * log(LAT(m) / latency_unit) ** beta_coef        (latency_loss="mul")
    CE + latency_weight * LAT(m) / latency_target                    (latency_loss="add")

with LAT(m) = sum_c sum_j m_cj L_cj (+ the fixed part), the LUT's latency under the same
sampled mask (paper eq. 7), from `supernas.hardware.expected`. The paper's defaults:
alpha_coef 0.2, beta_coef 0.6, latencies in ms. The log needs LAT > latency_unit, so a
network faster than 1 ms (tiny nets on a CPU) needs a smaller `latency_unit`; otherwise
a clear error. Without a LUT the arch loss is the plain CE. The weight step trains on
plain CE with a fresh mask (multiplying by the latency factor would only rescale its
learning rate). The arch: argmax of alpha per choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from supernas.errors import SupernasError
from supernas.hardware.expected import ExpectedLatency, load_lut, lut_digest
from supernas.hardware.lut import LatencyLUT
from supernas.space import Arch, SearchSpace
from supernas.train.darts import DifferentiableTrainer, weights_frozen
from supernas.train.proxyless import latency_setup
from supernas.train.recipe import Recipe
from supernas.train.registry import register_trainer

LATENCY_LOSSES = ("mul", "add")


def gumbel_soft(alpha: Tensor, tau: float, gen: torch.Generator) -> Tensor:
    """softmax((alpha + g) / tau), g = -log(Exponential(1)) drawn from `gen` on the CPU."""
    while True:  # an exponential draw of exactly 0 gives an infinite Gumbel: redraw
        gumbel = -torch.empty(len(alpha)).exponential_(generator=gen).log()
        if torch.isfinite(gumbel).all():
            break
    return ((alpha + gumbel.to(device=alpha.device, dtype=alpha.dtype)) / tau).softmax(0)


@register_trainer("fbnet")
class FBNetTrainer(DifferentiableTrainer):
    """FBNet: soft Gumbel-softmax over every op; alpha by Adam on val with CE x latency."""

    name = "fbnet"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Callable[[Arch], bool] | None = None,
        lut: str | Path | LatencyLUT | None = None,
        latency_loss: str = "mul",
        alpha_coef: float = 0.2,
        beta_coef: float = 0.6,
        latency_unit: float = 1.0,
        latency_weight: float = 0.1,
        latency_target: float | None = None,
        tau0: float = 5.0,
        tau_decay: float = 0.956,
        arch_lr: float = 1e-2,
        arch_weight_decay: float = 5e-4,
    ) -> None:
        super().__init__(recipe, seed, constraint, arch_lr, arch_weight_decay)
        if latency_loss not in LATENCY_LOSSES:
            raise SupernasError(
                f"fbnet: latency_loss must be one of {', '.join(LATENCY_LOSSES)}, "
                f"not {latency_loss!r}"
            )
        if not tau0 > 0 or not 0 < tau_decay <= 1:
            raise SupernasError(
                f"fbnet: need tau0 > 0 and 0 < tau_decay <= 1, got {tau0}, {tau_decay}"
            )
        if not latency_unit > 0 or latency_weight < 0:
            raise SupernasError("fbnet: need latency_unit > 0 and latency_weight >= 0")
        self.lut = load_lut(lut)
        self.latency_loss = latency_loss
        self.alpha_coef = float(alpha_coef)
        self.beta_coef = float(beta_coef)
        self.latency_unit = float(latency_unit)
        self.latency_weight = float(latency_weight)
        self.latency_target = latency_target
        self.tau0 = float(tau0)
        self.tau_decay = float(tau_decay)
        self.tau = self.tau0
        self._expected: ExpectedLatency | None = None
        self._target = 1.0

    def options(self) -> dict[str, Any]:
        return {
            "lut": lut_digest(self.lut),
            "latency_loss": self.latency_loss,
            "alpha_coef": self.alpha_coef,
            "beta_coef": self.beta_coef,
            "latency_unit": self.latency_unit,
            "latency_weight": self.latency_weight,
            "latency_target": self.latency_target,
            "tau0": self.tau0,
            "tau_decay": self.tau_decay,
            **super().options(),
        }

    def init_alphas(self, space: SearchSpace, gen: torch.Generator) -> list[Tensor]:
        """DARTS' near-uniform logits; also prepares LAT for this space (if a LUT is set)."""
        self._expected, self._target = latency_setup(self.lut, space, self.latency_target)
        return super().init_alphas(space, gen)

    def start_epoch(self, epoch: int) -> dict[str, Any]:
        """tau = tau0 * tau_decay ** epoch (the paper: 5, x0.956 per epoch)."""
        self.tau = self.tau0 * self.tau_decay**epoch
        return {"tau": self.tau}

    def mixed_weights(self, alphas: Sequence[Tensor], *, arch_step: bool) -> list[Tensor]:
        """A soft Gumbel-softmax mask per choice; detached for the weight step."""
        masks = [gumbel_soft(a, self.tau, self.sample_gen) for a in alphas]
        return masks if arch_step else [m.detach() for m in masks]

    def arch_loss(self, ce: Tensor, masks: Sequence[Tensor]) -> Tensor:
        """The paper's CE * alpha * log(LAT)^beta (or the additive form); CE without a LUT."""
        if self._expected is None:
            return ce
        lat = self._expected(masks).to(ce.dtype)
        if self.latency_loss == "add":
            return ce + self.latency_weight * lat / self._target
        ratio = lat / self.latency_unit
        if not float(ratio.detach()) > 1:
            raise SupernasError(
                f"fbnet: expected latency {float(lat.detach()):.4g} ms is not above latency_unit "
                f"{self.latency_unit} ms, so log(LAT) ** beta is undefined; pass a smaller "
                "latency_unit (e.g. a tenth of the fastest arch's latency) or latency_loss='add'"
            )
        return ce * self.alpha_coef * ratio.log() ** self.beta_coef

    def arch_grads(self, step: Any) -> tuple[list[Tensor], Tensor]:
        """d/dalpha of the latency-aware loss on a val batch, through the Gumbel mask."""
        xv, yv = step.val
        masks = self.mixed_weights(step.alphas, arch_step=True)
        with weights_frozen(step.supernet):
            ce = step.loss_fn(self.mixed_forward(step.supernet, xv, masks, arch_step=True), yv)
            loss = self.arch_loss(ce, masks)
            grads = torch.autograd.grad(loss, step.alphas, allow_unused=True)
        out = [
            torch.zeros_like(a) if g is None else g for g, a in zip(grads, step.alphas, strict=True)
        ]
        return out, loss.detach()
