"""Exhaustive search: every arch once, for spaces small enough to enumerate."""

from __future__ import annotations

from typing import Any

from supernas.errors import SupernasError
from supernas.search.base import Constraint, Strategy, register_strategy
from supernas.space import Arch, SearchSpace
from supernas.space.core import format_size


@register_strategy("exhaustive")
class Exhaustive(Strategy):
    """Every arch satisfying the constraint, in `space.enumerate()` order (or a seeded shuffle).

    Why: on small spaces (NB201's 15,625 cells) with a cheap objective it gives the true
    optimum; `shuffle=True` makes a budget-limited run an unbiased sample without repeats.
    Refuses spaces above `limit` (default `SearchSpace.max_enumerate`) when built. Values are
    ignored, so it takes several objectives too.
    """

    multi_objective = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        shuffle: bool = False,
        limit: int | None = None,
    ) -> None:
        super().__init__(space, seed, constraint)
        self.shuffle = bool(shuffle)
        self.limit = limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise SupernasError(f"exhaustive: limit must be an integer or None, got {limit!r}")
        cap = space.max_enumerate if limit is None else limit
        if space.size > cap:
            raise SupernasError(
                f"exhaustive search refuses space {space.name!r}: it has {format_size(space.size)} "
                f"archs, "
                f"above the limit {cap:,}; use 'evolution' or 'random' instead"
            )

    def _init_state(self) -> None:
        self._pos = 0
        self._order = self.rng.permutation(self.space.size) if self.shuffle else None
        self._radices = [len(c.options) for c in self.space.choices]

    def _unrank(self, i: int) -> Arch:
        """The i-th arch of `space.enumerate()` (mixed radix, last choice fastest)."""
        digits = []
        for n in reversed(self._radices):
            i, r = divmod(i, n)
            digits.append(r)
        return self.space.decode(digits[::-1])

    def _ask(self) -> Arch | None:
        while self._pos < self.space.size:
            i = self._pos if self._order is None else int(self._order[self._pos])
            self._pos += 1
            arch = self._unrank(i)
            if self._feasible(arch):
                return arch
        return None

    def _get_state(self) -> dict[str, Any]:
        return {"pos": self._pos}  # the shuffled order is rebuilt from the seed

    def _set_state(self, state: dict[str, Any]) -> None:
        self._pos = int(state["pos"])
