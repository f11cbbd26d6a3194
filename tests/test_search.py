"""Search strategies: a conformance suite every registered strategy must pass, then oracles."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from supernas.errors import SupernasError
from supernas.search import (
    FidelityStrategy,
    SearchResult,
    Strategy,
    Trial,
    get_multifidelity,
    get_strategy,
    list_multifidelity,
    list_strategies,
    register_strategy,
    run_search,
)
from supernas.space import Arch, Choice, SearchSpace, get_space

NAMES = list_strategies()
#: Successive halving and Hyperband ask for (arch, resource) jobs; the protocol half of the
#: suite drives them through `FidelityAsPlain`. The loop half (`run_search`) does not apply:
#: they re-ask an arch at a higher resource and wait for a whole rung, and
#: tests/test_multifidelity.py runs them through `run_multifidelity` instead.
MF_NAMES = list_multifidelity()
#: options that make a strategy's asks depend on its seed (exhaustive is ordered by default)
SEEDED = {"exhaustive": {"shuffle": True}}
#: strategies slow per ask run the suite with fewer asks (the same checks): "gp" fits a
#: Gaussian process at every ask after its 10 uniform startup trials (~0.2 s each)
SCALE = {"gp": 0.1}


def asks(name: str, n: int) -> int:
    """`n` asks, scaled down for slow strategies."""
    return max(1, round(n * SCALE.get(name, 1.0))) if n else 0


def toy_space(n: int = 5, k: int = 4, name: str = "test_search_toy") -> SearchSpace:
    """n choices x k options (k**n archs) of mixed option types."""
    opts = [(0, 1, 2, 3, 4)[:k], ("a", "b", "c", "d", "e")[:k], (0.5, 1.0, 1.5, 2.0, 3.0)[:k]]
    return SearchSpace(name, [Choice(f"c{i}", opts[i % 3]) for i in range(n)])


class Synthetic:
    """Sum of per-choice option scores plus pairwise interactions; the optimum by brute force.

    Scores are drawn once from a fixed seed, so tests know the optimum without hard-coding it.
    `nan_frac` of archs (by a hash of their indices) fail with NaN.
    """

    def __init__(self, space: SearchSpace, pair: float = 0.3, nan_frac: float = 0.0) -> None:
        rng = np.random.default_rng(1234)
        n, k = len(space.choices), max(len(c.options) for c in space.choices)
        self.space = space
        self.w = rng.normal(size=(n, k))
        upper = np.triu(np.ones((n, n)), 1)[:, :, None, None]  # each pair once
        self.p = pair * upper * rng.normal(size=(n, n, k, k))
        self.nan_frac = nan_frac
        self.calls = 0

    def of_indices(self, idx: np.ndarray) -> np.ndarray:
        e = np.arange(idx.shape[-1])
        v = self.w[e, idx].sum(-1)
        pairs = self.p[e[:, None], e[None, :], idx[..., :, None], idx[..., None, :]]
        return v + pairs.sum((-1, -2))

    def __call__(self, arch: Arch) -> float:
        idx = np.array(self.space.encode(arch))
        if self.nan_frac and (int(idx @ (7 ** np.arange(len(idx)))) % 97) < 97 * self.nan_frac:
            return math.nan
        return float(self.of_indices(idx))

    def batch(self, archs: list[Arch]) -> list[float]:
        self.calls += len(archs)
        return [self(a) for a in archs]

    def optimum(self) -> float:
        sizes = [len(c.options) for c in self.space.choices]
        allidx = np.array(list(itertools.product(*map(range, sizes))))
        return float(self.of_indices(allidx).max())


NB201 = get_space("nb201")


class FidelityAsPlain:
    """A multi-fidelity strategy behind the plain ask/tell calls the conformance suite makes.

    Each ask is the next job's arch; a tell reports the objective's value as that job's
    result at its resource. Nothing else is translated, so every check of the suite tests
    the strategy itself (its seed, its state dict, its constraint handling).
    """

    def __init__(self, inner: FidelityStrategy) -> None:
        self.inner = inner
        self.jobs: dict[Arch, int] = {}

    def ask(self) -> Arch | None:
        job = self.inner.ask()
        if job is None:
            return None
        self.jobs[job.arch] = job.resource
        return job.arch

    def tell(self, arch: Arch, value: float) -> None:
        self.inner.tell(arch, self.jobs.pop(arch), value)

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


def make(name: str, space: SearchSpace, **options: object) -> Strategy | FidelityAsPlain:
    """Any strategy of either registry, seen through the plain protocol."""
    if name in MF_NAMES:
        return FidelityAsPlain(get_multifidelity(name, space, max_resource=9, **options))
    return get_strategy(name, space, **options)


def drive(strategy: Strategy, n: int, f: Callable[[Arch], float]) -> list[Arch]:
    """Ask/tell n times synchronously; the asks in order (stops early on None)."""
    asks = []
    for _ in range(n):
        arch = strategy.ask()
        if arch is None:
            break
        asks.append(arch)
        strategy.tell(arch, f(arch))
    return asks


def as_json(result: SearchResult) -> str:
    """Trials compared through JSON, where NaN equals NaN."""
    return json.dumps(result.to_json())


def no_3x3_heavy(arch: Arch) -> bool:
    return arch.values[0] != "none" and sum(v == "nor_conv_3x3" for v in arch.values) <= 2


# -- conformance: every registered strategy -------------------------------------------------
@pytest.mark.parametrize("name", NAMES + MF_NAMES)
def test_asks_are_in_space_and_deterministic(name: str) -> None:
    f = Synthetic(NB201, nan_frac=0.1)
    n = asks(name, 120)
    a = drive(make(name, NB201, seed=3), n, f)
    b = drive(make(name, NB201, seed=3), n, f)
    assert len(a) == n and all(x in NB201 for x in a)
    assert a == b


@pytest.mark.parametrize("name", NAMES + MF_NAMES)
def test_different_seeds_differ(name: str) -> None:
    f = Synthetic(NB201)
    opts = SEEDED.get(name, {})
    a = drive(make(name, NB201, seed=1, **opts), asks(name, 60), f)
    b = drive(make(name, NB201, seed=2, **opts), asks(name, 60), f)
    assert a != b


@pytest.mark.parametrize("name", NAMES + MF_NAMES)
@pytest.mark.parametrize("cut", [0, 7, 70])
def test_state_dict_resume_is_exact(name: str, cut: int) -> None:
    f = Synthetic(NB201, nan_frac=0.1)
    opts = SEEDED.get(name, {})
    full = make(name, NB201, seed=5, **opts)
    drive(full, asks(name, cut), f)
    state = json.loads(json.dumps(full.state_dict(), allow_nan=False))
    restored = make(name, NB201, seed=5, **opts)
    restored.load_state_dict(state)
    assert drive(restored, asks(name, 60), f) == drive(full, asks(name, 60), f)


@pytest.mark.parametrize("name", NAMES + MF_NAMES)
def test_state_dict_refuses_other_options(name: str) -> None:
    state = make(name, NB201, seed=5).state_dict()
    with pytest.raises(SupernasError, match="seed"):
        make(name, NB201, seed=6).load_state_dict(state)
    with pytest.raises(SupernasError, match="cannot be loaded"):
        make(name, toy_space()).load_state_dict(state)


@pytest.mark.parametrize("name", NAMES + MF_NAMES)
def test_constraint_respected(name: str) -> None:
    f = Synthetic(NB201)
    n = asks(name, 150)
    got = drive(make(name, NB201, seed=0, constraint=no_3x3_heavy), n, f)
    assert len(got) == n and all(no_3x3_heavy(a) for a in got)


@pytest.mark.parametrize("name", NAMES + MF_NAMES)
def test_unsatisfiable_constraint_is_explained_or_ends(name: str) -> None:
    s = make(name, toy_space(3, 3), seed=0, constraint=lambda a: False)
    try:
        assert s.ask() is None
    except SupernasError as exc:
        assert "loosen the constraints" in str(exc)


@pytest.mark.parametrize("name", NAMES)
def test_pending_asks_do_not_break_it(name: str) -> None:
    f = Synthetic(NB201)
    s = get_strategy(name, NB201, seed=0, **({"population": 10} if name == "evolution" else {}))
    for _ in range(asks(name, 15)):
        batch = [s.ask() for _ in range(6)]
        assert all(a in NB201 for a in batch)
        for a in reversed(batch):
            s.tell(a, f(a))


@pytest.mark.parametrize("name", NAMES)
def test_run_search_spends_budget_on_distinct_archs(name: str) -> None:
    f = Synthetic(NB201, nan_frac=0.2)
    seen: list[Trial] = []
    n = asks(name, 80)
    res = run_search(get_strategy(name, NB201, seed=0), f.batch, n, on_trial=seen.append)
    assert len(res.trials) == n == f.calls == len({t.arch for t in res.trials})
    assert seen == res.trials and [t.step for t in res.trials] == list(range(n))
    finite = [t.value for t in res.trials if not math.isnan(t.value)]
    assert res.best.value == max(finite) and not math.isnan(res.best.value)
    assert any(math.isnan(t.value) for t in res.trials)  # NaNs were there and did not win
    traj = res.trajectory()
    assert traj == sorted(traj) and traj[-1] == res.best.value


@pytest.mark.parametrize("name", NAMES)
def test_run_search_on_tiny_space_finds_all_and_stops(name: str) -> None:
    space = toy_space(2, 2, name="test_search_tiny")
    f = Synthetic(space)
    res = run_search(get_strategy(name, space, seed=0), f.batch, 10)
    assert {t.arch for t in res.trials} == set(space.enumerate()) and f.calls == 4


@pytest.mark.parametrize("name", NAMES)
def test_run_search_exact_resume(name: str) -> None:
    f = Synthetic(NB201, nan_frac=0.1)
    budget, stop = asks(name, 40), asks(name, 14)
    full = run_search(get_strategy(name, NB201, seed=9), f.batch, budget)

    saved: dict = {}

    class Interrupt(Exception):
        pass

    def checkpoint(trial: Trial) -> None:
        saved["state"] = json.loads(json.dumps(strategy.state_dict()))
        saved["result"] = json.loads(json.dumps(SearchResult(list(partial)).to_json()))
        if trial.step == stop:
            raise Interrupt

    strategy, partial = get_strategy(name, NB201, seed=9), []
    with pytest.raises(Interrupt):
        run_search(strategy, f.batch, budget, on_trial=lambda t: (partial.append(t), checkpoint(t)))
    restored = get_strategy(name, NB201, seed=9)
    restored.load_state_dict(saved["state"])
    f.calls = 0
    res = run_search(restored, f.batch, budget, resume=SearchResult.from_json(saved["result"]))
    assert f.calls == budget - stop - 1 and as_json(res) == as_json(full)


@pytest.mark.parametrize("name", NAMES)
def test_run_search_replay_resume(name: str) -> None:
    f = Synthetic(NB201)
    n1, n2 = asks(name, 15), asks(name, 40)
    first = run_search(get_strategy(name, NB201, seed=2), f.batch, n1)
    f.calls = 0
    res = run_search(get_strategy(name, NB201, seed=3), f.batch, n2, resume=first)
    assert f.calls == n2 - n1 and as_json(SearchResult(res.trials[:n1])) == as_json(first)
    assert len({t.arch for t in res.trials}) == n2


# -- the loop and the result ----------------------------------------------------------------
class Repeater(Strategy):
    """Proposes the same arch forever: run_search must not loop forever."""

    def _ask(self) -> Arch | None:
        return self.space.decode([0] * len(self.space.choices))


def test_run_search_guards_against_endless_repeats() -> None:
    f = Synthetic(NB201)
    s = Repeater(NB201)
    res = run_search(s, f.batch, 5)
    assert len(res.trials) == 1 == f.calls and s._asks == 20 * 5 + 1000


@pytest.mark.parametrize("budget", [0, -3, 2.5, True])
def test_bad_budget(budget: object) -> None:
    with pytest.raises(SupernasError, match="budget"):
        run_search(get_strategy("random", NB201), Synthetic(NB201).batch, budget)  # type: ignore[arg-type]


def test_objective_must_return_numbers() -> None:
    with pytest.raises(SupernasError, match="expected a number"):
        run_search(get_strategy("random", NB201), lambda archs: ["oops"], 3)
    with pytest.raises(SupernasError, match="2 values for 1 arch"):
        run_search(get_strategy("random", NB201), lambda archs: [1.0, 2.0], 3)


def test_result_ranking_and_json() -> None:
    a, b, c, d = (NB201.decode([i] * 6) for i in range(4))
    res = SearchResult(
        [Trial(a, math.nan, 0), Trial(b, 1.0, 1), Trial(c, -math.inf, 2), Trial(d, 3.0, 3)]
    )
    assert res.best.arch == d
    assert [t.arch for t in res.top_k(10)] == [d, b, a, c]  # NaN and -inf last, earliest first
    assert [t.arch for t in res.top_k(1)] == [d]
    assert res.trajectory() == [-math.inf, 1.0, 1.0, 3.0]
    text = json.dumps(res.to_json(), allow_nan=False)
    back = SearchResult.from_json(json.loads(text))
    assert [(t.arch, t.step) for t in back.trials] == [(t.arch, t.step) for t in res.trials]
    assert math.isnan(back.trials[0].value) and back.trials[2].value == -math.inf
    assert SearchResult([Trial(b, 2.0, 0), Trial(b, 2.0, 1)]).top_k(5) == [Trial(b, 2.0, 0)]
    with pytest.raises(SupernasError, match="no trials"):
        _ = SearchResult().best
    with pytest.raises(SupernasError, match="format"):
        SearchResult.from_json({"trials": []})


def test_registry_errors() -> None:
    with pytest.raises(SupernasError, match=r"valid: .*evolution.*random"):
        get_strategy("annealing", NB201)
    with pytest.raises(SupernasError, match=r"unknown option.*popsize.*valid: .*population"):
        get_strategy("evolution", NB201, popsize=3)
    with pytest.raises(SupernasError, match="population"):
        get_strategy("evolution", NB201, population=0)
    with pytest.raises(SupernasError, match="sample_size"):
        get_strategy("evolution", NB201, population=5, sample_size=6)
    with pytest.raises(SupernasError, match="seed"):
        get_strategy("random", NB201, seed="zero")
    with pytest.raises(SupernasError, match="already registered"):
        register_strategy("random")(Repeater)


def test_init_only_stores_state_is_lazy() -> None:
    s = get_strategy("evolution", NB201, seed=4, population=20)
    assert not s.started and s.get_params() == {"seed": 4, "population": 20, "sample_size": 10}
    state = get_strategy("evolution", NB201, seed=4, population=20).state_dict()
    s.load_state_dict(json.loads(json.dumps(state)))
    assert s.started and s.ask() == get_strategy("evolution", NB201, seed=4, population=20).ask()


# -- strategy specifics and oracles ---------------------------------------------------------
def test_exhaustive_order_and_limit() -> None:
    space = toy_space(3, 3)
    assert drive(get_strategy("exhaustive", space), 100, lambda a: 0.0) == list(space.enumerate())
    shuffled = drive(get_strategy("exhaustive", space, shuffle=True), 100, lambda a: 0.0)
    assert sorted(map(str, shuffled)) == sorted(map(str, space.enumerate()))
    with pytest.raises(SupernasError, match=r"43,046,721 archs.*'evolution' or 'random'"):
        get_strategy("exhaustive", get_space("resnet18"))
    with pytest.raises(SupernasError, match="15,625"):
        get_strategy("exhaustive", NB201, limit=1000)


def test_exhaustive_finds_the_known_optimum() -> None:
    space = toy_space(5, 4)  # 1024 archs
    f = Synthetic(space)
    res = run_search(get_strategy("exhaustive", space), f.batch, 5000)
    assert len(res.trials) == space.size == 1024
    assert res.best.value == pytest.approx(f.optimum())


def test_exhaustive_constraint_counts() -> None:
    feasible = sum(map(no_3x3_heavy, NB201.enumerate()))
    res = run_search(
        get_strategy("exhaustive", NB201, constraint=no_3x3_heavy), lambda a: [0.0], 20_000
    )
    assert len(res.trials) == feasible < NB201.size


def test_random_never_repeats() -> None:
    space = toy_space(3, 3)  # 27 archs
    asks = drive(get_strategy("random", space, seed=0), 100, lambda a: 0.0)
    assert len(asks) == 27 == len(set(asks))


def test_evolution_ages_out_the_oldest_and_mutates_the_tournament_winner() -> None:
    s = get_strategy("evolution", NB201, seed=0, population=5, sample_size=5)
    for _ in range(5):
        s.ask()  # the random phase, never told
    archs = [NB201.decode([i % 5, i // 5, 0, 0, 0, 0]) for i in range(8)]
    for i, a in enumerate(archs):
        s.tell(a, float(-i))  # the oldest are the best: aging must still remove them
    assert [a for a, _ in s._members] == archs[3:]
    for _ in range(10):  # sample_size == population: the parent is always the best, archs[3]
        child = s.ask()
        assert sum(x != y for x, y in zip(child.values, archs[3].values, strict=True)) == 1


def test_evolution_beats_random_on_nb201() -> None:
    f = Synthetic(NB201)
    opt = f.optimum()

    def best(name: str, seed: int) -> float:
        return run_search(get_strategy(name, NB201, seed=seed), f.batch, 150).best.value

    evo = np.array([best("evolution", s) for s in range(20)])
    rnd = np.array([best("random", s) for s in range(20)])
    assert evo.mean() > rnd.mean()
    assert (opt - evo).mean() < (opt - rnd).mean()
    assert (evo <= opt + 1e-9).all() and (rnd <= opt + 1e-9).all()


@pytest.mark.parametrize("seed", range(5))
def test_local_search_reaches_additive_optimum(seed: int) -> None:
    f = Synthetic(NB201, pair=0.0)
    res = run_search(get_strategy("local_search", NB201, seed=seed), f.batch, 300)
    assert res.best.value == pytest.approx(f.optimum())
