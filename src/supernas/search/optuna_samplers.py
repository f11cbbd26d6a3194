"""Strategies built on Optuna's samplers: TPE, GP-BO, NSGA-II, NSGA-III, and a GreedyNAS-style
NSGA-II seeded from a candidate pool.

Each choice is a categorical parameter (named like the choice, valued by option index). Ask
and tell map to `study.ask()`/`study.tell()` on an in-memory study. All of them take vector
values (one per objective, all maximised); the number of objectives is fixed by the first tell.

Exact resume: Optuna's sampler RNG state is not JSON, so no sampler lives across calls. Before
every ask and tell a fresh sampler is built with a seed derived from (seed, trials so far),
which makes every ask a pure function of the seed and the study's trials; `state_dict` saves
those trials (params, state, values, system attributes) and the study's system attributes,
and `load_state_dict` rebuilds an identical study, trial ids included.
"""

from __future__ import annotations

import copy
import math
import sys
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial
from threadpoolctl import threadpool_limits

from supernas.errors import SupernasError
from supernas.search.base import (
    Constraint,
    Strategy,
    Value,
    float_from_json,
    float_to_json,
    register_strategy,
    value_from_json,
    value_to_json,
)
from supernas.search.pareto import non_dominated_ranks
from supernas.space import Arch, SearchSpace


