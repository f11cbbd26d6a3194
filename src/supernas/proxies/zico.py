"""ZiCo: the inverse coefficient of variation of the weight gradients across batches."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from supernas.proxies.base import Batch, model_device_dtype, register_proxy, weight_layers


@register_proxy("zico")
def zico(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """sum over Conv2d/Linear layers of log(sum_theta mean_b|g_theta| / std_b(g_theta)).

    Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients",
    ICLR 2023.
    The statistics need gradients from at least two batches, so the batch is split into
    two halves (first / second), one train-mode forward+backward each. Per weight element
    theta: the mean over the halves of |g| (mean of abs, as the authors' code) and the
    population std of g (ddof=0, np.std); elements with zero std are left out. A layer
    whose sum is 0 (or that got no gradient) is skipped, as in the authors' code; -inf
    when no layer contributes at all.
    """
    x, y = batch
    device, dtype = model_device_dtype(model)
    x = x.to(device=device, dtype=dtype)
    y = y.to(device)
    if x.shape[0] < 2:
        return math.nan  # two halves need two examples
    half = x.shape[0] // 2
    model.train()
    layers = list(weight_layers(model))
    grads: list[list[Tensor | None]] = []
    for sl in (slice(0, half), slice(half, None)):
        model.zero_grad(set_to_none=True)
        loss_fn(model(x[sl]), y[sl]).backward()
        grads.append(
            [None if m.weight.grad is None else m.weight.grad.detach().clone() for m in layers]
        )
    score, used = 0.0, False
    for g1, g2 in zip(*grads, strict=True):
        if g1 is None or g2 is None:
            continue
        g = torch.stack([g1.flatten(), g2.flatten()]).to(torch.float64)
        std = g.std(dim=0, unbiased=False)
        keep = std != 0
        total = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if total != 0:
            score += math.log(total)
            used = True
    return score if used else -math.inf
