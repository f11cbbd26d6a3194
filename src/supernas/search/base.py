"""Search strategies as ask/tell objects, their registry, and the loop that drives them.

Why ask/tell (as Optuna's samplers): a strategy sees only a space, archs and numbers, never a
model, so the same strategy runs on a supernet, a proxy or a benchmark table, and the caller
decides how archs get evaluated and when to checkpoint.

A value is one number or, for multi-objective search, a tuple of numbers. Every objective is
MAXIMISED: negate what you minimise (latency, params), e.g. `(accuracy, -latency_ms)`.
"""

from __future__ import annotations

import inspect
import json
import math
import operator
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from supernas.errors import SupernasError
from supernas.registry import Registry
from supernas.search.pareto import non_dominated
from supernas.space import Arch, SearchSpace

#: one objective's value, or a tuple of them (multi-objective); all are maximised
Value = float | tuple[float, ...]
Constraint = Callable[[Arch], bool]
Objective = Callable[[list[Arch]], Sequence[float | Sequence[float]]]


def score_key(value: float) -> float:
    """Ranking key: NaN (a failed evaluation) ranks with -inf, below every real value."""
    return -math.inf if math.isnan(value) else value


def as_value(value: object) -> Value:
    """A float, or a tuple of floats for several objectives; a one-element sequence is its number.

    Raises SupernasError (and never TypeError) for anything else, so callers can explain it.
    """
    if isinstance(value, str | bytes):
        raise SupernasError(f"not a number: {value!r}")
    if isinstance(value, Sequence | np.ndarray):
        try:
            values = tuple(float(v) for v in np.asarray(value, dtype=object).ravel())
        except (TypeError, ValueError):
            raise SupernasError(f"not a number or a sequence of numbers: {value!r}") from None
        if not values:
            raise SupernasError("an empty sequence is not a value")
        return values[0] if len(values) == 1 else values
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SupernasError(f"not a number: {value!r}") from None


def value_key(value: Value) -> Value:
    """`score_key` of a value or of each objective of a vector value."""
    if isinstance(value, tuple):
        return tuple(score_key(v) for v in value)
    return score_key(value)


def n_objectives(value: Value) -> int:
    return len(value) if isinstance(value, tuple) else 1


def float_to_json(value: float) -> float | str:
    """Strict JSON has no inf/NaN, so those are written as the strings 'inf', '-inf', 'nan'."""
    return value if math.isfinite(value) else str(value)


def float_from_json(obj: float | str) -> float:
    return float(obj)


def value_to_json(value: Value) -> float | str | list[float | str]:
    if isinstance(value, tuple):
        return [float_to_json(v) for v in value]
    return float_to_json(value)


def value_from_json(obj: float | str | list[float | str]) -> Value:
    if isinstance(obj, list):
        return tuple(float_from_json(v) for v in obj)
    return float_from_json(obj)


