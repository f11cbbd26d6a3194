"""Zen-score: the expressivity of a network's pre-pooling feature map at Gaussian init.

Lin et al., "Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition", ICCV 2021.
Follows the authors' `ZeroShotProxy/compute_zen_score.py` (idstcv/ZenNAS), repeat=1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from supernas.proxies.base import Batch, model_device_dtype, register_proxy

#: The perturbation scale alpha of the paper (the code's `mixup_gamma`).
ZEN_ALPHA = 1e-2

#: Global pooling layers: their (N, C, 1, 1) output is post-GAP, never the feature map.
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def gaussian_init_(model: nn.Module) -> None:
    """The authors' init: Conv2d/Linear weights ~ N(0, 1), biases 0; norm layers' affine 1/0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class PreGapFeatures:
    """Forward hooks that keep the last 4-D tensor any module outputs: the pre-GAP map.

    Rule: the feature map is the last 4-D output, in execution order, of any module other
    than an adaptive (global) pooling layer. For NB201 that is `lastact`'s output, for
    ResNet-18 the last block's; a network that pools with `x.mean((2, 3))` or with an
    nn.AdaptiveAvgPool2d is handled alike, since neither's output is taken.
    """

    def __init__(self, model: nn.Module) -> None:
        self.last: Tensor | None = None
        self._handles = [
            m.register_forward_hook(self._hook)
            for m in model.modules()
            if not isinstance(m, _GLOBAL_POOLS)
        ]

    def _hook(self, module: nn.Module, args: tuple, output: object) -> None:
        if isinstance(output, Tensor) and output.dim() == 4:
            self.last = output

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _bn_log_scale(model: nn.Module, batch_vars: dict[nn.Module, Tensor]) -> float:
    """Sum over BatchNorm2d layers of log sqrt(mean over channels of the BN variance)."""
    total = 0.0
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            var = m.running_var if m.running_var is not None else batch_vars.get(m)
            if var is None:  # a BN layer that never ran contributes no scale
                continue
            mean_var = float(var.double().mean())
            total += 0.5 * math.log(mean_var) if mean_var > 0 else -math.inf
    return total


@register_proxy("zen")
@torch.no_grad()
def zen(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Zen-score (Lin et al., ICCV 2021): log E_b ||f(x) - f(x + a*e)||_1 + sum_BN log sigma.

    Weights are re-drawn N(0, 1) (the authors' init); x and e are standard Gaussian, shaped
    like the batch's inputs (its data and labels are unused); a = 0.01; f is the pre-GAP
    feature map (`PreGapFeatures`); BN layers run in train mode (batch statistics).
    """
    device, dtype = model_device_dtype(model)
    gaussian_init_(model)
    model.train()
    # Why reset: the code reads BN `running_var` after its two forwards, i.e. starting
    # from the fresh-module value 1 blended with both batch variances by the momentum.
    batch_vars: dict[nn.Module, Tensor] = {}
    handles = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            if m.track_running_stats and m.running_var is not None:
                m.reset_running_stats()
            else:  # no running stats: the paper's batch variance of the last forward
                handles.append(m.register_forward_pre_hook(_batch_var_hook(batch_vars)))
    shape = tuple(batch[0].shape)
    x = torch.randn(shape, device=device, dtype=dtype)
    eps = torch.randn(shape, device=device, dtype=dtype)
    feats = PreGapFeatures(model)
    try:
        model(x)
        f_x = feats.last
        feats.last = None
        model(x + ZEN_ALPHA * eps)
        f_mix = feats.last
    finally:
        feats.remove()
        for h in handles:
            h.remove()
    if f_x is None or f_mix is None:
        return math.nan  # the network has no 4-D feature map: the score is undefined
    # The code's norm: per-example L1 over (C, H, W), averaged over the batch; no 1/alpha.
    delta = float((f_x - f_mix).abs().flatten(1).sum(1).double().mean())
    log_delta = math.log(delta) if delta > 0 else -math.inf
    return log_delta + _bn_log_scale(model, batch_vars)


def _batch_var_hook(store: dict[nn.Module, Tensor]):
    def hook(module: nn.Module, args: tuple) -> None:
        store[module] = args[0].detach().var(dim=(0, 2, 3), unbiased=False)

    return hook
