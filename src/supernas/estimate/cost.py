"""Params and FLOPs as estimators: free baselines that a learned estimator must beat."""

from __future__ import annotations

from collections.abc import Sequence

from supernas.hardware import ArchCost
from supernas.space import Arch, SearchSpace


class ParamsEstimator:
    """Score = parameter count (bigger networks tend to be more accurate)."""

    name = "params"

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...]) -> None:
        self.space = space
        self.input_shape = input_shape
        self._cost = ArchCost(space, input_shape)

    def score(self, archs: Sequence[Arch]) -> list[float]:
        return [float(self._cost.params(a)) for a in archs]


class FlopsEstimator(ParamsEstimator):
    """Score = FLOPs of one forward pass at batch size 1 (torch.utils.flop_counter)."""

    name = "flops"

    def score(self, archs: Sequence[Arch]) -> list[float]:
        return [float(self._cost.flops(a)) for a in archs]