class Strategy:
    """Base of all strategies: `ask()` proposes an arch, `tell(arch, value)` reports its value.

    Higher values are better; NaN (a failed evaluation) counts as -inf. A strategy with
    `multi_objective = True` also takes tuples (each objective maximised); the others refuse
    them with a SupernasError. Scikit-learn style:
    `__init__` stores (and checks) its arguments and nothing else; the state (RNG, population,
    ...) is created on first use, so a strategy built from a config can be restored with
    `load_state_dict` before it ever asks. The constraint is code, not state: pass the same one
    when restoring. Subclasses implement `_init_state`, `_ask`, `_tell`, `_get_state` and
    `_set_state`, and store every keyword option as an attribute of the same name.
    """

    name: ClassVar[str] = ""
    #: True when `_tell` accepts vector values (tuples of floats, one per objective).
    multi_objective: ClassVar[bool] = False
    #: draws of `_sample`/`_mutate` before a constraint is declared unsatisfiable.
    max_tries: ClassVar[int] = 1000

    def __init__(self, space: SearchSpace, seed: int = 0, constraint: Constraint | None = None):
        if not isinstance(space, SearchSpace):
            raise SupernasError(f"a strategy needs a SearchSpace, got {type(space).__name__}")
        try:
            self.seed = operator.index(seed)
        except TypeError:
            raise SupernasError(f"seed must be an integer, got {seed!r}") from None
        if constraint is not None and not callable(constraint):
            raise SupernasError("constraint must be a function arch -> bool")
        self.space = space
        self.constraint = constraint
        self._rng: np.random.Generator | None = None
        self._asks = 0
        self._tells = 0

    # -- parameters and lazy state ---------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """The constructor's options (seed included, space and constraint not), as stored."""
        sig = inspect.signature(type(self).__init__)
        skip = {"self", "space", "constraint"}
        return {
            p: getattr(self, p)
            for p, par in sig.parameters.items()
            if p not in skip and par.kind not in (par.VAR_POSITIONAL, par.VAR_KEYWORD)
        }

    @property
    def started(self) -> bool:
        """True once the strategy asked, was told, or was restored from a state dict."""
        return self._rng is not None

    @property
    def rng(self) -> np.random.Generator:
        self._start()
        assert self._rng is not None
        return self._rng

    def _start(self) -> None:
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
            self._asks = self._tells = 0
            self._init_state()

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({self.space.name!r}, {opts})"

    # -- the protocol ----------------------------------------------------------------------
    def ask(self) -> Arch | None:
        """The next arch to evaluate, or None when the strategy has nothing left to propose."""
        self._start()
        arch = self._ask()
        if arch is not None:
            self._asks += 1
        return arch

    def tell(self, arch: Arch, value: float | Sequence[float]) -> None:
        """Report `arch`'s value (higher is better; NaN or -inf for a failed evaluation).

        A sequence is one value per objective, all maximised; only strategies with
        `multi_objective = True` take more than one. NaN objectives arrive as -inf.
        """
        arch = self.space.validate(arch)
        try:
            v = as_value(value)
        except SupernasError:
            raise SupernasError(
                f"value for {arch} must be a number or a sequence of numbers, got {value!r}"
            ) from None
        if isinstance(v, tuple) and not self.multi_objective:
            raise SupernasError(
                f"strategy {self.name or type(self).__name__!r} is single-objective but was told "
                f"{len(v)} objectives; use a multi-objective strategy ("
                + ", ".join(n for n in list_strategies() if STRATEGIES.get(n).multi_objective)
                + ") or combine the objectives into one number"
            )
        self._start()
        self._tells += 1
        self._tell(arch, value_key(v))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this strategy is; strict-JSON-safe."""
        self._start()
        return {
            "strategy": self.name,
            "space": self.space.name,
            "params": self.get_params(),
            "rng": self.rng.bit_generator.state,
            "asks": self._asks,
            "tells": self._tells,
            "state": self._get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s output; the options must match the saved ones."""
        rng_state, inner = check_state(self, state, ("rng", "state"), "strategy")
        self._rng = None
        self._start()
        self.rng.bit_generator.state = rng_state
        self._asks, self._tells = int(state.get("asks", 0)), int(state.get("tells", 0))
        self._set_state(inner)

    # -- for subclasses --------------------------------------------------------------------
    def _init_state(self) -> None:
        """Create the fresh state (called once, after the RNG exists)."""

    def _ask(self) -> Arch | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _tell(self, arch: Arch, value: Value) -> None:
        """`arch` is validated and `value` has no NaN (failures arrive as -inf); `value` is a
        tuple only for `multi_objective` strategies."""

    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        """Overwrite the fresh state made by `_init_state` with a saved one."""

    def _feasible(self, arch: Arch) -> bool:
        return self.constraint is None or bool(self.constraint(arch))

    def _draw(self, draw: Callable[[], Arch]) -> Arch:
        for _ in range(self.max_tries):
            arch = draw()
            if self._feasible(arch):
                return arch
        raise SupernasError(
            f"no architecture satisfying the constraints found in {self.max_tries} draws; "
            "loosen the constraints"
        )

    def _sample(self) -> Arch:
        """A uniform sample that satisfies the constraint."""
        return self._draw(lambda: self.space.sample(self.rng))

    def _mutate(self, arch: Arch) -> Arch:
        """`arch` with exactly one choice changed, satisfying the constraint."""
        return self._draw(lambda: self.space.mutate(arch, self.rng))

    def _pick_unseen(self, seen: Container[Arch]) -> Arch | None:
        """A uniform choice among the feasible archs not in `seen`, None if there is none.

        The exact fallback once rejection sampling keeps hitting `seen` (a nearly exhausted
        small space); it enumerates, so callers use it only up to `space.max_enumerate`.
        """
        left = [a for a in self.space.enumerate() if a not in seen and self._feasible(a)]
        return left[int(self.rng.integers(len(left)))] if left else None

    def _arch_to_json(self, arch: Arch) -> dict[str, Any]:
        return arch.to_json()

    def _arch_from_json(self, obj: dict[str, Any]) -> Arch:
        return self.space.validate(Arch.from_json(obj))


