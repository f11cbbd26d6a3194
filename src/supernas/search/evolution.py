"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image Classifier
Architecture Search"."""

from __future__ import annotations

from collections import deque
from typing import Any

from supernas.errors import SupernasError
from supernas.search.base import (
    Constraint,
    Strategy,
    float_from_json,
    float_to_json,
    register_strategy,
)
from supernas.space import Arch, SearchSpace


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SupernasError(f"evolution: {name} must be a positive integer, got {value!r}")
    return value


@register_strategy("evolution")
class RegularizedEvolution(Strategy):
    """Tournament selection plus one-choice mutation, where the oldest member dies.

    The first `population` asks are random samples. Afterwards each ask draws `sample_size`
    members of the population without replacement and returns a mutation of the best one.
    Every told arch joins the population and the oldest leaves, so a lucky (noisy) estimate
    cannot stay a parent forever: why aging beats keeping the best under one-shot noise.
    Asks still pending (not told) are fine: selection uses whoever has been told so far.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        population: int = 50,
        sample_size: int = 10,
    ) -> None:
        super().__init__(space, seed, constraint)
        self.population = _positive_int("population", population)
        self.sample_size = _positive_int("sample_size", sample_size)
        if sample_size > population:
            raise SupernasError(
                f"evolution: sample_size ({sample_size}) cannot exceed population ({population})"
            )

    def _init_state(self) -> None:
        self._members: deque[tuple[Arch, float]] = deque()

    def _ask(self) -> Arch | None:
        if self._asks < self.population or not self._members:
            return self._sample()
        k = min(self.sample_size, len(self._members))
        picks = self.rng.choice(len(self._members), size=k, replace=False)
        parent = max((self._members[int(i)] for i in picks), key=lambda m: m[1])
        return self._mutate(parent[0])

    def _tell(self, arch: Arch, value: float) -> None:
        self._members.append((arch, value))
        if len(self._members) > self.population:
            self._members.popleft()  # the oldest dies, not the worst

    def _get_state(self) -> dict[str, Any]:
        return {"members": [[self._arch_to_json(a), float_to_json(v)] for a, v in self._members]}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._members = deque(
            (self._arch_from_json(a), float_from_json(v)) for a, v in state["members"]
        )
