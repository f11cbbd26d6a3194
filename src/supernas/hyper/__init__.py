"""Hypernetworks that generate the weights of any arch (SMASH, GHN), registered by name.

Each is a `Supernet` (`forward(x, arch)`, `extract(arch)`), so training, checkpoints, search
and `supernas run` use it unchanged. Trainers: `supernas.hyper.trainer` (registered as the
`smash` and `ghn` trainers by `supernas.train`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supernas.registry import Registry

HYPERNETS: Registry[Callable[..., Any]] = Registry("hypernet")


def list_hypernets() -> list[str]:
    return HYPERNETS.names()


from supernas.hyper.base import HyperSupernet  # noqa: E402
from supernas.hyper.ghn import GHN  # noqa: E402
from supernas.hyper.load import hypernet_from_checkpoint, model_for  # noqa: E402
from supernas.hyper.smash import SMASH  # noqa: E402

HYPERNETS.register("smash")(SMASH)
HYPERNETS.register("ghn")(GHN)

__all__ = [
    "GHN",
    "HYPERNETS",
    "SMASH",
    "HyperSupernet",
    "hypernet_from_checkpoint",
    "list_hypernets",
    "model_for",
]
