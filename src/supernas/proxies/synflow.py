"""synflow: synaptic flow of the linearised network, returned as its natural log."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from supernas.proxies.base import Batch, model_device_dtype, register_proxy, weight_layers


def _identity(x: Tensor) -> Tensor:
    return x


@register_proxy("synflow")
def synflow(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """log of sum |W * dR/dW|, R = sum(f_|theta|(1)) (Tanaka et al., NeurIPS 2020).

    As Abdelfattah et al. (ICLR 2021): BN off, float64, every parameter replaced by its
    absolute value, one all-ones input example, R = sum of the outputs, one backward; the
    score sums |W * dR/dW| over every Conv2d/Linear weight. Labels and `loss_fn` are unused.

    Returned as the log of that sum (same ranking: log is monotone), summed in log space so
    it cannot overflow even where the sum exceeds float64 (very deep/wide nets); -inf when
    every term is zero (e.g. a cell whose output ignores its input), +inf if R itself
    overflows float64.
    """
    device, _ = model_device_dtype(model)
    # Why no BN: synflow is defined on the linearised network (|theta|, no data); a BN in
    # train mode would renormalise the single all-ones example away. Its forward becomes the
    # identity in place, so code that reads the module's attributes keeps working.
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.forward = _identity  # type: ignore[method-assign]
    model.double()
    model.eval()  # Tanaka et al. score in eval mode (no dropout): a deterministic network
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    weights = [m.weight for m in weight_layers(model)]
    for w in weights:
        w.requires_grad_(True)
    ones = torch.ones((1, *batch[0].shape[1:]), dtype=torch.float64, device=device)
    r = model(ones).sum()
    if not math.isfinite(float(r.detach())):
        return float(r.detach())
    if not r.requires_grad:
        return float("-inf")
    grads = torch.autograd.grad(r, weights, allow_unused=True)
    logs: list[Tensor] = []
    with torch.no_grad():
        for w, g in zip(weights, grads, strict=True):
            if g is None:
                continue
            terms = (w * g).abs().flatten()
            terms = terms[terms > 0]
            if terms.numel():
                logs.append(torch.logsumexp(terms.log(), 0))
    if not logs:
        return float("-inf")
    return float(torch.logsumexp(torch.stack(logs), 0))
