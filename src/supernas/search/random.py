"""Random search: the baseline every other strategy has to beat."""

from __future__ import annotations

from typing import Any

from supernas.search.base import Constraint, Strategy, register_strategy
from supernas.space import Arch, SearchSpace


@register_strategy("random")
class RandomSearch(Strategy):
    """Uniform samples under the constraint, never repeating an arch while it can avoid it.

    Random search is a strong baseline for weight-sharing NAS (Li & Talwalkar, 2019); avoiding
    repeats matters on small spaces, where a plain sampler wastes many asks on duplicates.
    Archs it is told about (e.g. replayed trials) count as seen too. When `max_tries` samples
    in a row were all seen, a space up to `max_enumerate` is enumerated: the ask is then a
    uniform choice among the unseen feasible archs, or None when none is left; a larger
    space allows a repeat. Values are ignored, so it takes several objectives too.
    """

    multi_objective = True

    def __init__(
        self, space: SearchSpace, seed: int = 0, constraint: Constraint | None = None
    ) -> None:
        super().__init__(space, seed, constraint)

    def _init_state(self) -> None:
        self._seen: dict[Arch, None] = {}  # a dict keeps insertion order: stable state dicts

    def _ask(self) -> Arch | None:
        if self.constraint is None and len(self._seen) >= self.space.size:
            return None  # every arch has been proposed
        for _ in range(self.max_tries):
            arch = self._sample()
            if arch not in self._seen:
                break
        else:  # nearly exhausted: small spaces are searched exactly, large ones may repeat
            if self.space.size <= self.space.max_enumerate:
                arch = self._pick_unseen(self._seen)
                if arch is None:
                    return None
        self._seen[arch] = None
        return arch

    def _tell(self, arch: Arch, value: float) -> None:
        self._seen[arch] = None

    def _get_state(self) -> dict[str, Any]:
        return {"seen": [self._arch_to_json(a) for a in self._seen]}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._seen = {self._arch_from_json(a): None for a in state["seen"]}