# -- registry ------------------------------------------------------------------------------
STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def check_state(
    strategy: Any, state: dict[str, Any], keys: tuple[str, ...], what: str
) -> tuple[Any, ...]:
    """Check a saved state's strategy name, space and options against `strategy`.

    Returns `state[k]` for each of `keys`. Restoring into a strategy with other options
    would silently continue a different search, so any mismatch is an error naming it.
    """
    try:
        name, space, params = state["strategy"], state["space"], state["params"]
        values = tuple(state[k] for k in keys)
    except (KeyError, TypeError):
        raise SupernasError(f"not a {what} state dict (see its state_dict())") from None
    if name != strategy.name or space != strategy.space.name:
        raise SupernasError(
            f"state of strategy {name!r} on space {space!r} cannot be loaded into "
            f"{strategy.name!r} on space {strategy.space.name!r}"
        )
    mine = json.loads(json.dumps(strategy.get_params()))
    if params != mine:
        diff = sorted(k for k in set(params) | set(mine) if params.get(k) != mine.get(k))
        raise SupernasError(
            f"state was saved with {strategy.name} options "
            + ", ".join(f"{k}={params.get(k)!r}" for k in diff)
            + "; this strategy has "
            + ", ".join(f"{k}={mine.get(k)!r}" for k in diff)
        )
    return values


def class_registrar(registry: Registry[Any], name: str) -> Callable[[type], type]:
    """Class decorator factory: register under `name` and set `cls.name` to it."""

    def deco(cls: type) -> type:
        registry.register(name)(cls)
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return deco


