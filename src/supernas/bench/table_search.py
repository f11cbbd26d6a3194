"""Search strategies benchmarked on tables: many seeds, regret curves, Pareto fronts.

Why: on a table every query is a dictionary lookup, so a strategy's sample efficiency can be
measured over many seeds and compared with published numbers (NB201: guide by
`cifar10_valid`, report `cifar10_test`). Each new arch costs one unit of budget; archs that
break a constraint or are missing from the table are refused by the strategy's constraint
before the query, so they cost nothing. Strategies find feasible archs by rejection
sampling, so a table (or constraint) keeping under ~2% of the space is refused for every
strategy but `exhaustive`.

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
from supernas.search import STRATEGIES, Strategy, get_strategy, list_strategies, run_search
from supernas.search.pareto import hypervolume, non_dominated
from supernas.space import Arch


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


def multi_objective_strategies() -> list[str]:
    """Strategies flagged `multi_objective`: they are told a tuple per arch."""
    return [n for n in list_strategies() if STRATEGIES.get(n).multi_objective]


def _as_seeds(seeds: int | Iterable[int]) -> list[int]:
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out:
        raise SupernasError("no seeds: pass a positive number of seeds")
    return out


def _candidates(pts: np.ndarray) -> np.ndarray:
    """Indices that may be non-dominated: a fast sort-filter sweep (whole tables are large).

    In lexicographically decreasing order a point can only be dominated by an earlier one,
    and then by an earlier non-dominated one, so each point is compared with the front so far.
    """
    order = np.lexsort(pts.T[::-1])[::-1]
    front: list[int] = []
    for i in order:
        f = pts[front]
        if not np.any(np.all(f >= pts[i], axis=1) & np.any(f > pts[i], axis=1)):
            front.append(int(i))
    return np.array(sorted(front), dtype=np.int64)


class _Problem:
    """The table seen as a search problem: objective vectors, feasibility and the oracle."""

    def __init__(
        self,
        table: Table,
        objectives: list[str],
        minimize: list[str],
        report: str,
        constraints: Sequence[str | ColumnConstraint],
    ) -> None:
        self.columns = objectives + minimize
        if len(set(self.columns)) != len(self.columns):
            raise SupernasError(f"a column is given twice among the objectives: {self.columns}")
        self.space = table.space()
        self.lookups = [table.arch_values(c) for c in self.columns]
        self.signs = [1.0] * len(objectives) + [-1.0] * len(minimize)
        self.guide, self.report = self.lookups[0], table.arch_values(report)
        self.cons = [c if callable(c) else parse_column_constraint(c, table) for c in constraints]
        self.feasible = [a for a in self.guide if self.ok(a)]
        if not self.feasible:
            raise SupernasError(
                "no arch of the table satisfies the constraints: " + ", ".join(self.texts)
            )

    @property
    def texts(self) -> list[str]:
        return [getattr(c, "text", repr(c)) for c in self.cons]

    def ok(self, arch: Arch) -> bool:
        return arch in self.guide and all(c(arch) for c in self.cons)

    def predicate(self) -> Callable[[Arch], bool] | None:
        """The strategy's constraint; none for a full table without constraints (faster)."""
        return None if not self.cons and len(self.guide) == self.space.size else self.ok

    def vector(self, arch: Arch) -> tuple[float, ...]:
        return tuple(s * lk[arch] for s, lk in zip(self.signs, self.lookups, strict=True))

    def point(self, arch: Arch) -> dict[str, Any]:
        """A front member in the columns' own units (minimised ones not negated)."""
        values = {c: lk[arch] for c, lk in zip(self.columns, self.lookups, strict=True)}
        return {"arch": str(arch), "values": values}

    def front(self, archs: list[Arch]) -> tuple[list[Arch], np.ndarray]:
        """The non-dominated archs, best first objective first, and their vectors."""
        pts = np.array([self.vector(a) for a in archs])
        cand = _candidates(pts)
        idx = sorted((int(cand[i]) for i in non_dominated(pts[cand])), key=lambda i: -pts[i][0])
        return [archs[i] for i in idx], pts[idx]

    def oracle(self) -> dict[str, Any]:
        best = max(self.feasible, key=self.guide.__getitem__)  # the first among equals
        return {
            "arch": str(best),
            "objective": self.guide[best],
            "report": self.report[best],
            "report_max": max(self.report[a] for a in self.feasible),
        }


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
    Multi-objective: `mean`/`std` are over the seeds' hypervolumes (module doc); `best_arch`
    and the trajectories follow the first objective.
    """
    table = tables if isinstance(tables, Table) else load_tables(list(tables))
    objectives = [objective] if isinstance(objective, str) else list(objective)
    minimize = [minimize] if isinstance(minimize, str) else list(minimize)
    if not objectives:
        raise SupernasError("no objective column given")
    STRATEGIES.get(strategy)  # an unknown name fails first, listing the valid ones
    multi = len(objectives) + len(minimize) > 1
    if multi and strategy not in multi_objective_strategies():
        raise SupernasError(
            f"strategy {strategy!r} optimises one objective; for several objectives use one "
            f"of: {', '.join(multi_objective_strategies()) or '(none registered)'}"
        )
    seeds = _as_seeds(seeds)
    options = dict(strategy_options or {})
    report = report or objectives[0]
    prob = _Problem(table, objectives, minimize, report, constraints)
    space = prob.space
    if strategy != "exhaustive" and len(prob.feasible) * Strategy.max_tries < 20 * space.size:
        raise SupernasError(
            f"only {len(prob.feasible):,} of the {space.size:,} archs of space {space.name!r} "
            "are in the table and feasible: strategies that draw at random under the "
            "constraint would fail; use --strategy exhaustive (with shuffle=true) or a fuller "
            "table"
        )

    def score(archs: list[Arch]) -> list[Any]:
        for a in archs:
            if not prob.ok(a):  # a bug in the strategy: it must honour its constraint
                raise SupernasError(f"strategy {strategy!r} proposed {a}, which is infeasible")
        return [prob.vector(a) if multi else prob.guide[a] for a in archs]

    oracle = prob.oracle()
    reference: list[float] = []
    if multi:
        true_front, pts = prob.front(prob.feasible)
        reference = np.array([prob.vector(a) for a in prob.feasible]).min(axis=0).tolist()
        oracle["front"] = [prob.point(a) for a in true_front]
        oracle["hypervolume"] = float(hypervolume(pts, reference))

    runs, seconds = [], []
    for seed in seeds:
        t0 = time.perf_counter()
        strat = get_strategy(strategy, space, seed=seed, constraint=prob.predicate(), **options)
        result = run_search(strat, score, budget)
        seconds.append(time.perf_counter() - t0)
        archs = [t.arch for t in result.trials]
        run, incumbent = _seed_result(seed, archs, prob.guide, prob.report, oracle["report"])
        run["feasible"] = all(c(incumbent) for c in prob.cons)  # checked, not assumed
        if multi:
            front, pts = prob.front(archs)
            run["front"] = [prob.point(a) for a in front]
            run["hypervolume"] = float(hypervolume(pts, reference))
        runs.append(run)

    out: dict[str, Any] = {
        "objective": objectives[0] if len(objectives) == 1 else objectives,
        "report_column": report,
        "minimize": minimize,
        "constraints": prob.texts,
        "strategy": strategy,
        "strategy_options": options,
        "budget": budget,
        "table_archs": len(prob.guide),
        "feasible_archs": len(prob.feasible),
        "oracle": oracle,
    }
    out.update(summarize(runs, seconds, oracle["report"]))
    if multi:
        out["report_mean"], out["report_std"] = out["mean"], out["std"]
        out["mean"], out["std"] = _mean_std([r["hypervolume"] for r in runs])
        out["hypervolume_ratio"] = out["mean"] / oracle["hypervolume"]  # of the true front's
        out["reference"] = {
            c: s * r for c, s, r in zip(prob.columns, prob.signs, reference, strict=True)
        }
    out["seeds"] = runs
    return out


def summarize(
    runs: Sequence[dict[str, Any]], seconds: Sequence[float], oracle_report: float
) -> dict[str, Any]:
    """The summary over seed runs (`seeds` entries of `table_search`, possibly from several
    calls, e.g. seeds run in parallel processes): mean/std of the report value, regret, the
    feasible fraction, the mean regret curve and the mean seconds per run."""
    reports = [r["report"] for r in runs]
    mean, std = _mean_std(reports)
    regret = _mean_std([oracle_report - v for v in reports])
    return {
        "mean": mean,
        "std": std,
        "regret": {"mean": regret[0], "std": regret[1]},
        "feasible_fraction": sum(r["feasible"] for r in runs) / len(runs),
        "regret_curve": _curve([r["regret_trajectory"] for r in runs]),
        "seconds_per_run": float(np.mean(seconds)),
    }


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
