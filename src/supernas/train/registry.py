"""The trainer registry: ways to fit a supernet's shared weights (spos; more in later work)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from supernas.registry import Registry

TRAINERS: Registry[Callable[..., Any]] = Registry("trainer")


def register_trainer(name: str) -> Callable[[Any], Any]:
    return TRAINERS.register(name)


def get_trainer(name: str, **options: Any) -> Any:
    return TRAINERS.create(name, **options)


def with_lut(name: str, options: dict[str, Any], lut: Any) -> dict[str, Any]:
    """`options` plus `lut` for a trainer with a latency loss (proxyless, fbnet) that takes one.

    Why: a run's `--lut` serves both its latency constraints and such a trainer's loss, so the
    user gives it once; an explicit `lut` trainer option wins.
    """
    if lut and "lut" in inspect.signature(TRAINERS.get(name)).parameters:
        return {"lut": lut, **options}
    return dict(options)


def list_trainers() -> list[str]:
    return TRAINERS.names()
