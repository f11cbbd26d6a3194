"""One protocol turns anything into numbers per arch: `score(archs) -> list[float]`.

Higher is better.

Strategies call a score function and never learn whether a supernet, a hypernet, a proxy,
a table or real training sits behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from supernas.space import Arch


@runtime_checkable
class Estimator(Protocol):
    name: str

    def score(self, archs: Sequence[Arch]) -> list[float]: ...
