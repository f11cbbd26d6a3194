"""Search a trained supernet for several objectives, or for several deployment targets.

- `pareto_search`: accuracy (supernet estimate) against cost metrics such as params,
  FLOPs or latency_ms. Every objective is given to the strategy maximised, so cost metrics
  are negated. The result is the Pareto front and its hypervolume.
- `deploy_many` ("train once, deploy many"): one trained supernet, several targets such as
  `latency_ms<=5` and `latency_ms<=10`, each searched under its own constraint. All targets
  share one estimator, so an arch scored once is never scored again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from supernas.errors import SupernasError
from supernas.hardware import ArchCost, parse_constraint
from supernas.search import get_strategy, run_search
from supernas.search.pareto import hypervolume
from supernas.space import Arch, SearchSpace

Score = Callable[[list[Arch]], list[float]]


def _and(*preds: Callable[[Arch], bool] | None) -> Callable[[Arch], bool] | None:
    active = [p for p in preds if p is not None]
    if not active:
        return None
    return lambda arch: all(p(arch) for p in active)


def pareto_search(
    space: SearchSpace,
    score: Score,
    cost: ArchCost,
    minimize: Sequence[str],
    *,
    strategy: str = "nsga2",
    budget: int = 100,
    seed: int = 0,
    constraint: Callable[[Arch], bool] | None = None,
    strategy_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Maximise the estimate while minimising each metric in `minimize`.

    Hypervolume reference point: accuracy 0, and for each metric the largest value among
    the evaluated archs. The figure therefore measures the front inside the region the
    search explored; compare hypervolumes only between runs that share the reference,
    which is reported with them.
    """
    if not minimize:
        raise SupernasError("pareto search needs at least one metric to minimise")
    for m in minimize:
        cost.metric(m, space.sample(0))  # unknown metric -> clear error before any work

    def objective(archs: list[Arch]) -> list[tuple[float, ...]]:
        accs = score(archs)
        return [
            (acc, *(-float(cost.metric(m, a)) for m in minimize))
            for acc, a in zip(accs, archs, strict=True)
        ]

    strat = get_strategy(
        strategy, space, seed=seed, constraint=constraint, **(strategy_options or {})
    )
    result = run_search(strat, objective, budget)
    front = sorted(result.pareto_front(), key=lambda t: -t.value[0])
    worst = [max(-t.value[i + 1] for t in result.trials) for i in range(len(minimize))]
    reference = (0.0, *(-w for w in worst))
    hv = hypervolume([t.value for t in front], reference)

    def row(t: Any) -> dict[str, Any]:  # metrics back in their own units (un-negated)
        return {
            "arch": str(t.arch),
            "estimate": t.value[0],
            **{m: -t.value[i + 1] for i, m in enumerate(minimize)},
        }

    return {
        "strategy": strategy,
        "budget": budget,
        "minimize": list(minimize),
        "front": [row(t) for t in front],
        "evaluated": [row(t) for t in result.trials],
        "hypervolume": hv,
        "reference": {"estimate": 0.0, **dict(zip(minimize, worst, strict=True))},
    }


def deploy_many(
    space: SearchSpace,
    score: Score,
    cost: ArchCost,
    targets: Sequence[str],
    *,
    strategy: str = "evolution",
    budget: int = 100,
    seed: int = 0,
    constraint: Callable[[Arch], bool] | None = None,
    strategy_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One search per target constraint; each returns its own best arch (or none feasible)."""
    if not targets:
        raise SupernasError("deploy needs at least one --target such as 'params<=2e5'")
    out = []
    for text in targets:
        target = parse_constraint(text)
        feasible = _and(constraint, lambda a, t=target: t.check(cost, a))
        strat = get_strategy(
            strategy, space, seed=seed, constraint=feasible, **(strategy_options or {})
        )
        try:
            result = run_search(strat, score, budget)
        except SupernasError as exc:
            out.append(
                {
                    "target": text,
                    "best_arch": None,
                    "estimate": math.nan,
                    "metric": target.metric,
                    "value": math.nan,
                    "error": str(exc),
                }
            )
            continue
        best = result.best
        out.append(
            {
                "target": text,
                "best_arch": str(best.arch),
                "estimate": best.value,
                "params": cost.params(best.arch),
                "flops": cost.flops(best.arch),
                "metric": target.metric,
                "value": cost.metric(target.metric, best.arch),
            }
        )
    return out
