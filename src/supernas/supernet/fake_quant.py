"""Fake quantization with a straight-through estimator (STE): quantized values in the forward,
float gradients in the backward, so one set of float weights trains every bit width.

- Weights: symmetric uniform per output channel, scale max|w| / (2^(b-1) - 1): 2^b - 1
  levels, zero exact. The STE passes the gradient unchanged (every weight is in range).
- Activations (after ReLU): unsigned uniform on [0, alpha] with 2^b levels, alpha learned
  as in PACT (Choi et al. 2018), one per bit width (a 2-bit clip wants a smaller alpha
  than an 8-bit one). Gradient: 1 inside [0, alpha], 0 outside; alpha gets PACT's clip
  gradient plus LSQ's step gradient, scaled by LSQ's 1/sqrt(n * levels) (Esser et al. 2020)
  so a per-tensor scalar does not take steps as large as the sum over all activations.
- 32 bits is float: the input is returned as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from supernas.space.quant import FLOAT_BITS

#: PACT's initial clip for unit-variance (BN) inputs after ReLU: ~0.1% of them lie above.
ALPHA_INIT = 3.0


def round_ste(x: Tensor) -> Tensor:
    """round(x) in the forward (exactly: the added term is 0), identity in the backward."""
    return torch.round(x.detach()) + (x - x.detach())


def quantize_weight(w: Tensor, bits: int) -> Tensor:
    """Symmetric uniform per-output-channel quantization of a conv/linear weight (STE)."""
    if bits >= FLOAT_BITS:
        return w
    levels = 2 ** (bits - 1) - 1
    dims = tuple(range(1, w.dim()))
    scale = (w.detach().abs().amax(dim=dims, keepdim=True) / levels).clamp(min=1e-12)
    q = torch.clamp(torch.round(w.detach() / scale), -levels, levels) * scale
    return q + (w - w.detach())  # exactly q; gradient identity


def _grad_scale(x: Tensor, g: float) -> Tensor:
    """x in the forward, g * gradient in the backward (LSQ's step-size gradient scale)."""
    return x * g + (x - x * g).detach()


def quantize_act(x: Tensor, alpha: Tensor, bits: int) -> Tensor:
    """Unsigned uniform quantization on [0, alpha] with 2^bits levels (PACT clip, STE)."""
    if bits >= FLOAT_BITS:
        return x
    levels = 2**bits - 1
    a = _grad_scale(alpha, 1.0 / math.sqrt(max(1, x[0].numel()) * levels)).clamp(min=1e-3)
    y = torch.minimum(x.clamp(min=0), a)  # d/d alpha = 1 where clipped (PACT)
    step = a / levels
    return round_ste(y / step) * step


def _key(bits: int) -> str:
    return f"b{bits}"


class QuantAct(nn.Module):
    """Quantizes a conv's input activations; holds one learned clip per bit width below 32."""

    def __init__(self, bits: Sequence[int]) -> None:
        super().__init__()
        self.alphas = nn.ParameterDict(
            {_key(b): nn.Parameter(torch.tensor(ALPHA_INIT)) for b in bits if b < FLOAT_BITS}
        )

    def forward(self, x: Tensor, bits: int) -> Tensor:
        if bits >= FLOAT_BITS:
            return x
        return quantize_act(x, self.alphas[_key(bits)], bits)


class QuantConv2d(nn.Conv2d):
    """A Conv2d whose weight is fake-quantized to the bit width given with each call.

    `w_bits`/`a_bits` record a standalone network's fixed precision (None in a supernet,
    where each forward says it): the default of a call without bits, and what the
    model-size and BitOPs counters read. Its input is quantized before (`QuantAct`).
    """

    w_bits: int | None = None
    a_bits: int | None = None

    def forward(self, x: Tensor, w_bits: int | None = None) -> Tensor:  # type: ignore[override]
        bits = w_bits if w_bits is not None else self.w_bits or FLOAT_BITS
        return self._conv_forward(x, quantize_weight(self.weight, bits), self.bias)
