"""Search strategies benchmarked on tables: many seeds, regret curves, Pareto fronts.

Why: on a table every query is a dictionary lookup, so a strategy's sample efficiency can be
measured over many seeds and compared with published numbers (NB201: guide by
`cifar10_valid`, report `cifar10_test`). Each new arch costs one unit of budget; archs that
break a constraint or are missing from the table are refused by the strategy's constraint
before the query, so they cost nothing.

Multi-objective (`minimize` given, or several objectives): every objective is maximised, the
`minimize` columns as their negation, and each seed's result is the Pareto front of the
archs it queried, with its hypervolume. The hypervolume's reference point is the worst value
of each objective over the feasible archs of the table (lowest accuracy, highest latency), so
it is in the columns' own units and comparable across strategies on the same table and
constraints; `oracle.hypervolume` is the hypervolume of the table's true front.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from supernas.bench.table import ColumnConstraint, Table, load_tables, parse_column_constraint
from supernas.errors import SupernasError
from supernas.search import STRATEGIES, get_strategy, run_search

try:  # being added to supernas.search.pareto; a local copy until it lands
    from supernas.search.pareto import hypervolume, non_dominated
except ImportError:  # pragma: no cover
    from supernas.bench._pareto_fallback import hypervolume, non_dominated
from supernas.space import Arch

#: strategies whose ask ignores the told values, so they serve several objectives as well.
_VALUE_BLIND = {"random", "exhaustive"}


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single seed)."""
    a = np.asarray(xs, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _curve(rows: list[list[float]]) -> dict[str, list[float]]:
    """Mean/std per query over seeds; a run that stopped early keeps its last value."""
    n = max(len(r) for r in rows)
    a = np.array([r + [r[-1]] * (n - len(r)) for r in rows], dtype=np.float64)
    std = a.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(n)
    return {"mean": a.mean(axis=0).tolist(), "std": std.tolist()}


def supports_multi_objective(strategy: str) -> bool:
    """True for strategies that accept a vector of values (flag `multi_objective`) or
    ignore the values altogether (random, exhaustive)."""
    cls = STRATEGIES.get(strategy)
    return strategy in _VALUE_BLIND or bool(getattr(cls, "multi_objective", False))


def _as_seeds(seeds: int | Iterable[int]) -> list[int]:
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out:
        raise SupernasError("no seeds: pass a positive number of seeds")
    return out


def _front(points: np.ndarray) -> list[int]:
    """Indices of the non-dominated rows (all objectives maximised)."""
    return [int(i) for i in non_dominated(points)]


def table_search(
    tables: Table | Sequence[str | Path],
    objective: str | Sequence[str],
    report: str | None = None,
    constraints: Sequence[str | ColumnConstraint] = (),
    minimize: Sequence[str] = (),
    strategy: str = "random",
    budget: int = 100,
    seeds: int | Iterable[int] = 10,
    strategy_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `strategy` once per seed on the table's space; return per-seed and summary results.

    Single objective: `mean`/`std` are over the seeds' `report` values (the report column of
    the best arch found by `objective`); `oracle` is the best feasible arch of the whole table
    by `objective`, so `oracle.report - report` is the regret (it can be negative when the
    guide and report columns disagree, e.g. validation vs test accuracy).
    Multi-objective: `mean`/`std` are over the seeds' hypervolumes (module doc).
    """
    table = tables if isinstance(tables, Table) else load_tables(list(tables))
    objectives = [objective] if isinstance(objective, str) else list(objective)
    minimize = [minimize] if isinstance(minimize, str) else list(minimize)
    if not objectives:
        raise SupernasError("no objective column given")
    columns = objectives + minimize
    if len(set(columns)) != len(columns):
        raise SupernasError(f"a column is given twice among the objectives: {columns}")
    report = report or objectives[0]
    multi = len(columns) > 1
    if multi and not supports_multi_objective(strategy):
        raise SupernasError(
            f"strategy {strategy!r} optimises one objective; for several objectives use a "
            "multi-objective strategy (nsga2, nsga3) or random"
        )
    seeds = _as_seeds(seeds)
    options = dict(strategy_options or {})
    space = table.space()
    lookups = [table.arch_values(c) for c in columns]
    signs = [1.0] * len(objectives) + [-1.0] * len(minimize)
    guide, report_of = lookups[0], table.arch_values(report)
    cons = [c if callable(c) else parse_column_constraint(c, table) for c in constraints]

    def ok(arch: Arch) -> bool:
        return arch in guide and all(c(arch) for c in cons)

    feasible = [a for a in guide if ok(a)]
    if not feasible:
        raise SupernasError(
            "no arch of the table satisfies the constraints: "
            + ", ".join(getattr(c, "text", repr(c)) for c in cons)
        )
    # A table covering the whole space without constraints needs no predicate (faster asks).
    predicate: Callable[[Arch], bool] | None = None if not cons and len(guide) == space.size else ok

    def vector(arch: Arch) -> tuple[float, ...]:
        return tuple(s * lk[arch] for s, lk in zip(signs, lookups, strict=True))

    def score(archs: list[Arch]) -> list[Any]:
        for a in archs:
            if not ok(a):  # a bug in the strategy: it must honour its constraint
                raise SupernasError(f"strategy {strategy!r} proposed {a}, which is infeasible")
        return [vector(a) if multi else guide[a] for a in archs]

    best = max(feasible, key=lambda a: guide[a])  # first in table order among equals
    oracle: dict[str, Any] = {
        "arch": str(best),
        "objective": guide[best],
        "report": report_of[best],
        "report_max": max(report_of[a] for a in feasible),
    }
    reference: list[float] = []
    if multi:
        all_points = np.array([vector(a) for a in feasible])
        reference = all_points.min(axis=0).tolist()
        true_front = _front(all_points)
        true_front.sort(key=lambda i: -all_points[i][0])
        oracle["front"] = [_point(feasible[i], columns, lookups) for i in true_front]
        oracle["hypervolume"] = float(hypervolume(all_points[true_front], reference))

    runs, seconds = [], []
    for seed in seeds:
        t0 = time.perf_counter()
        strat = get_strategy(strategy, space, seed=seed, constraint=predicate, **options)
        result = run_search(strat, score, budget)
        seconds.append(time.perf_counter() - t0)
        archs = [t.arch for t in result.trials]
        run, incumbent = _seed_result(seed, archs, guide, report_of, oracle["report"])
        run["feasible"] = all(c(incumbent) for c in cons)  # checked, not assumed
        if multi:
            pts = np.array([vector(a) for a in archs])
            idx = sorted(_front(pts), key=lambda i: -pts[i][0])
            run["front"] = [_point(archs[i], columns, lookups) for i in idx]
            run["hypervolume"] = float(hypervolume(pts[idx], reference))
        runs.append(run)

    reports = [r["report"] for r in runs]
    out: dict[str, Any] = {
        "objective": objectives[0] if len(objectives) == 1 else objectives,
        "report_column": report,
        "minimize": minimize,
        "constraints": [getattr(c, "text", repr(c)) for c in cons],
        "strategy": strategy,
        "strategy_options": options,
        "budget": budget,
        "table_archs": len(guide),
        "feasible_archs": len(feasible),
        "oracle": oracle,
    }
    if multi:
        out["mean"], out["std"] = _mean_std([r["hypervolume"] for r in runs])
        out["reference"] = dict(
            zip(columns, [s * r for s, r in zip(signs, reference, strict=True)], strict=True)
        )
        out["report_mean"], out["report_std"] = _mean_std(reports)
    else:
        out["mean"], out["std"] = _mean_std(reports)
    regret = _mean_std([oracle["report"] - v for v in reports])
    out["regret"] = {"mean": regret[0], "std": regret[1]}
    out["feasible_fraction"] = sum(r["feasible"] for r in runs) / len(runs)
    out["regret_curve"] = _curve([r["regret_trajectory"] for r in runs])
    out["seconds_per_run"] = float(np.mean(seconds))
    out["seeds"] = runs
    return out


def _point(arch: Arch, columns: list[str], lookups: list[dict[Arch, float]]) -> dict[str, Any]:
    """One front member in the columns' own units (minimised ones not negated)."""
    values = {c: lk[arch] for c, lk in zip(columns, lookups, strict=True)}
    return {"arch": str(arch), "values": values}


def _seed_result(
    seed: int,
    archs: list[Arch],
    guide: dict[Arch, float],
    report_of: dict[Arch, float],
    oracle_report: float,
) -> tuple[dict[str, Any], Arch]:
    """Incumbent (best by the guide, earliest among equals) after each query."""
    if not archs:
        raise SupernasError("the strategy proposed no arch")
    inc, traj, rep = archs[0], [], []
    for a in archs:
        if guide[a] > guide[inc]:
            inc = a
        traj.append(guide[inc])
        rep.append(report_of[inc])
    run = {
        "seed": seed,
        "best_arch": str(inc),
        "objective": guide[inc],
        "report": report_of[inc],
        "queries": len(archs),
        "trajectory": traj,
        "report_trajectory": rep,
        "regret_trajectory": [oracle_report - v for v in rep],
    }
    return run, inc
