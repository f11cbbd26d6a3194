"""Set-level scores: Abdelfattah et al.'s `vote` and a rank average over any proxies.

Both compare networks with each other, so they are only defined over a set: the
`ProxyEstimator` gives them the set being scored (a CSV of archs) or, inside a search, a
fixed seeded reference sample so that an arch's score does not depend on when it is asked.
Spelling: `vote` (synflow, jacov, snip as in the paper), `vote:a+b+c`, `rankavg:a+b+...`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from supernas.errors import SupernasError
from supernas.proxies.base import PROXIES, Ensemble, register_ensemble

VOTE_MEMBERS = ("synflow", "jacov", "snip")


def _worst_for_nan(scores: np.ndarray) -> np.ndarray:
    """An undefined score ranks below every defined one (it tells us nothing good)."""
    return np.where(np.isfinite(scores), scores, -np.inf)


def ranks(scores: np.ndarray) -> np.ndarray:
    """Per column, average ranks from 1 (worst) to n (best); NaN counts as the worst."""
    s = _worst_for_nan(np.asarray(scores, dtype=np.float64))
    return np.column_stack([stats.rankdata(col) for col in s.T]) if s.size else s


def rank_average(scores: np.ndarray) -> np.ndarray:
    """Mean over members of each arch's rank, scaled to (0, 1]: 1 = best under every member."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) == 0:
        return np.zeros(0)
    return ranks(s).mean(axis=1) / len(s)


def majority_vote(scores: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Copeland score of the pairwise majority vote, as a fraction of the other archs.

    Abdelfattah et al. (ICLR 2021) compare two networks by the majority of the member
    proxies; an arch's score is the share of the others it beats that way (ties: half).
    """
    s = ranks(np.asarray(scores, dtype=np.float64))  # ranks: NaN worst, ties equal
    n = len(s)
    if n < 2:
        return np.full(n, 0.5)
    wins = np.zeros(n)
    for lo in range(0, n, chunk):
        a = s[lo : lo + chunk, None, :]  # (c, 1, m)
        margin = np.sign(a - s[None, :, :]).sum(axis=2)  # (c, n): members for minus against
        wins[lo : lo + chunk] = (margin > 0).sum(axis=1) + 0.5 * (margin == 0).sum(axis=1)
    wins -= 0.5  # each arch ties with itself
    return wins / (n - 1)


def _members(spec: str, name: str) -> tuple[str, ...]:
    members = tuple(m.strip() for m in spec.split("+") if m.strip())
    if len(members) < 2:
        raise SupernasError(f"{name}: give at least two proxies joined by '+', e.g. {name}:a+b")
    for m in members:
        if isinstance(PROXIES.get(m), Ensemble):
            raise SupernasError(f"{name}: member {m!r} is itself an ensemble; list its proxies")
    return members


def parse_ensemble(name: str) -> Ensemble:
    """`vote:a+b+c` or `rankavg:a+b`: an ensemble of registered per-network proxies."""
    kind, _, spec = name.partition(":")
    if kind == "vote":
        return Ensemble(_members(spec, kind), majority_vote, doc="majority vote")
    if kind == "rankavg":
        return Ensemble(_members(spec, kind), rank_average, doc="rank average")
    raise SupernasError(f"unknown ensemble {kind!r} in {name!r}; valid: vote:a+b+c, rankavg:a+b")


register_ensemble(
    "vote",
    Ensemble(VOTE_MEMBERS, majority_vote, doc="majority vote of synflow, jacov, snip"),
)
