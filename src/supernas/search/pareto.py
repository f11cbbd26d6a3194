"""Pareto dominance and exact hypervolume, every objective MAXIMISED.

Pure numpy (no Optuna: its hypervolume lives in a private module that may change). Sizes in
NAS are small (a front of tens of archs, 2-4 objectives), so exact algorithms are cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernas.errors import SupernasError


def _as_points(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """An (n, d) float array; NaN (a failed evaluation) becomes -inf, the worst value."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, arr.shape[-1] if arr.ndim == 2 else 0)
    if arr.ndim != 2:
        raise SupernasError(f"points must be a list of equal-length vectors, got shape {arr.shape}")
    return np.where(np.isnan(arr), -np.inf, arr)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when `a` is at least as good as `b` in every objective and better in one."""
    pa, pb = _as_points([a, b])
    return bool(np.all(pa >= pb) and np.any(pa > pb))


def non_dominated(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """Indices of the points no other point dominates, in input order (equal points all stay)."""
    arr = _as_points(points)
    if len(arr) == 0:
        return []
    # A dominator is lexicographically larger, so in descending lexicographic order it comes
    # first; and a point dominated by anyone is dominated by a front point (transitivity).
    # So each point is checked against the front found so far only: O(n * front size).
    order = np.lexsort(arr.T[::-1])[::-1]
    front: list[int] = []
    for i in order:
        f = arr[front]
        if not np.any(np.all(f >= arr[i], axis=1) & np.any(f > arr[i], axis=1)):
            front.append(int(i))
    return sorted(front)


def non_dominated_ranks(points: Sequence[Sequence[float]] | np.ndarray) -> list[int]:
    """Non-dominated sorting (NSGA-II's fronts): 0 for the Pareto front, 1 for the next, ..."""
    arr = _as_points(points)
    ranks = [-1] * len(arr)
    left = list(range(len(arr)))
    rank = 0
    while left:
        for j in non_dominated(arr[left]):
            ranks[left[j]] = rank
        left = [i for i in left if ranks[i] < 0]
        rank += 1
    return ranks


def hypervolume(
    points: Sequence[Sequence[float]] | np.ndarray, reference: Sequence[float]
) -> float:
    """Exact volume of the region dominated by `points` and dominating `reference`.

    Maximisation: the union over points p of the boxes [reference, p]. A point not better
    than the reference in every objective adds nothing. Two objectives by a sweep
    (O(n log n)); more by slicing along the last objective (exact, O(n^(d-1) log n)), ample
    for fronts of tens of points.
    """
    ref = np.asarray(reference, dtype=np.float64)
    arr = _as_points(points)
    if ref.ndim != 1 or not np.all(np.isfinite(ref)):
        raise SupernasError(f"the reference must be a vector of finite numbers: {reference!r}")
    if len(arr) == 0:
        return 0.0
    if arr.shape[1] != len(ref):
        raise SupernasError(
            f"points have {arr.shape[1]} objectives but the reference has {len(ref)}"
        )
    arr = arr[np.all(arr > ref, axis=1)] - ref  # shift: the reference becomes the origin
    if np.isinf(arr).any():
        raise SupernasError("hypervolume is infinite: a point has an objective at +inf")
    return _hv(arr[non_dominated(arr)]) if len(arr) else 0.0


def _hv(arr: np.ndarray) -> float:
    """Hypervolume of positive points against the origin."""
    n, d = arr.shape
    if n == 0:
        return 0.0
    if d == 1:
        return float(arr[:, 0].max())
    if d == 2:
        order = np.argsort(-arr[:, 0], kind="stable")  # x descending: y must rise to count
        total, y_done = 0.0, 0.0
        for x, y in arr[order]:
            if y > y_done:
                total += x * (y - y_done)
                y_done = y
        return total
    # Slice along the last objective: between consecutive levels, the cross-section is the
    # (d-1)-dimensional hypervolume of the points at or above that level.
    order = np.argsort(-arr[:, -1], kind="stable")
    arr = arr[order]
    total = 0.0
    for k in range(n):
        top = arr[k, -1]
        below = arr[k + 1, -1] if k + 1 < n else 0.0
        if top > below:
            section = arr[: k + 1, :-1]
            total += (top - below) * _hv(section[non_dominated(section)])
    return total
