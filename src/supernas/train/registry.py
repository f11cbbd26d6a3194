"""The trainer registry: ways to fit a supernet's shared weights (spos; more in later work)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supernas.registry import Registry

TRAINERS: Registry[Callable[..., Any]] = Registry("trainer")


def register_trainer(name: str) -> Callable[[Any], Any]:
    return TRAINERS.register(name)


def get_trainer(name: str, **options: Any) -> Any:
    return TRAINERS.create(name, **options)


def list_trainers() -> list[str]:
    return TRAINERS.names()
