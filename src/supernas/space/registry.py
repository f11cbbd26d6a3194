"""The space registry: `@register_space(name)` on a factory, `get_space(name, **options)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supernas.registry import Registry
from supernas.space.core import SearchSpace

SPACES: Registry[Callable[..., SearchSpace]] = Registry("space")


def register_space(name: str) -> Callable[[Callable[..., SearchSpace]], Callable[..., SearchSpace]]:
    """Register a factory `f(**options) -> SearchSpace` under `name`."""
    return SPACES.register(name)


def get_space(name: str, **options: Any) -> SearchSpace:
    """Build the space `name` with its options; an unknown name lists the valid ones."""
    return SPACES.create(name, **options)


def list_spaces() -> list[str]:
    return SPACES.names()
