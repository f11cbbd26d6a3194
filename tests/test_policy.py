"""Policy-gradient strategies (reinforce, ppo): oracles on an additive objective over NB201.

The conformance suite in test_search.py covers their ask/tell contract and exact resume.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from supernas.errors import SupernasError
from supernas.search import PPO, Reinforce, get_strategy, run_search
from supernas.space import Arch, get_space

NB201 = get_space("nb201")
SEEDS = range(8)
BUDGET = 150


class Additive:
    """Sum of per-edge op scores; each edge's best op leads the rest by at least 0.5."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        n, k = len(NB201.choices), len(NB201.choices[0].options)
        self.w = rng.uniform(0.0, 1.0, size=(n, k))
        self.best = rng.integers(k, size=n)
        self.w[np.arange(n), self.best] = 1.5

    def __call__(self, archs: list[Arch]) -> list[float]:
        return [float(self.w[np.arange(len(self.w)), NB201.encode(a)].sum()) for a in archs]

    @property
    def optimum(self) -> float:
        return float(self.w.max(axis=1).sum())


F = Additive()


def search(name: str, seed: int) -> tuple[float, np.ndarray]:
    """Best value found in BUDGET evaluations, and the policy's probability of each best op."""
    s = get_strategy(name, NB201, seed=seed)
    best = run_search(s, F, BUDGET).best.value
    if name == "random":
        return best, np.zeros(len(F.best))
    probs = np.array(s.probabilities())  # type: ignore[attr-defined]
    return best, probs[np.arange(len(F.best)), F.best]


@pytest.fixture(scope="module")
def runs() -> dict[str, list[tuple[float, np.ndarray]]]:
    return {n: [search(n, s) for s in SEEDS] for n in ("random", "reinforce", "ppo")}


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_policy_concentrates_on_the_best_ops(runs: dict, name: str) -> None:
    p_best = np.array([p for _, p in runs[name]])  # seeds x edges; uniform would be 0.2
    assert (p_best.mean(axis=0) > 0.5).all()
    assert p_best.mean() > 0.7
    assert (np.median(p_best, axis=1) > 0.5).all()  # in every seed, most edges learnt


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_policy_beats_random_search(runs: dict, name: str) -> None:
    mine = np.array([v for v, _ in runs[name]])
    rnd = np.array([v for v, _ in runs["random"]])
    assert (mine <= F.optimum + 1e-9).all()
    assert mine.mean() > rnd.mean()
    assert (F.optimum - mine).mean() < 0.5 * (F.optimum - rnd).mean()


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_policy_is_a_distribution_and_survives_failures(name: str) -> None:
    s = get_strategy(name, NB201, seed=0, batch_size=4) if name == "ppo" else None
    s = s or get_strategy(name, NB201, seed=0)
    assert np.allclose(np.array(s.probabilities()), 0.2)  # type: ignore[attr-defined]
    for i in range(40):
        arch = s.ask()
        s.tell(arch, math.nan if i % 3 == 0 else F([arch])[0])
    probs = np.array(s.probabilities())  # type: ignore[attr-defined]
    assert np.isfinite(probs).all() and np.allclose(probs.sum(axis=1), 1.0)
    assert s.mode() in NB201  # type: ignore[attr-defined]
    json.dumps(s.state_dict(), allow_nan=False)


def test_reinforce_baseline_is_a_moving_average() -> None:
    s = Reinforce(NB201, momentum=0.5)
    a = NB201.decode([0] * 6)
    s.tell(a, 2.0)  # the first value only sets the baseline
    assert s._baseline == 2.0 and np.allclose(s.probabilities(), 0.2)
    s.tell(a, 4.0)  # advantage +2 on op 0 everywhere: op 0 becomes likelier
    assert s._baseline == 3.0
    assert all(row[0] > 0.2 for row in s.probabilities())


def ppo_after_one_batch(**opts: object) -> np.ndarray:
    """Probabilities after one batch: a = op 0 everywhere (value 1), b = op 1 (value 0)."""
    s = PPO(NB201, batch_size=4, lr=0.05, **opts)  # type: ignore[arg-type]
    a, b = NB201.decode([0] * 6), NB201.decode([1] * 6)
    for arch, v in [(a, 1.0), (b, 0.0), (a, 1.0)]:
        s.tell(arch, v)
    assert np.allclose(s.probabilities(), 0.2) and len(s._buffer) == 3  # no update yet
    s.tell(b, 0.0)
    assert s._buffer == []
    return np.array(s.probabilities())


def test_ppo_updates_once_per_batch_and_clips() -> None:
    p = ppo_after_one_batch(epochs=50, clip=0.2)
    assert (p[:, 0] > 0.2).all() and (p[:, 1] < 0.2).all()

    def ratio_a(**opts: object) -> float:  # p_new(a) / p_old(a)
        return float(np.prod(ppo_after_one_batch(**opts)[:, 0]) / 0.2**6)

    # once every ratio is outside the clip range its gradient is zero: more epochs of the
    # same batch stop moving the policy (only Adam's decaying momentum carries on) ...
    assert ratio_a(epochs=200, clip=0.2) == pytest.approx(ratio_a(epochs=50, clip=0.2), rel=0.01)
    # ... and a wider clip range lets it move further
    assert ratio_a(epochs=50, clip=0.8) > 1.5 * ratio_a(epochs=50, clip=0.2) > 1.5


@pytest.mark.parametrize(
    ("name", "opts", "match"),
    [
        ("reinforce", {"lr": 0}, "lr"),
        ("reinforce", {"momentum": 1.0}, "momentum"),
        ("reinforce", {"entropy": -1}, "entropy"),
        ("ppo", {"batch_size": 0}, "batch_size"),
        ("ppo", {"epochs": 1.5}, "epochs"),
        ("ppo", {"clip": 0}, "clip"),
        ("ppo", {"normalize": "yes"}, "normalize"),
    ],
)
def test_bad_options(name: str, opts: dict, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        get_strategy(name, NB201, **opts)


@pytest.mark.parametrize("name", ["reinforce", "ppo"])
def test_entropy_bonus_keeps_the_policy_broader(name: str) -> None:
    def peak(entropy: float) -> float:
        s = get_strategy(name, NB201, seed=1, entropy=entropy)
        run_search(s, F, 100)
        return float(np.array(s.probabilities()).max(axis=1).mean())  # type: ignore[attr-defined]

    assert peak(1.0) < peak(0.0) - 0.1
