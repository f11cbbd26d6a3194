"""Temporary stand-in for supernas.search.pareto (all objectives maximised)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def non_dominated(points: Sequence[Sequence[float]]) -> list[int]:
    p = np.asarray(points, dtype=np.float64)
    keep = []
    for i in range(len(p)):
        dom = np.all(p >= p[i], axis=1) & np.any(p > p[i], axis=1)
        if not dom.any():
            keep.append(i)
    return keep


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    ref = np.asarray(reference, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64).reshape(-1, len(ref))
    p = p[np.all(p > ref, axis=1)]
    if len(p) == 0:
        return 0.0
    if len(ref) == 1:
        return float(p[:, 0].max() - ref[0])
    p = p[np.argsort(-p[:, -1])]
    vol = 0.0
    for i in range(len(p)):
        nxt = p[i + 1, -1] if i + 1 < len(p) else ref[-1]
        h = p[i, -1] - nxt
        if h > 0:
            vol += h * hypervolume(p[: i + 1, :-1], ref[:-1])
    return float(vol)
