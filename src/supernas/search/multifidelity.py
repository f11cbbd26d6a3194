"""Multi-fidelity search: successive halving and Hyperband (Li et al. 2018, JMLR), with
learning-curve extrapolation (after Domhan et al. 2015) to stop hopeless runs early.

The fidelity is an integer resource, typically training epochs. These strategies need an
objective of (arch, resource), so they have their own protocol and registry (`MULTIFIDELITY`)
instead of the single-fidelity `STRATEGIES`: told only full-fidelity values, halving has
nothing to halve and would be plain random search under a misleading name.

Protocol: `ask() -> Job(arch, resource)`, then `tell(arch, resource, value_or_curve)`, where
a curve holds the values after epochs 1..n (n == resource, or fewer when the run was stopped).
`run_multifidelity` drives it; its budget is the total resource spent (epochs, summed over
runs). Higher values are better; NaN (a failed run) ranks with -inf.
"""

from __future__ import annotations

import inspect
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from supernas.errors import SupernasError
from supernas.registry import Registry
from supernas.search.base import (
    Constraint,
    SearchResult,
    Trial,
    check_state,
    class_registrar,
    create_checked,
    float_from_json,
    float_to_json,
    score_key,
)
from supernas.search.random import RandomSearch
from supernas.space import Arch, SearchSpace

#: objective(arch, resource): the value at that resource, the curve up to it, or an iterator
#: yielding the value after each epoch (lets the search stop a run between epochs).
FidelityObjective = Callable[[Arch, int], float | Sequence[float] | Iterator[float]]

_EXPONENTS = np.geomspace(0.05, 3.0, 24)  # power-law exponents tried by the extrapolation


class Job(NamedTuple):
    """One unit of work: train `arch` for `resource` epochs (unpacks as `arch, resource`)."""

    arch: Arch
    resource: int


