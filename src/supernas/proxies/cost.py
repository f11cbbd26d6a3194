"""params and flops: the free baselines every proxy must beat (data-independent)."""

from __future__ import annotations

from torch import nn

from supernas.hardware import count_flops, count_params
from supernas.proxies.base import Batch, register_proxy


@register_proxy("params")
def params(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Number of trainable parameters."""
    return float(count_params(model))


@register_proxy("flops")
def flops(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """FLOPs of one forward pass of one example shaped like the batch's."""
    return float(count_flops(model, tuple(batch[0].shape[1:])))
