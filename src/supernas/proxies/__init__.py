"""Zero-cost proxies: score an untrained network from one minibatch (higher = better).

Per-network proxies live one family a file; importing this package registers them all.
See `base` for the contract, `ensemble` for set-level scores and `estimator` for
`ProxyEstimator`, the proxies' face in the estimator protocol.
"""

from __future__ import annotations

from supernas.proxies import (  # noqa: F401  (importing a family registers its proxies)
    activation,
    az_nas,
    cost,
    jacobian,
    saliency,
    synflow,
    zen,
    zico,
)
from supernas.proxies.base import (
    PROXIES,
    Batch,
    Ensemble,
    Proxy,
    register_ensemble,
    register_proxy,
    relu_modules,
    weight_layers,
)
from supernas.proxies.batch import proxy_batch
from supernas.proxies.ensemble import majority_vote, rank_average
from supernas.proxies.estimator import ProxyEstimator, resolve


def get_proxy(name: str) -> Proxy | Ensemble:
    """The proxy or ensemble named `name` (or `vote:a+b+c`, `rankavg:a+b`); an unknown
    name lists the valid ones."""
    return resolve(name)


def list_proxies() -> list[str]:
    return PROXIES.names()


__all__ = [
    "PROXIES",
    "Batch",
    "Ensemble",
    "Proxy",
    "ProxyEstimator",
    "get_proxy",
    "list_proxies",
    "majority_vote",
    "proxy_batch",
    "rank_average",
    "register_ensemble",
    "register_proxy",
    "relu_modules",
    "weight_layers",
]
