"""Rank agreement between an estimator and the ground truth (SciPy does the statistics)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from supernas.errors import SupernasError


def _clean(estimate: Sequence[float], truth: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(estimate, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if e.shape != t.shape or e.ndim != 1:
        raise SupernasError(f"need two equal-length lists, got {e.shape} and {t.shape}")
    ok = np.isfinite(e) & np.isfinite(t)
    return e[ok], t[ok]


def kendall_tau(estimate: Sequence[float], truth: Sequence[float]) -> float:
    """Kendall tau-b (ties handled); NaN when fewer than 2 finite pairs or a constant list."""
    e, t = _clean(estimate, truth)
    if len(e) < 2 or np.ptp(e) == 0 or np.ptp(t) == 0:
        return math.nan
    return float(stats.kendalltau(e, t).statistic)


def spearman_rho(estimate: Sequence[float], truth: Sequence[float]) -> float:
    e, t = _clean(estimate, truth)
    if len(e) < 2 or np.ptp(e) == 0 or np.ptp(t) == 0:
        return math.nan
    return float(stats.spearmanr(e, t).statistic)


def top_k_overlap(estimate: Sequence[float], truth: Sequence[float], k: int) -> float:
    """Fraction of the true top-k that the estimator also puts in its top-k."""
    e, t = _clean(estimate, truth)
    k = min(k, len(e))
    if k < 1:
        return math.nan
    return len(set(np.argsort(-e)[:k]) & set(np.argsort(-t)[:k])) / k


def rank_report(estimate: Sequence[float], truth: Sequence[float]) -> dict[str, Any]:
    e, _ = _clean(estimate, truth)
    return {
        "kendall_tau": kendall_tau(estimate, truth),
        "spearman_rho": spearman_rho(estimate, truth),
        "n": len(e),
    }
