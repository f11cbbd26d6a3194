"""Multi-fidelity search (successive halving, Hyperband, curve extrapolation) on synthetic
learning curves: final * (1 - exp(-epoch / tau)) + noise, with known final values."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from supernas.errors import SupernasError
from supernas.search import (
    MULTIFIDELITY,
    STRATEGIES,
    Hyperband,
    Job,
    MultiFidelityResult,
    Run,
    extrapolate_curve,
    get_multifidelity,
    list_multifidelity,
    run_multifidelity,
)
from supernas.space import Arch, Choice, SearchSpace

SPACE = SearchSpace("test_mf_toy", [Choice(f"c{i}", (0, 1, 2)) for i in range(4)])  # 81 archs
R = 27
ALL_TO_MAX = SPACE.size * R  # the resource of training every arch to max_resource
NAMES = ["successive_halving", "hyperband"]


class Curves:
    """Learning curves with known finals: one best arch at 0.9, the rest in [0.3, 0.85].

    Noise is fixed per (arch, epoch), so an arch's curve is the same however often it is
    trained. `epochs` counts the epochs actually computed (an iterator computes lazily).
    """

    def __init__(self, seed: int = 0, noise: float = 0.01, tau: tuple = (1.0, 3.0)) -> None:
        rng = np.random.default_rng(seed)
        n = SPACE.size
        self.final = rng.uniform(0.3, 0.85, n)
        self.final[rng.integers(n)] = 0.9
        self.tau = rng.uniform(*tau, n)  # per-arch speed: curves cross, early ranks mislead
        self.noise = noise * rng.standard_normal((n, R))
        self.best = SPACE.decode(np.unravel_index(int(self.final.argmax()), [3] * 4))
        self.epochs = 0

    def value(self, arch: Arch, epoch: int) -> float:
        i = int(np.ravel_multi_index(SPACE.encode(arch), [3] * 4))
        return float(self.final[i] * (1 - np.exp(-epoch / self.tau[i])) + self.noise[i, epoch - 1])

    def curve(self, arch: Arch, resource: int) -> list[float]:
        self.epochs += resource
        return [self.value(arch, e) for e in range(1, resource + 1)]

    def lazy(self, arch: Arch, resource: int) -> Iterator[float]:
        for e in range(1, resource + 1):
            self.epochs += 1
            yield self.value(arch, e)

    def final_value(self, arch: Arch, resource: int) -> float:
        self.epochs += resource
        return self.value(arch, resource)


def search(
    name: str, seed: int, budget: int, mode: str = "lazy", tau: tuple = (1.0, 3.0), **opts: object
) -> tuple[Curves, MultiFidelityResult]:
    f = Curves(seed, tau=tau)
    s = get_multifidelity(name, SPACE, seed=seed, max_resource=R, **opts)
    return f, run_multifidelity(s, getattr(f, mode), budget)


# -- finding the best cheaply ---------------------------------------------------------------
def true_final(f: Curves, arch: Arch) -> float:
    return float(f.final[int(np.ravel_multi_index(SPACE.encode(arch), [3] * 4))])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["lazy", "curve", "final_value"])
def test_finds_the_best_with_a_quarter_of_the_resource(name: str, mode: str) -> None:
    budget = ALL_TO_MAX // 4
    found, regret, random_regret = 0, [], []
    for seed in range(10):
        f, res = search(name, seed, budget, mode)
        assert res.spent == f.epochs <= budget  # the budget is epochs, and never exceeded
        found += res.best.arch == f.best
        regret.append(0.9 - true_final(f, res.best.arch))
        # random search at equal resource: budget // R archs trained to max_resource
        picks = np.random.default_rng(seed).choice(SPACE.size, budget // R, replace=False)
        random_regret.append(0.9 - f.final[picks].max())
    # a slow starter (large tau) can be halved away: 15 of 20 seeds found it, 6-7 of these 10
    assert found >= 5
    assert np.mean(regret) < 0.5 * np.mean(random_regret)


@pytest.mark.parametrize("name", NAMES)
def test_halving_keeps_the_best_when_early_ranks_are_final_ranks(name: str) -> None:
    plan = get_multifidelity(name, SPACE, max_resource=R)
    cycle = sum(n * r for s in {plan._bracket(k) for k in range(10)} for n, r in plan.rungs(s))
    for seed in range(5):  # one tau for all: curves never cross, up to the noise
        f, res = search(name, seed, cycle, "final_value", tau=(2.0, 2.0))
        tried = {r.arch for r in res.runs}  # every bracket completed within `cycle` epochs
        assert res.best.arch == max(tried, key=lambda a: true_final(f, a))
        assert res.spent == cycle


# -- extrapolation ---------------------------------------------------------------------------
def test_extrapolation_is_optimistic_but_informative() -> None:
    t = np.arange(1, 28)
    power = 0.8 - 0.5 * t**-0.7
    assert power[-1] <= extrapolate_curve(power[:6], 27) < power[-1] + 0.05
    fast = 0.6 * (1 - np.exp(-t / 2))  # saturates faster than any power law: over-predicted
    assert fast[-1] <= extrapolate_curve(fast[:6], 27) < 0.85
    assert extrapolate_curve([0.5, 0.6], 27) == np.inf  # too short to fit
    assert extrapolate_curve([0.5, float("nan"), 0.6, 0.7], 27) == np.inf


@pytest.mark.parametrize("name", NAMES)
def test_extrapolation_stops_bad_runs_early_but_not_the_best(name: str) -> None:
    cut = 0
    for seed in range(5):
        f, res = search(name, seed, ALL_TO_MAX // 4, "lazy", top_k=1)
        stopped = [r for r in res.runs if r.stopped]
        assert res.early_stops == len(stopped)
        assert all(r.arch != f.best for r in stopped)
        # stopped mid-run (the iterator closed), or at a lower rung's end (not promoted)
        assert all(len(r.curve or ()) < r.resource or r.resource < R for r in stopped)
        cut += sum(len(r.curve or ()) < r.resource for r in stopped)
        assert res.spent == f.epochs == sum(len(r.curve or ()) for r in res.runs)
        _, plain = search(name, seed, ALL_TO_MAX // 4, "lazy", top_k=1, extrapolate=False)
        assert plain.early_stops == 0
        if name == "hyperband":  # the epochs saved buy more runs for the same budget
            assert len(stopped) > 0 and len(res.runs) > len(plain.runs)
    assert cut >= 3


def test_full_curves_of_hopeless_runs_are_not_promoted() -> None:
    stops = 0
    for seed in range(3):
        f, res = search("hyperband", seed, ALL_TO_MAX // 4, "curve")
        stops += res.early_stops
        assert all(r.arch != f.best for r in res.runs if r.stopped)
        assert all(r.curve is not None and len(r.curve) == r.resource for r in res.runs)
    assert stops > 0


# -- determinism and resume ------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name: str) -> None:
    def text(seed: int) -> str:
        return json.dumps(search(name, seed, 400)[1].to_json(), allow_nan=False)

    assert text(3) == text(3) != text(4)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cut", [0, 5, 40])
def test_state_dict_resume_is_exact(name: str, cut: int) -> None:
    full = search(name, 2, 500)[1]
    saved: dict = {}

    class Interrupt(Exception):
        pass

    def checkpoint(run: Run) -> None:
        saved["state"] = json.loads(json.dumps(strategy.state_dict(), allow_nan=False))
        saved["result"] = json.loads(json.dumps(partial.to_json(), allow_nan=False))
        if run.step == cut:
            raise Interrupt

    f = Curves(2)
    strategy = get_multifidelity(name, SPACE, seed=2, max_resource=R)
    partial = MultiFidelityResult(R)
    with pytest.raises(Interrupt):
        run_multifidelity(
            strategy, f.lazy, 500, on_run=lambda r: (partial.runs.append(r), checkpoint(r))
        )
    restored = get_multifidelity(name, SPACE, seed=2, max_resource=R)
    restored.load_state_dict(saved["state"])
    f.epochs = 0
    prior = MultiFidelityResult.from_json(saved["result"])
    res = run_multifidelity(restored, f.lazy, 500, resume=prior)
    assert json.dumps(res.to_json()) == json.dumps(full.to_json())
    assert f.epochs == full.spent - prior.spent


def test_state_dict_refuses_other_options() -> None:
    state = get_multifidelity("hyperband", SPACE, max_resource=R).state_dict()
    with pytest.raises(SupernasError, match="eta"):
        get_multifidelity("hyperband", SPACE, max_resource=R, eta=2).load_state_dict(state)
    with pytest.raises(SupernasError, match="cannot be loaded"):
        get_multifidelity("successive_halving", SPACE, max_resource=R).load_state_dict(state)
    with pytest.raises(SupernasError, match="restored"):
        run_multifidelity(
            Hyperband(SPACE, max_resource=R), Curves().curve, 10, resume=MultiFidelityResult(R)
        )


def test_a_run_that_does_not_fit_is_put_back() -> None:
    f = Curves(0)
    s = get_multifidelity("successive_halving", SPACE, max_resource=R)
    first = run_multifidelity(s, f.curve, 40)  # rung 0 = 27 x 1 epoch, rung 1 = 9 x 3 epochs
    assert first.spent == 39 and [r.resource for r in first.runs[-5:]] == [1, 1, 3, 3, 3, 3][-5:]
    more = run_multifidelity(s, f.curve, 100, resume=first)
    assert more.runs[: len(first.runs)] == first.runs and more.spent <= 100
    assert more.runs[len(first.runs)].resource == 3  # the job put back runs first


# -- the bracket plan, costs and errors ------------------------------------------------------
def test_hyperband_brackets_match_the_paper() -> None:
    hb = Hyperband(SPACE, max_resource=81, eta=3)  # Li et al. 2018, Table 1 (R = 81, eta = 3)
    assert hb.s_max == 4
    assert hb.rungs(4) == [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)]
    assert hb.rungs(3) == [(34, 3), (11, 9), (3, 27), (1, 81)]
    assert hb.rungs(2) == [(15, 9), (5, 27), (1, 81)]
    assert hb.rungs(1) == [(8, 27), (2, 81)]
    assert hb.rungs(0) == [(5, 81)]
    assert [hb._bracket(k) for k in range(7)] == [4, 3, 2, 1, 0, 4, 3]


def test_resumable_runs_pay_only_new_epochs() -> None:
    f = Curves(0)
    s = get_multifidelity("successive_halving", SPACE, max_resource=R)
    # one bracket: 27 x 1 + 9 x 3 + 3 x 9 + 1 x 27 = 108 epochs, or 81 when runs continue
    res = run_multifidelity(s, f.curve, 81, resumable=True)
    paid: dict = {}
    for r in res.runs:
        assert r.cost == r.resource - paid.get(r.arch, 0)
        paid[r.arch] = r.resource
    assert res.spent == sum(paid.values()) == 81 and len(res.finished) == 1
    s = get_multifidelity("successive_halving", SPACE, max_resource=R)
    assert not run_multifidelity(s, f.curve, 81).finished


def test_asks_are_synchronous_and_tells_checked() -> None:
    s = get_multifidelity("successive_halving", SPACE, max_resource=9)  # rungs 9x1, 3x3, 1x9
    jobs = [s.ask() for _ in range(9)]
    assert all(isinstance(j, Job) and j.resource == 1 for j in jobs)
    assert len({j.arch for j in jobs}) == 9 and s.ask() is None  # waits for the rung
    with pytest.raises(SupernasError, match="not asked"):
        s.tell(jobs[0].arch, 3, 0.5)
    for i, (arch, r) in enumerate(jobs):
        s.tell(arch, r, float(i))
    assert [s.ask() for _ in range(3)] == [Job(jobs[i].arch, 3) for i in (8, 7, 6)]
    with pytest.raises(SupernasError, match="curve of 4 values"):
        s.tell(jobs[8].arch, 3, [0.1, 0.2, 0.3, 0.4])


def test_constraint_and_exhaustion() -> None:
    def ok(a: Arch) -> bool:
        return a.values[0] == 0

    s = get_multifidelity("hyperband", SPACE, max_resource=R, constraint=ok)
    res = run_multifidelity(s, Curves().curve, 10**6)
    assert all(ok(r.arch) for r in res.runs)
    assert {r.arch for r in res.runs} == {a for a in SPACE.enumerate() if ok(a)}  # all 27 tried


def test_objective_errors() -> None:
    s = Hyperband(SPACE, max_resource=R)
    with pytest.raises(SupernasError, match="curve of 2 values"):
        run_multifidelity(s, lambda a, r: [0.1, 0.2], 100)
    with pytest.raises(SupernasError, match="yielded 1 values"):
        run_multifidelity(Hyperband(SPACE, max_resource=R), lambda a, r: iter([0.1]), 100)
    with pytest.raises(SupernasError, match="expected a number"):
        run_multifidelity(Hyperband(SPACE, max_resource=R), lambda a, r: "oops", 100)
    with pytest.raises(SupernasError, match="budget"):
        run_multifidelity(Hyperband(SPACE, max_resource=R), Curves().curve, 0)


def test_failed_runs_are_never_promoted() -> None:
    s = get_multifidelity("successive_halving", SPACE, max_resource=R)
    res = run_multifidelity(s, lambda a, r: float("nan"), 1000)
    assert all(r.resource == 1 for r in res.runs) and len(res.runs) == SPACE.size
    with pytest.raises(SupernasError, match="no run reached"):
        _ = res.best


def test_registry_and_result_json() -> None:
    assert list_multifidelity() == ["hyperband", "successive_halving"]
    assert not set(MULTIFIDELITY.names()) & set(STRATEGIES.names())
    with pytest.raises(SupernasError, match="valid: hyperband, successive_halving"):
        get_multifidelity("bohb", SPACE, max_resource=R)
    with pytest.raises(SupernasError, match=r"unknown option.*etaa"):
        get_multifidelity("hyperband", SPACE, max_resource=R, etaa=2)
    for bad in [
        {"max_resource": 0},
        {"max_resource": R, "eta": 1},
        {"max_resource": R, "min_resource": 30},
        {"max_resource": R, "extrapolate": 1},
        {"max_resource": R, "min_points": 2},
    ]:
        with pytest.raises(SupernasError):
            get_multifidelity("hyperband", SPACE, **bad)
    _, res = search("hyperband", 0, 300)
    back = MultiFidelityResult.from_json(json.loads(json.dumps(res.to_json(), allow_nan=False)))
    assert back == res and back.best == res.best
    sr = res.to_search_result()
    assert [t.arch for t in sr.trials] == [r.arch for r in res.finished]
    assert sr.best.arch == res.best.arch
    with pytest.raises(SupernasError, match="format"):
        MultiFidelityResult.from_json({"runs": []})
