"""Anytime evaluation of one-shot NAS, in the style of NAS-Bench-1Shot1.

Zela, Siems, Hutter, *NAS-Bench-1Shot1: Benchmarking and Dissecting One-shot Neural
Architecture Search*, ICLR 2020, judge a one-shot method not by the one arch it returns at
the end but by the true accuracy of the arch it would return after every epoch: a method
whose arch gets worse as the supernet trains (DARTS drifting to skip connections) shows up
as a falling curve, which a single final number hides. They also report how well the
supernet ranks a fixed sample of archs against the truth.

Here the truth is any Estimator: a `TableEstimator` on NAS-Bench-201's accuracy table, or
`CachedTrainFromScratch` on our own data (each arch trained once, ever). Both functions
only need the truth's `score`, so neither knows which is behind it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from supernas.bench.correlate import correlation
from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.estimate import Estimator, SupernetEstimator
from supernas.space import Arch, SearchSpace
from supernas.supernet import Supernet


def anytime_trajectory(
    history: Sequence[Mapping[str, Any]], truth: Estimator, space: SearchSpace
) -> list[dict[str, Any]]:
    """Per epoch: the arch the method returned then, its true score and the best so far.

    Each distinct arch is scored once, in order of first appearance (one `truth.score`
    call), because with a scratch truth a query is a training run and a converged method
    returns the same arch for many epochs. `best_so_far` is the oracle view (the best true
    score among archs returned up to that epoch): the method itself cannot know it, but the
    gap between it and `score` shows how much a late epoch lost.
    """
    if not history:
        raise SupernasError("the training history is empty: nothing to evaluate")
    archs: list[Arch] = []
    for i, rec in enumerate(history):
        text = rec.get("arch")
        if not isinstance(text, str):
            raise SupernasError(
                f"epoch record {i + 1} has no 'arch': only trainers that derive an arch every "
                "epoch (darts, gdas, pcdarts, proxyless, fbnet, enas) have an anytime trajectory"
            )
        archs.append(space.parse(text))
    unique = list(dict.fromkeys(archs))
    scores = dict(zip(unique, truth.score(unique), strict=True))
    out: list[dict[str, Any]] = []
    best = -math.inf
    for i, (rec, arch) in enumerate(zip(history, archs, strict=True)):
        s = float(scores[arch])
        best = max(best, s)
        out.append(
            {
                "epoch": int(rec.get("epoch", i + 1)),
                "arch": str(arch),
                "score": s,
                "best_so_far": best,
            }
        )
    return out


def sample_archs(
    space: SearchSpace, n: int, seed: int = 0, pool: Sequence[Arch] | None = None
) -> list[Arch]:
    """`n` distinct archs, seeded: from `pool` (e.g. a table's archs) or uniform from `space`.

    Why a pool: a table truth can only score archs it holds, so the sample must be drawn
    from them; its order is the table's, so the same seed gives the same sample.
    """
    if n < 1:
        raise SupernasError(f"need a positive number of archs, got {n}")
    rng = np.random.default_rng(seed)
    if pool is not None:
        pool = list(dict.fromkeys(pool))
        if len(pool) < n:
            raise SupernasError(f"asked for {n} archs but only {len(pool)} are available")
        return [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
    if space.size < n:
        raise SupernasError(f"asked for {n} archs but the space has only {space.size}")
    seen: dict[Arch, None] = {}
    for _ in range(100 * n):
        seen.setdefault(space.sample(rng), None)
        if len(seen) == n:
            return list(seen)
    raise SupernasError(f"could not draw {n} distinct archs from {space.name}")


def oneshot_ranking(
    supernet: Supernet,
    data: Dataset,
    truth: Estimator,
    archs: Sequence[Arch],
    *,
    recal_batches: int = 10,
    seed: int = 0,
    top: float = 0.1,
    on_arch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """How well the supernet's val accuracy (BN recalibrated per arch) ranks `archs`.

    Returns both score lists and the rank metrics of `bench.correlate.correlation`
    (Kendall tau-b, Spearman rho, precision of the top `top` fraction). A supernet whose
    ranking is poor makes every arch it returns a guess, whatever the trajectory shows.
    """
    est = SupernetEstimator(supernet, data, recal_batches=recal_batches, seed=seed, on_arch=on_arch)
    archs = list(archs)
    estimate = est.score(archs)
    true = truth.score(archs)
    metrics = correlation(estimate, true, top=top)
    return {
        "archs": [str(a) for a in archs],
        "supernet": [float(v) for v in estimate],
        "truth": [float(v) for v in true],
        "top": top,
        **metrics,
    }