def create_checked(registry: Registry[Any], name: str, space: SearchSpace, **options: Any) -> Any:
    """Build `name` on `space`; unknown names and options are errors listing the valid ones."""
    cls = registry.get(name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "space")]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise SupernasError(
            f"unknown option(s) {', '.join(unknown)} for strategy {name!r}; valid: "
            + ", ".join(valid)
        )
    return registry.create(name, space, **options)


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: register a Strategy subclass under `name` (also sets `cls.name`)."""
    return class_registrar(STRATEGIES, name)


def get_strategy(name: str, space: SearchSpace, **options: Any) -> Strategy:
    """Build strategy `name` on `space`; unknown names and options list the valid ones."""
    return create_checked(STRATEGIES, name, space, **options)


def list_strategies() -> list[str]:
    return STRATEGIES.names()


# -- results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trial:
    """One evaluated arch; `step` is its position in evaluation order (0-based).

    `value` is a float, or a tuple of floats (one per objective, all maximised).
    """

    arch: Arch
    value: Value
    step: int

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "arch": self.arch.to_json(), "value": value_to_json(self.value)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Trial:
        try:
            return cls(Arch.from_json(obj["arch"]), value_from_json(obj["value"]), int(obj["step"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SupernasError(f"not a trial record (need step, arch, value): {exc}") from None


@dataclass
class SearchResult:
    """The trials of one search, in evaluation order. NaN values rank with -inf.

    With vector values (several objectives) there is no single best: `best`, `top_k` and
    `trajectory` raise a SupernasError, and `pareto_front()` gives the non-dominated trials.
    """

    trials: list[Trial] = field(default_factory=list)

    FORMAT: ClassVar[str] = "supernas.search_result/1"

    def __len__(self) -> int:
        return len(self.trials)

    @property
    def n_objectives(self) -> int:
        """Objectives per value (1 for plain numbers; 1 when there are no trials)."""
        return max((n_objectives(t.value) for t in self.trials), default=1)

    def _single(self, what: str) -> None:
        if self.n_objectives > 1:
            raise SupernasError(
                f"the search has {self.n_objectives} objectives, so it has no single {what}; "
                "use pareto_front() (or rank the trials by one objective yourself)"
            )

    def pareto_front(self) -> list[Trial]:
        """The non-dominated trials (every objective maximised), distinct archs, in order.

        A trial is dominated when another is at least as good in every objective and better
        in one; NaN counts as -inf, so failed trials appear only if nothing else does. With
        one objective this is every distinct arch sharing the best value.
        """
        first: dict[Arch, Trial] = {}
        for t in self.trials:
            first.setdefault(t.arch, t)
        trials = list(first.values())
        points = [value_key(t.value) for t in trials]
        points = [p if isinstance(p, tuple) else (p,) for p in points]
        return [trials[i] for i in non_dominated(points)]

    @property
    def best(self) -> Trial:
        """The best trial; the earliest among equals. Single-objective results only."""
        self._single("best trial")
        if not self.trials:
            raise SupernasError("the search has no trials: nothing was evaluated")
        return max(self.trials, key=lambda t: score_key(t.value))

    def top_k(self, k: int) -> list[Trial]:
        """The k best distinct archs, best first (earlier first among equals; NaN/-inf last)."""
        self._single("ranking")
        ranked = sorted(self.trials, key=lambda t: -score_key(t.value))
        out: list[Trial] = []
        seen: set[Arch] = set()
        for t in ranked:
            if len(out) >= k:
                break
            if t.arch not in seen:
                seen.add(t.arch)
                out.append(t)
        return out

    def trajectory(self) -> list[float]:
        """Best value so far after each evaluation (-inf until a real value arrives)."""
        self._single("trajectory")
        out, best = [], -math.inf
        for t in self.trials:
            best = max(best, score_key(t.value))
            out.append(best)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": self.FORMAT, "trials": [t.to_json() for t in self.trials]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SearchResult:
        if not isinstance(obj, dict) or obj.get("format") != cls.FORMAT:
            raise SupernasError(f"not a search result (expected format {cls.FORMAT!r})")
        return cls([Trial.from_json(t) for t in obj.get("trials", [])])


# -- the loop ------------------------------------------------------------------------------
def run_search(
    strategy: Strategy,
    objective: Objective,
    budget: int,
    *,
    on_trial: Callable[[Trial], None] | None = None,
    resume: SearchResult | None = None,
) -> SearchResult:
    """Ask/tell until `budget` distinct archs are evaluated; return all trials in order.

    `objective` maps a list of archs to one value each: a number, or a sequence of numbers
    (one per objective, all maximised) for multi-objective strategies; every value must have
    the same number of objectives.

    Each new arch costs one unit of budget (one call `objective([arch])`); an arch asked again
    is told its cached value for free. The loop stops when the budget is spent, the strategy
    returns None, or after `20 * budget + 1000` asks (a strategy that only repeats itself).
    `on_trial` runs after each new trial has been told, so saving `strategy.state_dict()` and
    the result so far there is an exact checkpoint.

    `resume`: the trials of an interrupted run; they count toward `budget` and are never
    re-evaluated. Two ways to resume:
    - exact: restore the strategy with `load_state_dict` (state saved in `on_trial`) and pass
      `resume`; a restored strategy is not told the trials again, and the run continues with
      exactly the asks the uninterrupted run would have made.
    - replay: pass a fresh strategy; the trials are told to it in order (no objective calls).
      It learns from them, but its RNG starts anew, so later asks differ from the
      uninterrupted run's.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise SupernasError(f"budget must be a positive integer (archs to evaluate): {budget!r}")
    result = SearchResult()
    cache: dict[Arch, Value] = {}
    n_obj: int | None = None
    if resume is not None:
        replay = not strategy.started
        for t in resume.trials:
            n_obj = _check_objectives(n_obj, t.value, t.arch)
            result.trials.append(t)
            cache[t.arch] = t.value
            if replay:
                strategy.tell(t.arch, t.value)
    max_asks, asks = 20 * budget + 1000, 0
    while len(result.trials) < budget and asks < max_asks:
        arch = strategy.ask()
        asks += 1
        if arch is None:
            break
        if arch not in strategy.space:
            raise SupernasError(f"strategy {strategy.name!r} proposed {arch}, not in the space")
        if arch in cache:
            strategy.tell(arch, cache[arch])
            continue
        values = list(objective([arch]))
        if len(values) != 1:
            raise SupernasError(f"objective returned {len(values)} values for 1 arch")
        try:
            value = as_value(values[0])
        except SupernasError:
            raise SupernasError(
                f"objective returned {values[0]!r} for {arch}; expected a number or a sequence "
                "of numbers, one per objective (NaN or -inf for a failed evaluation)"
            ) from None
        n_obj = _check_objectives(n_obj, value, arch)
        trial = Trial(arch, value, len(result.trials))
        result.trials.append(trial)
        cache[arch] = value
        strategy.tell(arch, value)
        if on_trial is not None:
            on_trial(trial)
    return result


def _check_objectives(n_obj: int | None, value: Value, arch: Arch) -> int:
    n = n_objectives(value)
    if n_obj is not None and n != n_obj:
        raise SupernasError(f"the value for {arch} has {n} objective(s); earlier ones had {n_obj}")
    return n
