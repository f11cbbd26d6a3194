"""Hypernetworks that generate weights for any arch (SMASH, GHN) register here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supernas.registry import Registry

HYPERNETS: Registry[Callable[..., Any]] = Registry("hypernet")


def list_hypernets() -> list[str]:
    return HYPERNETS.names()


__all__ = ["HYPERNETS", "list_hypernets"]
