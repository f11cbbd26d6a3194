"""ProxylessNAS (Cai, Zhu, Han, ICLR 2019): binarized paths, a latency-aware arch loss.

Why binarized paths: DARTS runs every op of every choice, so memory grows with the number
of options. ProxylessNAS keeps alpha (one logit vector per choice) but every forward runs
sampled binary gates: the weight step samples one op per choice from softmax(alpha) and
trains that single path (SPOS's memory). The alpha step on a val batch uses the
BinaryConnect-style estimate of the paper's memory-saving variant: per choice two
candidates are sampled from softmax(alpha) without replacement, their probabilities are
renormalised to p~ (the softmax of their two logits), one of them is made active by a draw
from p~, and

    dL/dalpha_i = sum_j dL/dg_j p~_j (delta_ij - p~_i)      i, j in the two candidates

(0 for the other options), where dL/dg_j = <dL/dy, op_j(x)> is the gradient of the gate
of candidate j at the binary gates. The latency term adds the exact gradient of
latency_weight * E[lat] / latency_target with E[lat] under the full softmax(alpha), as
ProxylessNAS' expected latency. As the paper's code, alpha's Adam has beta1 = 0 (lr 1e-3,
no weight decay), and after each alpha step the two sampled logits are shifted together so
that their log-sum-exp is unchanged: probability moves between the two sampled options
only (apart from the latency term's gradient, which reaches every option).

How dL/dg of the inactive candidate is obtained through `forward_mixed`: that contract
never runs an option whose weight is exactly 0, so the inactive gate is held at
GATE_EPS = 2**-60 instead. Its output is then computed and its gate's gradient is exactly
<dL/dy, op(x)>, while its contribution to the forward (2**-60 * op(x)) vanishes in
float32 rounding against the active op's output. The inactive op runs under
`probe_gates`: without autograd, so the alpha step keeps one path's activations plus one
output tensor per choice (less than the paper's two paths; the gradient is the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.hardware.expected import ExpectedLatency, load_lut, lut_digest
from supernas.hardware.lut import LatencyLUT
from supernas.space import Arch, SearchSpace
from supernas.supernet import Supernet
from supernas.supernet.base import probe_gates
from supernas.train.darts import DifferentiableTrainer, weights_frozen
from supernas.train.recipe import Recipe
from supernas.train.registry import register_trainer

#: The inactive candidate's gate in the alpha step: not 0 (so its op runs and its gate
#: gets <dL/dy, op(x)>), and far below float32 resolution of the active output.
GATE_EPS = 2.0**-60


def binary_gate_grad(gate_grads: Tensor, probs: Tensor) -> Tensor:
    """dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i) = p_i (dL/dg_i - sum_j p_j dL/dg_j).

    `probs`: the (renormalised) softmax over the candidates whose gates were sampled;
    `gate_grads`: dL/dg for those candidates. The BinaryConnect estimate of ProxylessNAS.
    """
    return probs * (gate_grads - (probs * gate_grads).sum())


def sample_one_hot(alpha: Tensor, gen: torch.Generator) -> Tensor:
    """One op drawn from softmax(alpha) (on the CPU, seeded), as an exact one-hot."""
    probs = alpha.detach().softmax(0).cpu()
    k = int(torch.multinomial(probs, 1, generator=gen))
    out = torch.zeros_like(alpha.detach())
    out[k] = 1.0
    return out


def latency_setup(
    lut: LatencyLUT | None, space: SearchSpace, target: float | None
) -> tuple[ExpectedLatency | None, float]:
    """The expected-latency function of `space` and the normaliser of the latency term.

    `target` None: E[lat] under uniform probabilities, so latency_weight is a fraction of
    the loss per "average arch's latency" on any hardware (ms are not comparable across
    devices, a ratio is).
    """
    if lut is None:
        return None, 1.0
    expected = ExpectedLatency.from_lut(lut, space)
    if target is None:
        uniform = [torch.full((len(c.options),), 1.0 / len(c.options)) for c in space.choices]
        target = float(expected(uniform))
    if not target > 0:
        raise SupernasError(f"latency_target must be positive, got {target}")
    return expected, float(target)


@register_trainer("proxyless")
class ProxylessTrainer(DifferentiableTrainer):
    """ProxylessNAS: one sampled path per weight step, two-path binary gates per alpha step."""

    name = "proxyless"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Callable[[Arch], bool] | None = None,
        lut: str | Path | LatencyLUT | None = None,
        latency_weight: float = 0.1,
        latency_target: float | None = None,
        arch_lr: float = 1e-3,
        arch_weight_decay: float = 0.0,
    ) -> None:
        super().__init__(recipe, seed, constraint, arch_lr, arch_weight_decay)
        if latency_weight < 0:
            raise SupernasError(f"proxyless: latency_weight must be >= 0, got {latency_weight}")
        self.lut = load_lut(lut)
        self.latency_weight = float(latency_weight)
        self.latency_target = latency_target
        self._expected: ExpectedLatency | None = None
        self._target = 1.0

    def options(self) -> dict[str, Any]:
        return {
            "lut": lut_digest(self.lut),
            "latency_weight": self.latency_weight,
            "latency_target": self.latency_target,
            **super().options(),
        }

    def init_alphas(self, space: SearchSpace, gen: torch.Generator) -> list[Tensor]:
        """DARTS' near-uniform logits; also prepares E[lat] for this space (if a LUT is set)."""
        self._expected, self._target = latency_setup(self.lut, space, self.latency_target)
        return super().init_alphas(space, gen)

    def mixed_weights(self, alphas: Sequence[Tensor], *, arch_step: bool) -> list[Tensor]:
        """One op per choice sampled from softmax(alpha): the single path the weights train."""
        return [sample_one_hot(a, self.sample_gen) for a in alphas]

    def sample_gates(
        self, alphas: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[tuple[list[int], Tensor] | None]]:
        """Per choice the binary gates and the sampled pair (as the paper's 'two' mode).

        Gates: 1 for the active candidate, GATE_EPS for the other sampled one, 0 for the
        rest. Pair: ([active, inactive], their renormalised probabilities p~), None for a
        choice with a single option (nothing to learn).
        """
        gates: list[Tensor] = []
        pairs: list[tuple[list[int], Tensor] | None] = []
        for a in alphas:
            gate = torch.zeros(len(a), dtype=a.dtype)
            if len(a) < 2:
                gate[0] = 1.0
                pairs.append(None)
            else:
                logits = a.detach().cpu()
                two = torch.multinomial(logits.softmax(0), 2, generator=self.sample_gen)
                renorm = logits[two].softmax(0)
                k = int(torch.multinomial(renorm, 1, generator=self.sample_gen))
                idx = [int(two[k]), int(two[1 - k])]
                gate[idx[0]], gate[idx[1]] = 1.0, GATE_EPS
                pairs.append((idx, renorm[[k, 1 - k]]))
            gates.append(gate.to(a.device).requires_grad_())
        return gates, pairs

    def latency_term(self, probs: Sequence[Tensor]) -> Tensor | None:
        """latency_weight * E[lat] / latency_target, or None without a LUT."""
        if self._expected is None or self.latency_weight == 0:
            return None
        return self.latency_weight * self._expected(probs) / self._target

    def arch_grads(self, step: Any) -> tuple[list[Tensor], Tensor]:
        """The two-path binary-gate gradient of the val loss, plus the latency gradient."""
        xv, yv = step.val
        alphas = step.alphas
        gates, pairs = self.sample_gates(alphas)
        # The inactive op: its output only, not its internals; no weight gradients at all.
        with probe_gates(GATE_EPS), weights_frozen(step.supernet):
            out = self.mixed_forward(step.supernet, xv, gates, arch_step=True)
            loss = step.loss_fn(out, yv)
            gate_grads = torch.autograd.grad(loss, gates, allow_unused=True)
        self._involved = [
            None if pair is None else (pair[0], a.detach()[pair[0]].clone())
            for a, pair in zip(alphas, pairs, strict=True)
        ]
        grads = []
        for a, g, pair in zip(alphas, gate_grads, pairs, strict=True):
            grad = torch.zeros_like(a.detach())
            if g is not None and pair is not None:
                idx, probs = pair
                grad[idx] = binary_gate_grad(g[idx], probs.to(device=a.device, dtype=a.dtype))
            grads.append(grad)
        total = loss.detach()
        lat = self.latency_term([a.softmax(0) for a in alphas])
        if lat is not None:
            lat_grads = torch.autograd.grad(lat, alphas, allow_unused=True)
            grads = [g if lg is None else g + lg for g, lg in zip(grads, lat_grads, strict=True)]
            total = total + lat.detach().to(total.dtype)
        return grads, total

    def start(self, supernet: Supernet, data: Dataset) -> None:
        """As DARTS, but alpha's Adam has beta1 = 0, as ProxylessNAS' code.

        Why: an option that was not sampled gets a zero gradient; with momentum it would
        still move on the last steps' gradients, with beta1 = 0 it stays put.
        """
        super().start(supernet, data)
        self._involved: list[tuple[list[int], Tensor] | None] = []
        self.arch_opt = torch.optim.Adam(
            self.arch_parameters(),
            lr=self.arch_lr,
            betas=(0.0, 0.999),
            weight_decay=self.arch_weight_decay,
        )

    def update_arch(self, supernet: Supernet, x: Tensor, y: Tensor, where: str) -> None:
        """The alpha step, then ProxylessNAS' rescaling of the two sampled logits.

        Both sampled logits are shifted by one offset so that their log-sum-exp is what it
        was before the step: the update moves probability between the two candidates and
        leaves the other options' probabilities as they were (the paper's code,
        `rescale_updated_arch_param`).
        """
        super().update_arch(supernet, x, y, where)
        with torch.no_grad():
            for a, inv in zip(self._alphas, self._involved, strict=True):
                if inv is not None:
                    idx, old = inv
                    a[idx] -= a[idx].logsumexp(0) - old.logsumexp(0)
        self._involved = []

    def expected_latency(self) -> float | None:
        """E[lat] (ms) under the current softmax(alpha), or None without a LUT."""
        if self._expected is None:
            return None
        _, alphas = self._fitted()
        return float(self._expected([a.detach().softmax(0) for a in alphas]))
