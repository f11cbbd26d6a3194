"""How well do scores rank archs? Spearman, Kendall and top-k% precision per score column.

An arch a proxy could not score (NaN) is ranked below every scored one by default
(`nan="worst"`: an undefined proxy says nothing good about the arch), or left out
(`nan="drop"`). Either way the count is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from supernas.errors import SupernasError

NAN_POLICIES = ("worst", "drop")


def top_precision(estimate: np.ndarray, truth: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the estimator's top `fraction` that is in the true top `fraction`."""
    k = max(1, round(fraction * len(truth)))
    if len(truth) < 2:
        return math.nan
    order_e = np.argsort(-estimate, kind="stable")[:k]
    order_t = np.argsort(-truth, kind="stable")[:k]
    return len(set(order_e.tolist()) & set(order_t.tolist())) / k


def correlation(
    estimate: Sequence[float], truth: Sequence[float], *, nan: str = "worst", top: float = 0.1
) -> dict[str, Any]:
    """Spearman rho, Kendall tau-b and top-`top` precision of one score column."""
    if nan not in NAN_POLICIES:
        raise SupernasError(f"unknown NaN policy {nan!r}; valid: {', '.join(NAN_POLICIES)}")
    e = np.asarray(estimate, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if e.shape != t.shape:
        raise SupernasError(f"{len(e)} scores but {len(t)} true values")
    bad = ~np.isfinite(e)
    if nan == "drop":
        e, t = e[~bad], t[~bad]
    elif bad.any():
        floor = np.nanmin(np.where(bad, np.nan, e)) if (~bad).any() else 0.0
        e = np.where(bad, floor - 1.0, e)
    out: dict[str, Any] = {"n": len(e), "n_nan": int(bad.sum())}
    if len(e) < 2 or np.ptp(e) == 0 or np.ptp(t) == 0:
        return {**out, "spearman": math.nan, "kendall": math.nan, "top_precision": math.nan}
    return {
        **out,
        "spearman": float(stats.spearmanr(e, t).statistic),
        "kendall": float(stats.kendalltau(e, t).statistic),
        "top_precision": top_precision(e, t, top),
    }


def correlate(
    scores: Mapping[str, Sequence[float]],
    truth: Sequence[float],
    *,
    nan: str = "worst",
    top: float = 0.1,
) -> dict[str, dict[str, Any]]:
    """`correlation` for every column of `scores` against the same truth."""
    return {name: correlation(col, truth, nan=nan, top=top) for name, col in scores.items()}
