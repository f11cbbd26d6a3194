"""Zero-cost proxies: functions `proxy(model, batch, loss_fn) -> float`, higher is better.

The registry starts with the two free baselines, params and FLOPs; the training-free
proxies of the field (synflow, NASWOT, ...) register here too.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from supernas.hardware import count_flops, count_params
from supernas.registry import Registry

Proxy = Callable[[nn.Module, tuple[Tensor, Tensor], nn.Module], float]
PROXIES: Registry[Proxy] = Registry("proxy")


def register_proxy(name: str) -> Callable[[Proxy], Proxy]:
    return PROXIES.register(name)


def get_proxy(name: str) -> Proxy:
    return PROXIES.get(name)


def list_proxies() -> list[str]:
    return PROXIES.names()


@register_proxy("params")
def params(model: nn.Module, batch: tuple[Tensor, Tensor], loss_fn: nn.Module) -> float:
    """Number of trainable parameters."""
    return float(count_params(model))


@register_proxy("flops")
def flops(model: nn.Module, batch: tuple[Tensor, Tensor], loss_fn: nn.Module) -> float:
    """FLOPs of one forward pass of one example shaped like the batch's."""
    return float(count_flops(model, tuple(batch[0].shape[1:])))


__all__ = ["PROXIES", "Proxy", "get_proxy", "list_proxies", "register_proxy"]
