"""Pareto dominance, exact hypervolume, and multi-objective search (every objective maximised)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from supernas.errors import SupernasError
from supernas.search import (
    SearchResult,
    Trial,
    get_strategy,
    run_search,
)
from supernas.search.pareto import dominates, hypervolume, non_dominated, non_dominated_ranks
from supernas.space import Arch, get_space

NB201 = get_space("nb201")


# -- dominance and hypervolume against hand-computed values --------------------------------
def test_non_dominated_and_ranks() -> None:
    pts = [(1, 3), (2, 2), (3, 1), (1, 1), (2, 2), (0, 0)]
    assert non_dominated(pts) == [0, 1, 2, 4]  # equal points both stay
    assert non_dominated_ranks(pts) == [0, 0, 0, 1, 0, 2]
    assert dominates((2, 2), (1, 2)) and not dominates((2, 2), (2, 2))
    assert not dominates((3, 0), (0, 3))
    assert non_dominated([(math.nan, 5), (1, 1), (math.nan, math.nan)]) == [0, 1]  # NaN = -inf
    assert non_dominated([]) == []


@pytest.mark.parametrize(
    ("points", "reference", "expected"),
    [
        ([(1, 3), (2, 2), (3, 1)], (0, 0), 3 + 2 + 1),  # staircase
        ([(1, 3), (2, 2), (3, 1), (1, 1), (2, 2)], (0, 0), 6),  # dominated/equal add nothing
        ([(1, 3), (3, 1)], (1, 0), 2 * 1),  # (1, 3) is not beyond the reference
        ([(-1, -1)], (-3, -2), 2 * 1),  # negative values (negated costs)
        ([(5,)], (1,), 4),
        ([(1, 2, 3)], (0, 0, 0), 6),
        ([(2, 1, 1), (1, 2, 1)], (0, 0, 0), 2 + 2 - 1),
        ([(1, 1, 2), (1, 2, 1), (2, 1, 1)], (0, 0, 0), 3 * 2 - 3 * 1 + 1),  # inclusion-exclusion
        ([(2, 1, 1, 1), (1, 2, 1, 1)], (0, 0, 0, 0), 3),
        ([], (0, 0), 0),
        ([(math.nan, 4)], (0, 0), 0),
    ],
)
def test_hypervolume_by_hand(points: list, reference: tuple, expected: float) -> None:
    assert hypervolume(points, reference) == pytest.approx(expected)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypervolume_counts_unit_cells(d: int) -> None:
    """Integer points: the volume is the number of unit cells some point covers."""
    rng = np.random.default_rng(d)
    for _ in range(5):
        pts = rng.integers(1, 6, size=(7, d))
        cells = np.array(list(itertools.product(range(5), repeat=d)))
        covered = (pts[None, :, :] >= cells[:, None, :] + 1).all(-1).any(-1)
        assert hypervolume(pts, [0] * d) == pytest.approx(covered.sum())


def test_hypervolume_errors() -> None:
    with pytest.raises(SupernasError, match="objectives"):
        hypervolume([(1, 2, 3)], (0, 0))
    with pytest.raises(SupernasError, match="finite"):
        hypervolume([(1, 2)], (0, math.inf))
    with pytest.raises(SupernasError, match="equal-length"):
        hypervolume([[[1.0]]], (0,))


# -- multi-objective results ----------------------------------------------------------------
def archs(n: int) -> list[Arch]:
    return [NB201.decode([i % 5, i // 5, 0, 0, 0, 0]) for i in range(n)]


def test_result_with_vector_values() -> None:
    a = archs(5)
    res = SearchResult(
        [
            Trial(a[0], (1.0, 3.0), 0),
            Trial(a[1], (2.0, 2.0), 1),
            Trial(a[2], (1.0, 1.0), 2),
            Trial(a[3], (math.nan, 9.0), 3),
            Trial(a[1], (2.0, 2.0), 4),  # the same arch again: once in the front
            Trial(a[4], (3.0, -math.inf), 5),
        ]
    )
    assert res.n_objectives == 2
    assert [t.step for t in res.pareto_front()] == [0, 1, 3, 5]
    for get in (lambda: res.best, lambda: res.top_k(2), res.trajectory):
        with pytest.raises(SupernasError, match="pareto_front"):
            get()
    back = SearchResult.from_json(json.loads(json.dumps(res.to_json(), allow_nan=False)))
    assert back.trials[0].value == (1.0, 3.0) and back.trials[5].value == (3.0, -math.inf)
    assert math.isnan(back.trials[3].value[0])
    single = SearchResult([Trial(a[0], 1.0, 0), Trial(a[1], 2.0, 1), Trial(a[2], 2.0, 2)])
    assert single.n_objectives == 1 and [t.step for t in single.pareto_front()] == [1, 2]


def two_objectives(space=NB201):
    """(a random additive score, minus a cost: 3 per 3x3 conv, 1 per 1x1 conv): they conflict."""
    rng = np.random.default_rng(7)
    score = rng.normal(size=(len(space.choices), 5))
    cost = {"nor_conv_3x3": 3.0, "nor_conv_1x1": 1.0, "avg_pool_3x3": 0.2}

    def values(arch: Arch) -> tuple[float, float]:
        idx = space.encode(arch)
        s = float(sum(score[e, i] for e, i in enumerate(idx)))
        return s + 0.5 * sum(v == "nor_conv_3x3" for v in arch.values), -sum(
            cost.get(v, 0.0) for v in arch.values
        )

    return values


def test_run_search_with_vectors_and_errors() -> None:
    f = two_objectives()
    res = run_search(get_strategy("nsga2", NB201, seed=0), lambda xs: [f(x) for x in xs], 30)
    assert len(res) == 30 and all(len(t.value) == 2 for t in res.trials)
    front = res.pareto_front()
    assert front and all(
        not dominates(t.value, u.value) for t in res.trials for u in front if t.arch != u.arch
    )
    with pytest.raises(SupernasError, match=r"single-objective.*nsga2"):
        run_search(get_strategy("evolution", NB201), lambda xs: [f(x) for x in xs], 3)
    with pytest.raises(SupernasError, match="objective"):
        calls = iter(range(100))
        run_search(get_strategy("nsga2", NB201), lambda xs: [(1.0,) * (2 + next(calls) % 2)], 5)
    with pytest.raises(SupernasError, match="sequence of numbers"):
        run_search(get_strategy("nsga2", NB201), lambda xs: [("a", 1.0)], 3)


@pytest.mark.parametrize("name", ["tpe", "nsga2", "nsga3", "greedy_pool"])
def test_multi_objective_resume_is_exact(name: str) -> None:
    f = two_objectives()

    def drive(s, n):
        out = []
        for _ in range(n):
            a = s.ask()
            out.append(a)
            s.tell(a, f(a))
        return out

    full = get_strategy(name, NB201, seed=1)
    drive(full, 45)
    restored = get_strategy(name, NB201, seed=1)
    restored.load_state_dict(json.loads(json.dumps(full.state_dict(), allow_nan=False)))
    assert drive(restored, 30) == drive(full, 30)
    with pytest.raises(SupernasError, match="objective"):
        full.tell(full.ask(), (1.0, 2.0, 3.0))


def test_nsga2_front_beats_random_in_hypervolume() -> None:
    """A conflicting 2-objective problem on NB201 at budget 150, 10 seeds each."""
    f = two_objectives()
    every = np.array([f(a) for a in NB201.enumerate()])
    ref = every.min(0) - 1.0
    best = hypervolume(every[non_dominated(every)], ref)

    def hv(name: str, seed: int) -> float:
        values = {}
        res = run_search(
            get_strategy(name, NB201, seed=seed),
            lambda xs: [values.setdefault(x, f(x)) if name != "random" else 0.0 for x in xs],
            150,
        )
        return hypervolume([f(t.arch) for t in res.trials], ref)

    nsga = np.array([hv("nsga2", s) for s in range(10)])
    rnd = np.array([hv("random", s) for s in range(10)])  # random ignores values: tell 0.0
    assert (nsga <= best + 1e-9).all() and (rnd <= best + 1e-9).all()
    assert nsga.mean() > rnd.mean()
