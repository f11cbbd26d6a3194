"""The proxy contract and registry.

A proxy is `proxy(model, batch, loss_fn) -> float`, higher = better: it scores one
untrained network from one minibatch `batch = (x, y)`. The contract every proxy keeps:

- The caller hands over a network it will not reuse (`ProxyEstimator` gives each proxy a
  fresh copy of the same initial weights), so a proxy may change weights, dtype, BN or
  mode freely; it sets the train/eval mode its paper uses.
- Randomness (Gaussian inputs, batch splits) comes from torch's global RNG, which the
  caller seeds: the same seed gives the same score.
- `-inf` is a real value (the log of a zero sum: a cell whose output ignores its input);
  `nan` means undefined. The estimator turns either into NaN with a counted warning.

Set-level scores (the `vote` of Abdelfattah et al., a rank average, AZ-NAS's non-linear
rank aggregation) are `Ensemble`s: member proxies scored per network, then combined
across the set of networks being compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from supernas.registry import Registry

Batch = tuple[Tensor, Tensor]
Proxy = Callable[[nn.Module, Batch, nn.Module], float]
#: One pass that yields several member scores at once (AZ-NAS's four from one fwd+bwd).
Measure = Callable[[nn.Module, Batch, nn.Module], dict[str, float]]
#: (n_archs, n_members) matrix of member scores (NaN = undefined) -> (n_archs,) scores.
Combine = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Ensemble:
    """Members' per-network scores combined across a set of networks.

    `measure`, when given, computes every member in one pass; otherwise each member is
    looked up in the registry and run on its own.
    """

    members: tuple[str, ...]
    combine: Combine
    measure: Measure | None = None
    doc: str = ""


PROXIES: Registry[Proxy | Ensemble] = Registry("proxy")


def register_proxy(name: str) -> Callable[[Proxy], Proxy]:
    """Decorator for a per-network proxy function."""
    return PROXIES.register(name)  # type: ignore[return-value]


def register_ensemble(name: str, ensemble: Ensemble) -> Ensemble:
    PROXIES.register(name)(ensemble)
    return ensemble


def weight_layers(model: nn.Module) -> Iterator[nn.Module]:
    """The layers whose weights the saliency proxies score: every Conv2d and Linear.

    This is the layer set of Abdelfattah et al.'s and NASLib's zero-cost code.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            yield m


def relu_modules(model: nn.Module) -> list[nn.ReLU]:
    """Every nn.ReLU in forward-definition order (activation-pattern proxies hook these)."""
    return [m for m in model.modules() if isinstance(m, nn.ReLU)]


def model_device_dtype(model: nn.Module) -> tuple:
    p = next(model.parameters())
    return p.device, p.dtype