def _int_option(strategy: str, name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SupernasError(f"{strategy}: {name} must be an integer >= {low}, got {value!r}")
    return value


class OptunaStrategy(Strategy):
    """Ask/tell over one Optuna sampler; subclasses only say which sampler (`_sampler`).

    Never proposes an arch twice and never returns an infeasible one: the constraint is
    checked before the arch is handed out, so it costs no budget.
    - A proposal already seen is told to the study as FAIL (samplers ignore it); one that
      breaks the constraint is told as PRUNED (TPE ranks it below every real value; NSGA
      ignores it), except for GP, which ignores PRUNED trials and would propose the same
      arch again and again: GP is told the worst value so far (as SMAC scores a crashed
      run), which costs no query and no budget.
    - Either is then replaced by a uniform choice among its unseen feasible neighbours (one
      choice changed), put into the study with `enqueue_trial`: a sampler that has converged
      keeps proposing its best arch, so its neighbours are where it would look next (a
      repair that costs no extra fit of the sampler's model). Without such a neighbour, the
      sampler is asked again.
    After `max_proposals` proposals in a row fail, the ask is a uniform unseen feasible arch,
    or None when none is left. A failed evaluation (NaN or -inf in any objective) is told as
    FAIL. Archs told without being asked (replayed trials) join the study with their values.
    """

    multi_objective = True
    #: sampler proposals per ask (seen or infeasible) before a uniform unseen arch is used.
    max_proposals: ClassVar[int] = 30
    #: tell an infeasible proposal as the worst value so far instead of PRUNED (for samplers
    #: that ignore PRUNED trials and would propose it again and again).
    _penalize_infeasible: ClassVar[bool] = False
    #: genetic samplers put a trial into a generation only when it samples relative params.
    _genetic: ClassVar[bool] = False

    def _sampler(self, seed: int) -> BaseSampler:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the study, rebuilt from plain records ---------------------------------------------
    def _init_state(self) -> None:
        self._dists = {
            c.name: CategoricalDistribution(tuple(range(len(c.options))))
            for c in self.space.choices
        }
        self._n_obj: int | None = None  # fixed by the first tell
        self._seen: dict[Arch, None] = {}  # a dict keeps insertion order: stable state dicts
        self._pending: dict[Arch, int] = {}  # asked, not told yet: arch -> trial number
        self._build([], {}, 1)

    def _build(self, records: list[dict[str, Any]], attrs: dict[str, Any], n_obj: int) -> None:
        self._space_cache: dict[str, IntersectionSearchSpace] = {}
        self._storage = optuna.storages.InMemoryStorage()
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line
        try:
            self._study = optuna.create_study(
                storage=self._storage,
                sampler=optuna.samplers.RandomSampler(seed=0),  # replaced before every use
                directions=["maximize"] * n_obj,
            )
        finally:
            optuna.logging.set_verbosity(verbosity)
        for r in records:
            params, values = r["params"], r["values"]
            self._study.add_trial(
                create_trial(
                    state=TrialState[r["state"]],
                    values=None if values is None else [float_from_json(v) for v in values],
                    params=None if params is None else dict(zip(self._dists, params, strict=True)),
                    distributions=None if params is None else self._dists,
                    system_attrs=r["attrs"],
                )
            )
        study_id = self._storage.get_study_id_from_name(self._study.study_name)
        for key, value in attrs.items():
            self._storage.set_study_system_attr(study_id, key, value)

    def _records(self) -> list[dict[str, Any]]:
        return [
            {
                "state": t.state.name,
                "values": None if t.values is None else [float_to_json(v) for v in t.values],
                "params": [t.params[n] for n in self._dists] if t.params else None,
                "attrs": t.system_attrs,
            }
            for t in self._study.get_trials(deepcopy=False)
        ]

    def _study_attrs(self) -> dict[str, Any]:
        return self._storage.get_study_system_attrs(
            self._storage.get_study_id_from_name(self._study.study_name)
        )

    def _reseed(self) -> None:
        """A fresh sampler whose seed depends only on (seed, trials so far): pure asks."""
        n = len(self._study.get_trials(deepcopy=False))
        seed = int(np.random.SeedSequence([self.seed, n]).generate_state(1)[0])
        with warnings.catch_warnings():  # NSGA-III is "experimental" in Optuna 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = self._sampler(seed)
        # A fresh sampler recomputes its intersection search space over all trials (O(trials)
        # per ask, most of an ask's time at a few hundred trials). That cache is a pure
        # function of the trials, so the first sampler's one is handed on; if Optuna renames
        # the attribute this only loses the speed-up.
        for attr in ("_search_space", "_intersection_search_space"):
            if isinstance(getattr(sampler, attr, None), IntersectionSearchSpace):
                setattr(sampler, attr, self._space_cache.setdefault(attr, getattr(sampler, attr)))
        self._study.sampler = sampler

    # -- trials ------------------------------------------------------------------------
    def _new_trial(self, fixed: Arch | None = None) -> tuple[int, Arch]:
        """Ask the study for a trial (with `fixed`'s params if given): its number and arch."""
        self._reseed()
        if fixed is not None:
            self._study.enqueue_trial(dict(zip(self._dists, self.space.encode(fixed), strict=True)))
        with self._sampling():
            trial = self._study.ask(self._dists)
            if fixed is not None and self._genetic:
                _ = trial.relative_params  # assigns the trial to a generation
        return trial.number, self.space.decode([trial.params[n] for n in self._dists])

    @contextmanager
    def _sampling(self) -> Any:
        yield

    def _finish(self, number: int, values: Value | None, state: TrialState) -> None:
        self._reseed()
        if state == TrialState.COMPLETE:
            assert values is not None
            self._study.tell(number, list(values) if isinstance(values, tuple) else values)
        else:
            self._study.tell(number, state=state)

    def _uniform_unseen(self) -> Arch | None:
        """As random search: a uniform unseen feasible arch; None once none is left."""
        for _ in range(self.max_tries):
            arch = self._sample()
            if arch not in self._seen:
                return arch
        if self.space.size <= self.space.max_enumerate:
            return self._pick_unseen(self._seen)
        return arch  # a huge space that keeps repeating: allow the repeat

    def _ask(self) -> Arch | None:
        if self.constraint is None and len(self._seen) >= self.space.size:
            return None  # every arch has been proposed
        for _ in range(self.max_proposals):
            number, arch = self._new_trial()
            seen = arch in self._seen
            if not seen and self._feasible(arch):
                break
            worst = None if seen or not self._penalize_infeasible else self._worst()
            if worst is not None:  # GP learns to avoid the region (no query, no budget)
                self._finish(number, worst, TrialState.COMPLETE)
            else:
                self._finish(number, None, TrialState.FAIL if seen else TrialState.PRUNED)
            near = [a for a in self.space.neighbors(arch) if a not in self._seen]
            near = [a for a in near if self._feasible(a)]
            if near:
                number, arch = self._new_trial(near[int(self.rng.integers(len(near)))])
                break
        else:
            fallback = self._uniform_unseen()
            if fallback is None:
                return None
            number, arch = self._new_trial(fallback)
        self._seen[arch] = None
        self._pending[arch] = number
        return arch

    def _worst(self) -> Value | None:
        """Per objective the worst value told so far (None before the first complete tell)."""
        done = self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done or self._n_obj is None:
            return None
        worst = [
            min(t.values[i] for t in done)
            if d == StudyDirection.MAXIMIZE
            else max(t.values[i] for t in done)
            for i, d in enumerate(self._study.directions)
        ]
        return worst[0] if len(worst) == 1 else tuple(worst)

    def _tell(self, arch: Arch, value: Value) -> None:
        values = value if isinstance(value, tuple) else (value,)
        if self._n_obj is None:
            self._n_obj = len(values)
            if self._n_obj != len(self._study.directions):
                self._build(self._records(), self._study_attrs(), self._n_obj)
        elif len(values) != self._n_obj:
            raise SupernasError(
                f"{self.name}: told {len(values)} objective(s) for {arch}; earlier values had "
                f"{self._n_obj}"
            )
        number = self._pending.pop(arch, None)
        if number is None:  # told without being asked (a replayed trial): learn from it
            number, _ = self._new_trial(arch)
        self._seen[arch] = None
        failed = any(v == -math.inf for v in values)
        self._finish(number, value, TrialState.FAIL if failed else TrialState.COMPLETE)

    # -- state -------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "n_objectives": self._n_obj,
            # copies: the study's own attribute dicts must not leak to the caller
            "trials": copy.deepcopy(self._records()),
            "study_attrs": copy.deepcopy(self._study_attrs()),
            "seen": [self._arch_to_json(a) for a in self._seen],
            "pending": [[self._arch_to_json(a), n] for a, n in self._pending.items()],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._n_obj = state["n_objectives"]
        self._build(state["trials"], state["study_attrs"], self._n_obj or 1)
        self._seen = {self._arch_from_json(a): None for a in state["seen"]}
        self._pending = {self._arch_from_json(a): int(n) for a, n in state["pending"]}


@register_strategy("tpe")
class TPE(OptunaStrategy):
    """Tree-structured Parzen Estimator (Bergstra et al. 2011; Optuna's TPESampler).

    Multivariate TPE (one joint density over all choices) by default: NAS choices interact.
    `n_startup_trials` uniform trials come first; 10 suits budgets of 50-300.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        n_startup_trials: int = 10,
        multivariate: bool = True,
    ) -> None:
        super().__init__(space, seed, constraint)
        self.n_startup_trials = _int_option("tpe", "n_startup_trials", n_startup_trials, 0)
        self.multivariate = bool(multivariate)

    def _sampler(self, seed: int) -> BaseSampler:
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.n_startup_trials, multivariate=self.multivariate
        )


@register_strategy("gp")
class GP(OptunaStrategy):
    """Gaussian-process Bayesian optimisation (Optuna's GPSampler; log EI, or log EHVI for
    several objectives).

    Sample-efficient but costly: each ask after the `n_startup_trials` uniform ones fits a GP
    and optimises the acquisition, about 0.1-0.5 s on one CPU core at 50-200 trials, growing
    with the trials (cubic GP fit). Worth it when one evaluation costs seconds (training from
    scratch), not for table lookups with budgets in the thousands. Torch runs one thread while
    it samples, and so does BLAS (scipy's L-BFGS fits the kernel): the matrices are tiny, and
    spare threads spinning on busy cores made one budget-150 run 3x slower (46 s vs 16 s
    beside a 2-process training job on 2 cores).
    """

    _penalize_infeasible = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        n_startup_trials: int = 10,
    ) -> None:
        super().__init__(space, seed, constraint)
        self.n_startup_trials = _int_option("gp", "n_startup_trials", n_startup_trials, 1)

    def _sampler(self, seed: int) -> BaseSampler:
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=self.n_startup_trials, warn_independent_sampling=False
        )

    @contextmanager
    def _sampling(self) -> Any:
        torch = sys.modules.get("torch")  # optuna imports it; supernas.search does not
        threads = torch.get_num_threads() if torch is not None else 0
        if torch is not None:
            torch.set_num_threads(1)
        try:
            with threadpool_limits(1):
                yield
        finally:
            if torch is not None:
                torch.set_num_threads(threads)


@register_strategy("nsga2")
class NSGA2(OptunaStrategy):
    """NSGA-II (Deb et al. 2002; Optuna's NSGAIISampler): non-dominated sorting + crowding.

    Generation 0 is `population_size` uniform archs; each later one is bred (uniform crossover
    and mutation) from the elite of the previous ones. 20 gives 2-15 generations at budgets of
    50-300 (Optuna's default 50 would leave only a few).
    """

    _genetic = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        population_size: int = 20,
    ) -> None:
        super().__init__(space, seed, constraint)
        self.population_size = _int_option(self.name, "population_size", population_size, 2)

    def _sampler(self, seed: int) -> BaseSampler:
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population_size)


@register_strategy("nsga3")
class NSGA3(NSGA2):
    """NSGA-III (Deb & Jain 2014; Optuna's NSGAIIISampler): NSGA-II with reference points in
    place of crowding, which keeps the front spread out for 3 or more objectives."""

    def _sampler(self, seed: int) -> BaseSampler:
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=self.population_size)


@register_strategy("greedy_pool")
class GreedyPool(NSGA2):
    """GreedyNAS-style search (You et al. 2020): NSGA-II whose first population is a pool of
    the best archs seen so far, not uniform samples.

    1. Warm-up: the first `warmup` asks (default: len(pool) if a pool is given, else
       2 * pool_size) propose the archs of `pool` in order (e.g. the candidate pool a
       GreedyNAS supernet training kept), then uniform unseen archs. Infeasible or already
       seen ones are skipped. These asks are not NSGA-II trials.
    2. Pool: every arch told so far (asked or replayed) competes for `pool_size` places;
       best first by value, by non-dominated rank for several objectives, earlier first among
       equals; failed archs never enter.
    3. Seeding: at the first ask after the warm-up, the pool enters the NSGA-II study with its
       known values (enqueue_trial, ask, tell: no objective calls, never returned) as
       generation 0 of a population of `pool_size`; NSGA-II breeds every later ask from it.
       Archs still pending then join the study when told.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        pool: Sequence[str | Arch] | None = None,
        pool_size: int = 20,
        warmup: int | None = None,
    ) -> None:
        self.pool_size = _int_option("greedy_pool", "pool_size", pool_size, 2)
        super().__init__(space, seed, constraint, population_size=self.pool_size)
        if pool is not None and (isinstance(pool, str) or not isinstance(pool, Sequence)):
            raise SupernasError("greedy_pool: pool must be a list of archs (or arch strings)")
        # stored as strings: the options go into JSON state dicts
        self.pool = None if pool is None else [str(space.validate(a)) for a in pool]
        self.warmup = None if warmup is None else _int_option("greedy_pool", "warmup", warmup, 0)

    @property
    def _warmup(self) -> int:
        if self.warmup is not None:
            return self.warmup
        return len(self.pool) if self.pool is not None else 2 * self.pool_size

    def _init_state(self) -> None:
        super()._init_state()
        self._candidates: list[tuple[Arch, Value]] = []  # the pool, best first
        self._next = 0  # position in `pool`
        self._seeded = False

    def _ask(self) -> Arch | None:
        if self._seeded:
            return super()._ask()
        if self._asks >= self._warmup:
            self._seed_population()
            return super()._ask()
        arch = None
        while self.pool is not None and self._next < len(self.pool):
            candidate = self.space.parse(self.pool[self._next])
            self._next += 1
            if candidate not in self._seen and self._feasible(candidate):
                arch = candidate
                break
        if arch is None:
            arch = self._uniform_unseen()
            if arch is None:
                return None
        self._seen[arch] = None
        return arch

    def _tell(self, arch: Arch, value: Value) -> None:
        if self._seeded:
            super()._tell(arch, value)
            return
        self._seen[arch] = None
        values = value if isinstance(value, tuple) else (value,)
        if any(v == -math.inf for v in values):
            return
        if self._candidates and len(values) != len(self._as_tuple(self._candidates[0][1])):
            raise SupernasError(f"greedy_pool: told {len(values)} objective(s) for {arch}")
        self._candidates.append((arch, value))
        ranks = non_dominated_ranks([self._as_tuple(v) for _, v in self._candidates])
        order = sorted(range(len(ranks)), key=lambda i: ranks[i])  # stable: earlier first
        self._candidates = [self._candidates[i] for i in order[: self.pool_size]]

    @staticmethod
    def _as_tuple(value: Value) -> tuple[float, ...]:
        return value if isinstance(value, tuple) else (value,)

    def _seed_population(self) -> None:
        self._seeded = True
        for arch, value in self._candidates:
            OptunaStrategy._tell(self, arch, value)

    def _get_state(self) -> dict[str, Any]:
        return super()._get_state() | {
            "candidates": [[self._arch_to_json(a), value_to_json(v)] for a, v in self._candidates],
            "next": self._next,
            "seeded": self._seeded,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._candidates = [
            (self._arch_from_json(a), value_from_json(v)) for a, v in state["candidates"]
        ]
        self._next = int(state["next"])
        self._seeded = bool(state["seeded"])