def extrapolate_curve(curve: Sequence[float], resource: int, z: float = 2.0) -> float:
    """An optimistic guess of the curve's value at `resource` (epochs start at 1).

    Fits the saturating power law y = a - b * t**-c by least squares (linear in a, b for each c
    on a grid; small c behaves like log growth) and returns the highest prediction among the
    fits nearly as good as the best (twice its squared error, or an RMS error of 1% of the
    curve's range), plus `z` residual standard deviations for noise, and never
    less than the best value seen. Fast-saturating curves (exponential) are over-predicted,
    which errs on the safe side: a good run is not stopped by a wrong fit.
    """
    y = np.asarray(curve, dtype=float)
    if len(y) < 3 or not np.isfinite(y).all():
        return math.inf
    t = np.arange(1, len(y) + 1) / resource
    preds, sses = [], []
    for c in _EXPONENTS:
        design = np.stack([np.ones_like(t), -(t**-c)], axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        sses.append(float(((design @ coef - y) ** 2).sum()))
        preds.append(float(coef[0] - coef[1]))  # t = resource / resource = 1
    best = min(sses)
    floor = len(y) * (0.01 * float(np.ptp(y))) ** 2  # fits within 1% of the range are as good
    good = [p for p, s in zip(preds, sses, strict=True) if s <= 2.0 * best + floor]
    sigma = math.sqrt(best / max(len(y) - 3, 1))
    return max(max(good) + z * sigma, float(y.max()))


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SupernasError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class FidelityStrategy:
    """Brackets of successive halving over fresh random archs; subclasses order the brackets.

    A bracket s starts n archs at resource r = max_resource / eta**s; after each rung the best
    1/eta of the runs (by value at that resource; failed and stopped runs never) go on at eta
    times the resource, up to max_resource (Li et al. 2018, Algorithm 1). Rungs are
    synchronous: while runs of a rung are pending, `ask` returns None.

    Extrapolation (`extrapolate=True`): once `top_k` runs finished at max_resource, a run with
    at least `min_points` epochs whose optimistic extrapolation to max_resource (see
    `extrapolate_curve`) is below the top_k-th best finished value is stopped: mid-run when the
    objective yields epoch by epoch, otherwise by not promoting it.

    Same conventions as `Strategy`: `__init__` only stores options, state is lazy, and
    `state_dict` is strict JSON for an exact resume. New archs come from `RandomSearch` under
    the constraint (no repeats while the space has unseen archs); None once it is exhausted.
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        *,
        max_resource: int,
        min_resource: int = 1,
        eta: int = 3,
        extrapolate: bool = True,
        top_k: int = 3,
        min_points: int = 4,
    ) -> None:
        if not isinstance(space, SearchSpace):
            raise SupernasError(f"a strategy needs a SearchSpace, got {type(space).__name__}")
        try:
            self.seed = operator.index(seed)
        except TypeError:
            raise SupernasError(f"seed must be an integer, got {seed!r}") from None
        self.space, self.constraint = space, constraint
        self.max_resource = _int("max_resource", max_resource, 1)
        self.min_resource = _int("min_resource", min_resource, 1)
        if min_resource > max_resource:
            raise SupernasError(f"min_resource ({min_resource}) exceeds max_resource")
        self.eta = _int("eta", eta, 2)
        if not isinstance(extrapolate, bool):
            raise SupernasError(f"extrapolate must be true or false, got {extrapolate!r}")
        self.extrapolate = extrapolate
        self.top_k = _int("top_k", top_k, 1)
        self.min_points = _int("min_points", min_points, 3)
        self._sampler: RandomSearch | None = None

    @property
    def s_max(self) -> int:
        """The most aggressive bracket: largest s with min_resource * eta**s <= max_resource."""
        s = 0
        while self.min_resource * self.eta ** (s + 1) <= self.max_resource:
            s += 1
        return s

    def rungs(self, s: int) -> list[tuple[int, int]]:
        """Bracket s as (archs, resource) per rung, by Hyperband's formulas."""
        n = -(-(self.s_max + 1) * self.eta**s // (s + 1))  # ceil
        return [
            (n // self.eta**i, max(1, round(self.max_resource * self.eta**i / self.eta**s)))
            for i in range(s + 1)
        ]

    def _bracket(self, k: int) -> int:  # pragma: no cover - abstract
        """Which bracket s the k-th bracket (0-based) is."""
        raise NotImplementedError

    # -- parameters and lazy state ---------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        skip = {"self", "space", "constraint"}
        return {
            p: getattr(self, p)
            for p in inspect.signature(type(self).__init__).parameters
            if p not in skip
        }

    @property
    def started(self) -> bool:
        return self._sampler is not None

    def _start(self) -> None:
        if self._sampler is None:
            self._sampler = RandomSearch(self.space, self.seed, self.constraint)
            self._k = 0  # brackets started
            self._s: int | None = None  # current bracket (None: start one at the next ask)
            self._rung = 0
            self._todo: list[Arch] = []  # this rung's archs not asked yet
            self._pending: list[Arch] = []  # asked, not told
            self._told: list[tuple[Arch, float, bool]] = []  # (arch, value, stopped)
            self._finals: list[float] = []  # values of runs finished at max_resource

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({self.space.name!r}, {opts})"

    # -- the protocol ----------------------------------------------------------------------
    def ask(self) -> Job | None:
        """The next run, or None: waiting for pending tells, or the space is exhausted."""
        self._start()
        assert self._sampler is not None
        if self._s is None:
            if self._pending:
                return None
            s = self._bracket(self._k)
            archs = []
            for _ in range(self.rungs(s)[0][0]):
                arch = self._sampler.ask()
                if arch is None:
                    break
                archs.append(arch)
            if not archs:
                return None
            self._k += 1
            self._s, self._rung, self._todo, self._told = s, 0, archs, []
        if not self._todo:
            return None
        arch = self._todo.pop(0)
        self._pending.append(arch)
        return Job(arch, self.resource)

    def put_back(self, job: Job) -> None:
        """Un-ask a pending job that will not run now (the budget ran out): asked again next."""
        self._start()
        if job.arch not in self._pending or job.resource != self.resource:
            raise SupernasError(f"{job.arch} at resource {job.resource} is not pending")
        self._pending.remove(job.arch)
        self._todo.insert(0, job.arch)

    @property
    def resource(self) -> int:
        """The resource of the current rung."""
        self._start()
        return 0 if self._s is None else self.rungs(self._s)[self._rung][1]

    def should_stop(self, arch: Arch, curve: Sequence[float]) -> bool:
        """Whether a run with this partial curve cannot reach the top_k-th finished value."""
        self._start()
        if (
            not self.extrapolate
            or len(curve) < self.min_points
            or len(curve) >= self.max_resource
            or len(self._finals) < self.top_k
        ):
            return False
        reference = sorted(self._finals, reverse=True)[self.top_k - 1]
        return extrapolate_curve(curve, self.max_resource) < reference

    def tell(
        self, arch: Arch, resource: int, result: float | Sequence[float], *, stopped: bool = False
    ) -> bool:
        """Report a pending run: its value, or its curve (shorter than `resource` if stopped).

        Returns whether the run counts as stopped (told so, a short curve, or a full curve at
        a lower rung whose extrapolation is hopeless: it is then not promoted).
        """
        self._start()
        arch = self.space.validate(arch)
        if arch not in self._pending or resource != self.resource:
            raise SupernasError(f"{arch} at resource {resource} was not asked (or already told)")
        if isinstance(result, str | bytes):
            raise SupernasError(f"result for {arch} must be a number or a curve, got {result!r}")
        if isinstance(result, Sequence | np.ndarray):
            curve = [_number(arch, v) for v in result]
            if len(curve) > resource:
                raise SupernasError(f"curve of {len(curve)} values for resource {resource}")
            value = curve[-1] if curve else math.nan
            stopped = stopped or len(curve) < resource or self.should_stop(arch, curve)
        else:
            value = _number(arch, result)
        self._pending.remove(arch)
        self._told.append((arch, score_key(value), stopped))
        if resource == self.max_resource and not stopped and math.isfinite(value):
            self._finals.append(value)
        if not self._todo and not self._pending:
            self._promote()
        return stopped

    def _promote(self) -> None:
        """The rung is complete: the best runs go on to the next rung, or the bracket ends."""
        assert self._s is not None
        plan = self.rungs(self._s)
        if self._rung + 1 >= len(plan):
            self._s = None
            return
        alive = [(a, v) for a, v, stopped in self._told if not stopped and v > -math.inf]
        ranked = sorted(alive, key=lambda av: -av[1])  # stable: earlier first among equals
        self._todo = [a for a, _ in ranked[: plan[self._rung + 1][0]]]
        self._told = []
        self._rung += 1
        if not self._todo:
            self._s = None

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly; strict-JSON-safe."""
        self._start()
        assert self._sampler is not None
        return {
            "strategy": self.name,
            "space": self.space.name,
            "params": self.get_params(),
            "sampler": self._sampler.state_dict(),
            "state": {
                "k": self._k,
                "s": self._s,
                "rung": self._rung,
                "todo": [a.to_json() for a in self._todo],
                "pending": [a.to_json() for a in self._pending],
                "told": [[a.to_json(), float_to_json(v), s] for a, v, s in self._told],
                "finals": [float_to_json(v) for v in self._finals],
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s output; the options must match the saved ones."""
        sampler, inner = check_state(self, state, ("sampler", "state"), "multi-fidelity strategy")
        self._sampler = None
        self._start()
        assert self._sampler is not None
        self._sampler.load_state_dict(sampler)
        arch = self._arch_from_json
        self._k, self._s, self._rung = int(inner["k"]), inner["s"], int(inner["rung"])
        self._todo = [arch(a) for a in inner["todo"]]
        self._pending = [arch(a) for a in inner["pending"]]
        self._told = [(arch(a), float_from_json(v), bool(s)) for a, v, s in inner["told"]]
        self._finals = [float_from_json(v) for v in inner["finals"]]

    def _arch_from_json(self, obj: dict[str, Any]) -> Arch:
        return self.space.validate(Arch.from_json(obj))


# -- registry ------------------------------------------------------------------------------
MULTIFIDELITY: Registry[type[FidelityStrategy]] = Registry("multi-fidelity strategy")


def register_multifidelity(
    name: str,
) -> Callable[[type[FidelityStrategy]], type[FidelityStrategy]]:
    """Class decorator: register a FidelityStrategy subclass under `name`."""
    return class_registrar(MULTIFIDELITY, name)


def get_multifidelity(name: str, space: SearchSpace, **options: Any) -> FidelityStrategy:
    """Build multi-fidelity strategy `name`; unknown names and options list the valid ones."""
    return create_checked(MULTIFIDELITY, name, space, **options)


def list_multifidelity() -> list[str]:
    return MULTIFIDELITY.names()


@register_multifidelity("successive_halving")
class SuccessiveHalving(FidelityStrategy):
    """Successive halving (Jamieson & Talwalkar 2016), repeated: always the bracket s_max.

    eta**s_max archs start at the smallest resource; the cheapest way to look at many archs,
    right when early values rank archs as their final values do.
    """

    def _bracket(self, k: int) -> int:
        return self.s_max


@register_multifidelity("hyperband")
class Hyperband(FidelityStrategy):
    """Hyperband (Li et al. 2018): brackets s_max, s_max - 1, ..., 0, then again.

    Hedges against misleading early values: the last bracket trains few archs to max_resource
    from the start, so a slow starter is not always halved away.
    """

    def _bracket(self, k: int) -> int:
        return self.s_max - k % (self.s_max + 1)


# -- results and the loop ------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One run: `arch` trained for `resource`; `curve` when the objective gave one.

    `value` is the last value reached (at `resource` unless `stopped`); `cost` is the resource
    charged to the budget for it.
    """

    step: int
    arch: Arch
    resource: int
    value: float
    curve: tuple[float, ...] | None
    stopped: bool
    cost: int

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "arch": self.arch.to_json(),
            "resource": self.resource,
            "value": float_to_json(self.value),
            "curve": None if self.curve is None else [float_to_json(v) for v in self.curve],
            "stopped": self.stopped,
            "cost": self.cost,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Run:
        try:
            curve = obj["curve"]
            return cls(
                int(obj["step"]),
                Arch.from_json(obj["arch"]),
                int(obj["resource"]),
                float_from_json(obj["value"]),
                None if curve is None else tuple(float_from_json(v) for v in curve),
                bool(obj["stopped"]),
                int(obj["cost"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SupernasError(f"not a run record: {exc}") from None


@dataclass
class MultiFidelityResult:
    """All runs of a multi-fidelity search in order; `finished` ones reached max_resource."""

    max_resource: int
    runs: list[Run] = field(default_factory=list)

    FORMAT: ClassVar[str] = "supernas.multifidelity_result/1"

    @property
    def spent(self) -> int:
        return sum(r.cost for r in self.runs)

    @property
    def early_stops(self) -> int:
        return sum(r.stopped for r in self.runs)

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.resource == self.max_resource and not r.stopped]

    @property
    def best(self) -> Run:
        """The best finished run; the earliest among equals."""
        if not self.finished:
            raise SupernasError("no run reached max_resource: raise the budget")
        return max(self.finished, key=lambda r: score_key(r.value))

    def to_search_result(self) -> SearchResult:
        """The finished runs as a single-fidelity result (top_k, trajectory, reports)."""
        return SearchResult([Trial(r.arch, r.value, i) for i, r in enumerate(self.finished)])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "max_resource": self.max_resource,
            "runs": [r.to_json() for r in self.runs],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> MultiFidelityResult:
        if not isinstance(obj, dict) or obj.get("format") != cls.FORMAT:
            raise SupernasError(f"not a multi-fidelity result (expected format {cls.FORMAT!r})")
        return cls(int(obj["max_resource"]), [Run.from_json(r) for r in obj.get("runs", [])])


def _number(arch: Arch, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SupernasError(
            f"objective returned {value!r} for {arch}; expected a number "
            "(NaN or -inf for a failed run)"
        ) from None


def _evaluate(
    strategy: FidelityStrategy, objective: FidelityObjective, arch: Arch, resource: int
) -> tuple[float | list[float], bool]:
    """Call the objective; consume an iterator epoch by epoch, stopping hopeless runs."""
    out = objective(arch, resource)
    if isinstance(out, Iterator):
        curve: list[float] = []
        stopped = False
        try:
            for v in out:
                curve.append(_number(arch, v))
                if len(curve) >= resource:
                    break
                if strategy.should_stop(arch, curve):
                    stopped = True
                    break
        finally:
            close = getattr(out, "close", None)
            if close is not None:
                close()  # a generator's training loop ends here
        if len(curve) < resource and not stopped:
            raise SupernasError(f"objective yielded {len(curve)} values for resource {resource}")
        return curve, stopped
    if isinstance(out, Sequence | np.ndarray) and not isinstance(out, str | bytes):
        curve = [_number(arch, v) for v in out]
        if len(curve) != resource:
            raise SupernasError(
                f"objective returned a curve of {len(curve)} values for resource {resource}"
            )
        return curve, False
    return _number(arch, out), False


def run_multifidelity(
    strategy: FidelityStrategy,
    objective: FidelityObjective,
    budget: int,
    *,
    resumable: bool = False,
    on_run: Callable[[Run], None] | None = None,
    resume: MultiFidelityResult | None = None,
) -> MultiFidelityResult:
    """Run `strategy` until `budget` resource units (epochs, summed over runs) are spent.

    `objective(arch, resource)` returns the value at that resource, the curve (one value per
    epoch, 1..resource), or an iterator yielding the value after each epoch; only the last
    lets extrapolation stop a run mid-way (the iterator is closed, and only the epochs
    consumed are charged). Each run costs its epochs, or with `resumable=True` only the
    epochs beyond those already paid for that arch (the objective continues from its own
    checkpoint but still reports the curve from epoch 1). The budget is never exceeded: the
    search ends before a run that would not fit, or when the strategy returns None.

    `on_run` runs after each run is told: saving `strategy.state_dict()` and the result there
    is an exact checkpoint; to continue, restore the strategy with `load_state_dict` and pass
    the saved result as `resume`.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise SupernasError(f"budget must be a positive integer (resource units): {budget!r}")
    result = MultiFidelityResult(strategy.max_resource)
    paid: dict[Arch, int] = {}
    if resume is not None:
        if not strategy.started:
            raise SupernasError("resume needs the strategy restored with load_state_dict first")
        for run in resume.runs:
            result.runs.append(run)
            used = len(run.curve) if run.curve is not None else run.resource
            paid[run.arch] = max(paid.get(run.arch, 0), used)
    spent = result.spent
    while True:
        job = strategy.ask()
        if job is None:
            break
        arch, resource = job
        need = resource - paid.get(arch, 0) if resumable else resource
        if spent + max(need, 0) > budget:
            strategy.put_back(job)
            break
        out, stopped = _evaluate(strategy, objective, arch, resource)
        stopped = strategy.tell(arch, resource, out, stopped=stopped)
        if isinstance(out, list):
            curve: tuple[float, ...] | None = tuple(out)
            used, value = len(out), out[-1] if out else math.nan
        else:
            curve, used, value = None, resource, out
        cost = max(0, used - paid.get(arch, 0)) if resumable else used
        paid[arch] = max(paid.get(arch, 0), used)
        spent += cost
        run = Run(len(result.runs), arch, resource, value, curve, stopped, cost)
        result.runs.append(run)
        if on_run is not None:
            on_run(run)
    return result
