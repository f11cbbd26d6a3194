"""`supernas bench ...`: table-driven search benchmarks (NAS-Bench-201, HW-NAS-Bench CSVs).

Also home of the plots of table_search results (regret curves, Pareto fronts), shared with
benchmarks/search_nb201.py: they belong to the face layer, not to `bench/`.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

bench_app = typer.Typer(help="Benchmarks on tables: table-driven search.", no_args_is_help=True)
F = TypeVar("F", bound=Callable[..., Any])


def _friendly(fn: F) -> F:
    """supernas.cli.friendly, looked up at call time: supernas.cli imports this module."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from supernas.cli import friendly

        return friendly(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# -- plots ---------------------------------------------------------------------------------
def _save_png(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from supernas.io import write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def regret_plot(path: Path, curves: dict[str, dict[str, list[float]]], title: str) -> Path:
    """Mean regret of the report column vs queries, one line per label, shaded +- std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for label, c in curves.items():
        m, s = np.asarray(c["mean"]), np.asarray(c["std"])
        xs = np.arange(1, len(m) + 1)
        ax.plot(xs, m, label=label)
        ax.fill_between(xs, m - s, m + s, alpha=0.12)
    ax.set_xlabel("queries (archs evaluated)")
    ax.set_ylabel("regret of the report column")
    ax.set_title(title, fontsize=9)
    ax.axhline(0.0, color="black", lw=0.6)
    # The first few queries have regrets of several points; clip them so the tenths show.
    n = max(len(c["mean"]) for c in curves.values())
    early = max(c["mean"][min(n // 10, len(c["mean"]) - 1)] for c in curves.values())
    low = min(
        min((np.asarray(c["mean"]) - np.asarray(c["std"]))[n // 10 :], default=0.0)
        for c in curves.values()
    )
    ax.set_ylim(min(0.0, low) - 0.05, max(2 * early, 0.5))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save_png(fig, path)


def pareto_plot(path: Path, result: dict[str, Any]) -> Path:
    """The first two objectives: every seed's front (grey) and the table's true front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = list(result["oracle"]["front"][0]["values"])[:2]
    # Attainment staircase: with x minimised the best y holds from each point rightwards.
    where = "post" if cols[1] in result["minimize"] else "pre"
    fig, ax = plt.subplots(figsize=(5, 3.8))
    lows = []
    for i, run in enumerate(result["seeds"]):
        pts = sorted((p["values"][cols[1]], p["values"][cols[0]]) for p in run["front"])
        lows.append(min(y for _, y in pts))
        ax.step(
            [x for x, _ in pts],
            [y for _, y in pts],
            where=where,
            color="#7f7f7f",
            alpha=0.4,
            label="seed fronts" if i == 0 else "_nolegend_",
        )
    front = result["oracle"]["front"]
    ys = [p["values"][cols[0]] for p in front]
    ax.scatter(
        [p["values"][cols[1]] for p in front], ys, s=10, color="#d62728", label="table's true front"
    )
    low, top = min(lows), max(ys)  # the true front's far end may lie below what seeds found
    pad = 0.05 * (top - low) + 1e-9
    ax.set_ylim(low - pad, top + pad)
    ax.set_xlabel(cols[1])
    ax.set_ylabel(cols[0])
    ax.set_title(f"{result['strategy']}, budget {result['budget']}: Pareto fronts", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save_png(fig, path)


def _pareto_csv(path: Path, result: dict[str, Any]) -> Path:
    from supernas.io import write_text

    cols = list(result["oracle"]["front"][0]["values"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["seed", "arch", *cols])
    for run in result["seeds"]:
        for p in run["front"]:
            w.writerow([run["seed"], p["arch"], *(p["values"][c] for c in cols)])
    for p in result["oracle"]["front"]:
        w.writerow(["table", p["arch"], *(p["values"][c] for c in cols)])
    return write_text(path, buf.getvalue())


# -- commands ------------------------------------------------------------------------------
def _options(items: Sequence[str] | None) -> dict[str, Any]:
    from supernas.config import parse_option

    return dict(parse_option(s) for s in items or [])


@bench_app.command("search")
@_friendly
def search(
    table: Annotated[list[Path], typer.Option("--table", help="CSV with an 'arch' column")],
    objective: Annotated[
        list[str], typer.Option("--objective", help="column to maximise (guides the search)")
    ],
    report: Annotated[
        str | None, typer.Option("--report", help="column reported for the best arch")
    ] = None,
    constraint: Annotated[
        list[str] | None,
        typer.Option("--constraint", help="'COLUMN<=VALUE', VALUE a number or 'median'"),
    ] = None,
    minimize: Annotated[
        list[str] | None, typer.Option("--minimize", help="column to minimise (multi-objective)")
    ] = None,
    strategy: Annotated[str, typer.Option("--strategy")] = "random",
    budget: Annotated[int, typer.Option("--budget", help="archs queried per seed")] = 100,
    seeds: Annotated[int, typer.Option("--seeds", help="runs with seeds 0..K-1")] = 10,
    strategy_opt: Annotated[
        list[str] | None, typer.Option("--strategy-opt", help="strategy option KEY=VALUE")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="result JSON")] = Path("result.json"),
) -> None:
    """Benchmark a search strategy on tables: seeds x budget queries, regret and Pareto."""
    from rich.table import Table as RichTable

    from supernas.bench.table_search import table_search
    from supernas.cli import out_console
    from supernas.io import write_json

    result = table_search(
        [str(t) for t in table],
        objective,
        report=report,
        constraints=constraint or [],
        minimize=minimize or [],
        strategy=strategy,
        budget=budget,
        seeds=seeds,
        strategy_options=_options(strategy_opt),
    )
    write_json(out, result)
    stem = out.with_suffix("")
    label = f"{strategy} (guide {', '.join(objective)})"
    png = regret_plot(
        Path(f"{stem}_regret.png"),
        {label: result["regret_curve"]},
        f"regret of {result['report_column']} vs the table's best feasible arch by "
        f"{objective[0]}, {len(result['seeds'])} seeds",
    )
    o = result["oracle"]
    t = RichTable(title=f"bench search: {strategy}, budget {budget}", show_header=False)
    t.add_column(overflow="fold")
    t.add_column(overflow="fold")
    t.add_row("guide / report", f"{', '.join(objective)} / {result['report_column']}")
    if result["constraints"]:
        t.add_row("constraints", ", ".join(result["constraints"]))
        t.add_row("feasible archs", f"{result['feasible_archs']:,} of {result['table_archs']:,}")
        t.add_row("seeds satisfying them", f"{100 * result['feasible_fraction']:.0f}%")
    rep = (result.get("report_mean", result["mean"]), result.get("report_std", result["std"]))
    t.add_row(f"{result['report_column']} (mean ± std)", f"{rep[0]:.4f} ± {rep[1]:.4f}")
    t.add_row("oracle arch (best feasible by guide)", o["arch"])
    t.add_row(f"oracle {result['report_column']}", f"{o['report']:.4f}")
    t.add_row(
        "regret (mean ± std)", f"{result['regret']['mean']:.4f} ± {result['regret']['std']:.4f}"
    )
    t.add_row("seconds per run", f"{result['seconds_per_run']:.3f}")
    files = [out, png]
    if "hypervolume" in o:
        files += [
            _pareto_csv(Path(f"{stem}_pareto.csv"), result),
            pareto_plot(Path(f"{stem}_pareto.png"), result),
        ]
        t.add_row("hypervolume (mean ± std)", f"{result['mean']:.4f} ± {result['std']:.4f}")
        t.add_row(
            "table's true front hypervolume",
            f"{o['hypervolume']:.4f} (found {100 * result['hypervolume_ratio']:.1f}% of it)",
        )
        t.add_row(
            "reference point", ", ".join(f"{k}={v:g}" for k, v in result["reference"].items())
        )
    t.add_row("wrote", ", ".join(str(f) for f in files))
    out_console.print(t)
    if "hypervolume" in o:
        print(f"hypervolume: {result['mean']:.6g} ± {result['std']:.6g}")
