"""Local search: first-improvement hill climbing with random restarts."""

from __future__ import annotations

from typing import Any

from supernas.search.base import (
    Constraint,
    Strategy,
    float_from_json,
    float_to_json,
    register_strategy,
)
from supernas.space import Arch, SearchSpace


@register_strategy("local_search")
class LocalSearch(Strategy):
    """Walk to the first better one-choice neighbor; restart at random from a local optimum.

    Small and strong where the objective is nearly additive over choices (White et al. 2020,
    "Local search is state of the art for NAS benchmarks"). Neighbors are tried in a seeded
    random order; archs already told are looked up, not asked again.
    """

    def __init__(
        self, space: SearchSpace, seed: int = 0, constraint: Constraint | None = None
    ) -> None:
        super().__init__(space, seed, constraint)

    def _init_state(self) -> None:
        self._current: tuple[Arch, float] | None = None
        self._queue: list[Arch] = []  # untried neighbors of the current arch, popped from the end
        self._known: dict[Arch, float] = {}

    def _ask(self) -> Arch | None:
        if len(self._known) >= self.space.size:
            return None  # every arch has been evaluated
        arch = None
        for _ in range(self.max_tries):
            if self._current is None or not self._queue:
                self._current = None  # start, or a local optimum: restart at random
                arch = self._sample()
            else:
                arch = self._queue.pop()
            if arch not in self._known:
                return arch
            self._consider(arch, self._known[arch])
        # nearly everything is known: restart exactly on a small space, else allow a repeat
        if self.space.size <= self.space.max_enumerate:
            self._current = None
            return self._pick_unseen(self._known)
        return arch

    def _tell(self, arch: Arch, value: float) -> None:
        self._known[arch] = value
        self._consider(arch, value)

    def _consider(self, arch: Arch, value: float) -> None:
        """Move to `arch` if it starts the walk or beats the current arch."""
        if self._current is not None and value <= self._current[1]:
            return
        self._current = (arch, value)
        nbrs = [a for a in self.space.neighbors(arch) if self._feasible(a)]
        self._queue = [nbrs[int(i)] for i in self.rng.permutation(len(nbrs))]

    def _get_state(self) -> dict[str, Any]:
        cur = self._current
        return {
            "current": None if cur is None else [self._arch_to_json(cur[0]), float_to_json(cur[1])],
            "queue": [self._arch_to_json(a) for a in self._queue],
            "known": [[self._arch_to_json(a), float_to_json(v)] for a, v in self._known.items()],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        cur = state["current"]
        self._current = (
            None if cur is None else (self._arch_from_json(cur[0]), float_from_json(cur[1]))
        )
        self._queue = [self._arch_from_json(a) for a in state["queue"]]
        self._known = {self._arch_from_json(a): float_from_json(v) for a, v in state["known"]}
