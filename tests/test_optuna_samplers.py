"""Strategies on Optuna's samplers: oracles and what the conformance suite cannot see."""

from __future__ import annotations

import json

import pytest

from supernas.errors import SupernasError
from supernas.search import get_strategy, run_search
from test_search import NB201, Synthetic, drive, toy_space


@pytest.mark.parametrize("seed", range(5))
def test_tpe_finds_additive_optimum(seed: int) -> None:
    space = toy_space(5, 4, name="test_optuna_toy")  # 1024 archs
    f = Synthetic(space, pair=0.0)
    res = run_search(get_strategy("tpe", space, seed=seed), f.batch, 60)
    assert res.best.value == pytest.approx(f.optimum())


def test_greedy_pool_asks_the_pool_first_then_breeds_from_it() -> None:
    zeros, ones = NB201.decode([0] * 6), NB201.decode([1] * 6)
    banned = NB201.decode([2] * 6)
    pool = [str(zeros), banned, zeros, ones]  # an infeasible and a repeated arch are skipped
    s = get_strategy(
        "greedy_pool", NB201, seed=0, pool=pool, pool_size=2, constraint=lambda a: a != banned
    )
    assert s.get_params()["pool"] == [str(zeros), str(banned), str(zeros), str(ones)]
    assert [s.ask(), s.ask()] == [zeros, ones]
    s.tell(zeros, 1.0)
    s.tell(ones, 2.0)
    # The warm-up is over: both seed NSGA-II's first generation; children mix their options.
    children = drive(s, 10, lambda a: 0.0)
    assert zeros not in children and ones not in children
    from_parents = [sum(i in (0, 1) for i in NB201.encode(c)) for c in children]
    assert sum(from_parents) / len(children) >= 4  # uniform archs would average 2.4 of 6


def test_greedy_pool_keeps_the_best_told_archs() -> None:
    f = Synthetic(NB201)
    told = [NB201.sample(i) for i in range(30)]
    s = get_strategy("greedy_pool", NB201, seed=0, pool_size=5, warmup=0)
    for a in told:
        s.tell(a, f(a))
    best = sorted(told, key=f, reverse=True)[:5]
    pool = s.state_dict()["state"]["candidates"]
    assert [NB201.validate(a) for a, _ in pool] == best
    nxt = s.ask()  # seeds the population with the pool, never proposing a told arch
    assert nxt not in told
    assert s.state_dict()["state"]["seeded"]


def test_options_are_checked() -> None:
    with pytest.raises(SupernasError, match="n_startup_trials"):
        get_strategy("tpe", NB201, n_startup_trials=-1)
    with pytest.raises(SupernasError, match="population_size"):
        get_strategy("nsga2", NB201, population_size=1)
    with pytest.raises(SupernasError, match="pool_size"):
        get_strategy("greedy_pool", NB201, pool_size=0)
    with pytest.raises(SupernasError, match="list of archs"):
        get_strategy("greedy_pool", NB201, pool="|nor_conv_3x3~0|")
    with pytest.raises(SupernasError):
        get_strategy("greedy_pool", NB201, pool=["not an arch"])
    assert get_strategy("nsga3", NB201, population_size=8).get_params() == {
        "seed": 0,
        "population_size": 8,
    }


def test_gp_two_objectives_resume_exactly() -> None:
    f = Synthetic(NB201)

    def two(a):
        return f(a), -float(sum(NB201.encode(a)))

    full = get_strategy("gp", NB201, seed=0, n_startup_trials=3)
    drive(full, 5, two)
    restored = get_strategy("gp", NB201, seed=0, n_startup_trials=3)
    restored.load_state_dict(json.loads(json.dumps(full.state_dict(), allow_nan=False)))
    assert drive(restored, 2, two) == drive(full, 2, two)


def test_gp_samples_with_one_thread_and_restores_them() -> None:
    # tiny GP matrices: spare BLAS/torch threads only spin (3x slower on busy cores)
    import torch
    from threadpoolctl import threadpool_info

    gp = get_strategy("gp", toy_space(), seed=0)
    before = torch.get_num_threads()
    with gp._sampling():
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before


def test_gp_tells_an_infeasible_proposal_as_the_worst_value_and_keeps_to_the_constraint() -> None:
    """GP ignores PRUNED trials; told the worst value so far instead, it learns to avoid them."""
    space = toy_space(4, 3)
    f = Synthetic(space)
    best = max(space.enumerate(), key=f)

    def feasible(a) -> bool:  # the unconstrained optimum's region is off limits
        return sum(x == y for x, y in zip(a.values, best.values, strict=True)) < 3

    gp = get_strategy("gp", space, seed=0, constraint=feasible, n_startup_trials=4)
    asks = drive(gp, 12, f)
    assert len(asks) == 12 and all(feasible(a) for a in asks)
    done = [t for t in gp._study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    arch = {t.number: space.decode([t.params[n] for n in gp._dists]) for t in done}
    penalised = [t for t in done if not feasible(arch[t.number])]
    assert penalised, "the constraint never bit: the test does not exercise the penalty"
    for t in penalised:
        before = [u.value for u in done if u.number < t.number and feasible(arch[u.number])]
        assert t.value == min(before)
