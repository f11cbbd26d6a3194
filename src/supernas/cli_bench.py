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

from supernas.cli_options import (
    DataDirOpt,
    DataOpt,
    ImageSizeOpt,
    MaxTrainOpt,
    MaxValOpt,
    QuietOpt,
    SpaceOptOpt,
)

bench_app = typer.Typer(
    help="Benchmarks: ground-truth tables, table-driven search, anytime, tune.",
    no_args_is_help=True,
)
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


# -- anytime evaluation (NAS-Bench-1Shot1 style) ---------------------------------------------
def anytime_plot(
    path: Path, trajectories: dict[str, list[dict[str, Any]]], title: str, ylabel: str
) -> Path:
    """True score of the arch each method returned vs epoch, one line per method (run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    for label, traj in trajectories.items():
        xs = [r["epoch"] for r in traj]
        ax.plot(xs, [r["score"] for r in traj], marker="o", ms=3, label=label)
    ax.set_xlabel("epoch of supernet training")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save_png(fig, path)


def _read_run(path: Path) -> dict[str, Any]:
    from supernas.errors import SupernasError
    from supernas.io import read_json

    run = read_json(path)
    missing = [k for k in ("history", "space", "space_options", "method") if k not in run]
    if not isinstance(run, dict) or missing:
        raise SupernasError(
            f"{path} is not a train.json of `supernas train` (missing {', '.join(missing)})"
        )
    return run


#: The truth of `anytime` and `tune`: a table column, or standalone training kept in a CSV.
TruthTableOpt = Annotated[
    list[Path] | None, typer.Option("--table", help="truth: CSV table(s) with an 'arch' column")
]
TruthTargetOpt = Annotated[
    str | None, typer.Option("--target", help="the table column that is the true score")
]
ScratchCacheOpt = Annotated[
    Path | None,
    typer.Option("--scratch-cache", help="truth: train from scratch, results kept in this CSV"),
]


def _check_truth(table: list[Path] | None, target: str | None, scratch: Path | None) -> None:
    """Exactly one truth: a table column, or training from scratch with a cache."""
    from supernas.errors import SupernasError

    if bool(table) == (scratch is not None):
        raise SupernasError("give one truth: --table (with --target) or --scratch-cache")
    if table and not target:
        raise SupernasError("--table needs --target COLUMN (e.g. cifar10_valid)")


def _truth(
    table: list[Path] | None,
    target: str | None,
    scratch: Path | None,
    space: Any,
    data: Any,
    recipe: Any,
    seed: int,
) -> tuple[Any, dict[str, Any], str]:
    """The truth estimator of `anytime` and `tune`, what it is (for the JSON), its y label.

    A table column (`TableEstimator`) or standalone training kept in a CSV
    (`CachedTrainFromScratch` with `recipe`); `_check_truth` has already said which.
    """
    from supernas.bench.table import TableEstimator, load_tables
    from supernas.estimate import CachedTrainFromScratch

    if table:
        truth = TableEstimator(load_tables([str(t) for t in table]), str(target))
        info = {"kind": "table", "tables": [str(t) for t in table], "target": target}
        return truth, info, f"true {target}"
    truth = CachedTrainFromScratch(scratch, space, data, recipe, seed=seed)
    info = {"kind": "scratch", "cache": str(scratch), "recipe": recipe.to_dict()}
    return truth, info, "true val accuracy"


@bench_app.command("anytime")
@_friendly
def anytime(
    train_json: Annotated[
        list[Path], typer.Option("--train-json", help="RUN/train.json of `supernas train`")
    ],
    table: TruthTableOpt = None,
    target: TruthTargetOpt = None,
    scratch_cache: ScratchCacheOpt = None,
    supernet: Annotated[
        list[Path] | None,
        typer.Option("--supernet", help="RUN/supernet.pt, one per --train-json: one-shot ranking"),
    ] = None,
    sample: Annotated[int, typer.Option("--sample", help="archs in the one-shot ranking")] = 20,
    recal_batches: Annotated[
        int, typer.Option("--recal-batches", help="BN recalibration batches per arch")
    ] = 10,
    data: DataOpt = "digits",
    data_dir: DataDirOpt = "",
    max_train: MaxTrainOpt = 0,
    max_val: MaxValOpt = 0,
    epochs: Annotated[int, typer.Option("--epochs", help="scratch recipe: epochs")] = 15,
    batch_size: Annotated[int, typer.Option("--batch-size", help="scratch recipe")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="scratch recipe")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="scratch seed and ranking sample")] = 0,
    out: Annotated[Path, typer.Option("--out", help="result JSON")] = Path("result.json"),
    quiet: QuietOpt = False,
) -> None:
    """True score of the arch each epoch of a one-shot run returned (NAS-Bench-1Shot1).

    Truth: a table column (--table, --target) or training from scratch with a persistent
    cache (--scratch-cache, --data). With --supernet, also the supernet's ranking of a
    fixed seeded sample of archs against the same truth (Kendall tau, Spearman rho, top-k).
    """
    from rich.table import Table as RichTable

    from supernas.bench.anytime import anytime_trajectory, oneshot_ranking, sample_archs
    from supernas.cli import _check_data_fits, _load_data, out_console
    from supernas.console import progress_bar
    from supernas.errors import SupernasError
    from supernas.estimate import CachedTrainFromScratch
    from supernas.io import write_json
    from supernas.space import get_space
    from supernas.train import Recipe, load_supernet

    _check_truth(table, target, scratch_cache)
    supernets = list(supernet or [])
    if supernets and len(supernets) != len(train_json):
        raise SupernasError(
            f"{len(supernets)} --supernet for {len(train_json)} --train-json: give one per run"
        )
    if supernets and sample < 2:
        raise SupernasError(f"a ranking needs at least 2 archs, got --sample {sample}")
    runs = [_read_run(p) for p in train_json]
    spaces = [get_space(r["space"], **r["space_options"]) for r in runs]
    ds = _load_data(data, data_dir, max_train, max_val) if scratch_cache or supernets else None

    if scratch_cache is not None:
        keys = {(s.name, repr(sorted(s.options.items()))) for s in spaces}
        if len(keys) > 1:
            raise SupernasError(
                "the runs use different spaces or space options; one scratch cache holds "
                "one space: run `bench anytime` once per space"
            )
        _check_data_fits(spaces[0], ds)
    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr) if scratch_cache else None
    truth, info, ylabel = _truth(table, target, scratch_cache, spaces[0], ds, recipe, seed)
    pool = list(truth.table.arch_values(str(target))) if table else None
    if scratch_cache is not None:
        info.update(data=data, seed=seed)
    ylabel += " of the returned arch" + ("" if table else " (scratch)")

    results: list[dict[str, Any]] = []
    rankings: list[Any] = [None] * len(runs)
    samples: list[Any] = [None] * len(runs)
    nets: list[Any] = [None] * len(runs)
    for i, path in enumerate(supernets):
        nets[i], _ = load_supernet(path)
        _check_data_fits(nets[i].space, ds)
        samples[i] = sample_archs(nets[i].space, sample, seed, pool)
    # The bar counts what really trains: archs already in the cache cost nothing.
    todo: set[Any] = set()
    if isinstance(truth, CachedTrainFromScratch):
        for run, sp in zip(runs, spaces, strict=True):
            todo |= {sp.parse(h["arch"]) for h in run["history"] if isinstance(h.get("arch"), str)}
        for s in samples:
            todo |= set(s or [])
        todo = {a for a in todo if not truth.cached(a)}
    with progress_bar("train from scratch", len(todo), not quiet) as advance:
        if isinstance(truth, CachedTrainFromScratch):
            done = [truth.trained]

            def tick() -> None:
                advance(truth.trained - done[0])
                done[0] = truth.trained

            truth.on_arch = tick
        for i, (run, sp) in enumerate(zip(runs, spaces, strict=True)):
            traj = anytime_trajectory(run["history"], truth, sp)
            if nets[i] is not None:
                rankings[i] = oneshot_ranking(
                    nets[i], ds, truth, samples[i], recal_batches=recal_batches, seed=seed
                )
            results.append(
                {
                    "train_json": str(train_json[i]),
                    "method": run["method"],
                    "space": run["space"],
                    "trajectory": traj,
                    "final_arch": traj[-1]["arch"],
                    "final_score": traj[-1]["score"],
                    "best_so_far": traj[-1]["best_so_far"],
                    "oneshot": rankings[i],
                }
            )
    result: dict[str, Any] = {"truth": info, "runs": results}
    if isinstance(truth, CachedTrainFromScratch):
        result["trained"] = truth.trained
    write_json(out, result)
    labels = [f"{r['method']} ({Path(r['train_json']).parent.name or '.'})" for r in results]
    if len(set(labels)) < len(labels):  # the plot's legend needs one name per line
        labels = [f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    png = anytime_plot(
        Path(f"{out.with_suffix('')}_anytime.png"),
        {lab: r["trajectory"] for lab, r in zip(labels, results, strict=True)},
        "anytime evaluation: the arch returned after each epoch",
        ylabel,
    )
    t = RichTable(title="bench anytime")
    for col in ("run", "final arch", "final true score", "best so far", "tau"):
        t.add_column(col, overflow="fold")
    for lab, r in zip(labels, results, strict=True):
        tau = "-" if r["oneshot"] is None else f"{r['oneshot']['kendall']:.3f}"
        t.add_row(lab, r["final_arch"], f"{r['final_score']:.4f}", f"{r['best_so_far']:.4f}", tau)
    out_console.print(t)
    extra = f"; trained {truth.trained} archs" if "trained" in result else ""
    out_console.print(f"wrote {out}, {png}{extra}", markup=False, highlight=False)


# -- hyperparameter sensitivity (NAS-Bench-1Shot1 style) --------------------------------------
def tune_plot(path: Path, trials: list[dict[str, Any]], title: str, ylabel: str) -> Path:
    """Each trial's true score (dots) and the best so far (a staircase) vs trial number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    done = [t for t in trials if t.get("value") is not None]
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    xs = [t["number"] + 1 for t in done]
    ys = [t["value"] for t in done]
    ax.scatter(xs, ys, s=14, label="trial")
    best: list[float] = []
    for y in ys:
        best.append(y if not best else max(best[-1], y))
    ax.step(xs, best, where="post", color="#d62728", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save_png(fig, path)


@bench_app.command("tune")
@_friendly
def tune(
    method: Annotated[str, typer.Option("--method", help="one-shot method to tune")] = "darts",
    space: Annotated[str, typer.Option("--space")] = "nb201",
    space_opt: SpaceOptOpt = None,
    table: TruthTableOpt = None,
    target: TruthTargetOpt = None,
    scratch_cache: ScratchCacheOpt = None,
    data: DataOpt = "digits",
    data_dir: DataDirOpt = "",
    max_train: MaxTrainOpt = 0,
    max_val: MaxValOpt = 0,
    epochs: Annotated[int, typer.Option("--epochs", help="supernet epochs per trial")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", help="supernet batch size")] = 64,
    scratch_epochs: Annotated[
        int, typer.Option("--scratch-epochs", help="scratch truth recipe: epochs")
    ] = 15,
    scratch_batch_size: Annotated[
        int, typer.Option("--scratch-batch-size", help="scratch truth recipe: batch size")
    ] = 64,
    scratch_lr: Annotated[float, typer.Option("--scratch-lr", help="scratch truth recipe")] = 0.1,
    trials: Annotated[int, typer.Option("--trials", help="trials in the study (in all)")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="sampler, supernet and trainer seed")] = 0,
    out: Annotated[Path, typer.Option("--out", help="study JSON (resumed if it exists)")] = Path(
        "study.json"
    ),
    quiet: QuietOpt = False,
) -> None:
    """TPE study of a one-shot method's hyperparameters, scored by its final arch's truth.

    The objective is the true score (--table/--target or --scratch-cache) of the arch the
    trainer returns after its last epoch (NAS-Bench-1Shot1's sensitivity experiment). The
    study is rewritten after every trial; run the same command again to resume it.
    """
    from rich.table import Table as RichTable

    from supernas.bench.tune import search_space
    from supernas.bench.tune import tune as run_tune
    from supernas.cli import _check_data_fits, _load_data, _space_options, out_console
    from supernas.config import RunConfig
    from supernas.console import progress_bar
    from supernas.pipeline import build_space
    from supernas.train import Recipe

    search_space(method)  # an unknown method fails before any data is loaded
    _check_truth(table, target, scratch_cache)
    ds = _load_data(data, data_dir, max_train, max_val)
    sp = build_space(RunConfig(space=space, space_options=_space_options(space_opt)), ds)
    _check_data_fits(sp, ds)
    recipe = None
    if scratch_cache is not None:
        recipe = Recipe(epochs=scratch_epochs, batch_size=scratch_batch_size, lr=scratch_lr)
    truth, info, ylabel = _truth(table, target, scratch_cache, sp, ds, recipe, seed)
    ylabel += " of the final arch" + ("" if table else " (scratch)")
    settings = {
        "truth": info,
        "data": data,
        "sizes": [len(ds.x_train), len(ds.x_val), len(ds.x_test)],
    }
    steps = epochs * -(-len(ds.x_train) // batch_size)
    done_before = 0
    if out.is_file():
        from supernas.io import read_json

        prev = read_json(out)
        done_before = len(prev.get("trials", [])) if isinstance(prev, dict) else 0
    total = max(trials - done_before, 0) * steps
    with progress_bar(f"tune {method}", total, not quiet) as advance:
        doc = run_tune(
            method,
            sp,
            ds,
            truth,
            epochs=epochs,
            batch_size=batch_size,
            trials=trials,
            seed=seed,
            out=out,
            settings=settings,
            on_step=advance,
        )
    recs = doc["trials"]
    png = tune_plot(
        Path(f"{out.with_suffix('')}_tune.png"),
        recs,
        f"bench tune: {method} on {sp.name}, {len(recs)} trials (TPE, seed {seed})",
        ylabel,
    )
    names = list(search_space(method))
    t = RichTable(title=f"bench tune: {method}, trials by true score")
    for col in ("trial", "value", "best so far", *names, "final arch"):
        t.add_column(col, overflow="fold")
    ranked = sorted(
        recs, key=lambda r: (r.get("value") is None, -(r.get("value") or 0.0), r["number"])
    )
    for r in ranked:
        v, attrs = r.get("value"), r.get("user_attrs", {})
        t.add_row(
            str(r["number"] + 1),
            "failed" if v is None else f"{v:.4f}",
            "-" if "best_so_far" not in attrs else f"{attrs['best_so_far']:.4f}",
            *(
                f"{r['params'][n]:.4g}"
                if isinstance(r["params"][n], float)
                else str(r["params"][n])
                for n in names
            ),
            attrs.get("final_arch", attrs.get("error", "")),
        )
    out_console.print(t)
    best = doc["best"]
    if best is not None:
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in best["params"].items()
        )
        out_console.print(
            f"best: trial {best['number'] + 1}, value {best['value']:.4f}, {params}",
            markup=False,
            highlight=False,
        )
    out_console.print(f"wrote {out}, {png}", markup=False, highlight=False)


@bench_app.command("build")
@_friendly
def build(
    out: Annotated[Path, typer.Option("--out", help="the table CSV (resumed if it exists)")],
    space: Annotated[str, typer.Option("--space")] = "nb201",
    space_opt: SpaceOptOpt = None,
    data: DataOpt = "fashion-mnist",
    data_dir: DataDirOpt = "",
    max_train: MaxTrainOpt = 10000,
    max_val: MaxValOpt = 5000,
    image_size: ImageSizeOpt = 0,
    archs: Annotated[int, typer.Option("--archs", help="archs drawn uniformly")] = 300,
    seeds: Annotated[int, typer.Option("--seeds", help="training seeds per arch")] = 2,
    sample_seed: Annotated[int, typer.Option("--sample-seed", help="seed of the arch draw")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", help="recipe: epochs")] = 8,
    batch_size: Annotated[int, typer.Option("--batch-size", help="recipe")] = 128,
    lr: Annotated[float, typer.Option("--lr", help="recipe")] = 0.1,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="recipe")] = 5e-4,
    channels_last: Annotated[
        bool, typer.Option("--channels-last/--no-channels-last", help="recipe: NHWC (faster)")
    ] = True,
    workers: Annotated[int, typer.Option("--workers", help="parallel training processes")] = 1,
    threads: Annotated[int, typer.Option("--threads", help="torch threads per worker")] = 1,
    limit: Annotated[
        int, typer.Option("--limit", help="stop after N new runs (0 = all); rerun to resume")
    ] = 0,
    quiet: QuietOpt = False,
) -> None:
    """Build a ground-truth table: N archs trained standalone, --seeds seeds each (resumable).

    One row per (arch, seed): arch, seed, val_accuracy, test_accuracy, params, flops,
    train_seconds. A restart skips the rows the file holds; a table built with another
    recipe, data or space is refused.
    """
    from supernas.bench.build import BuildPlan, build_table, open_table, table_summary, todo
    from supernas.cli import _space_options, out_console
    from supernas.console import progress_bar
    from supernas.train import Recipe

    recipe = Recipe(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        channels_last=channels_last,
    )
    plan = BuildPlan(
        space=space,
        space_options=_space_options(space_opt),
        data={
            "data": data,
            "data_dir": data_dir or None,
            "max_train": max_train,
            "max_val": max_val,
            "image_size": image_size,
        },
        recipe=recipe,
        archs=archs,
        seeds=seeds,
        sample_seed=sample_seed,
        workers=workers,
        threads=threads,
    )
    cache, sampled = open_table(out, plan)
    n = len(todo(cache, sampled, seeds))
    n = min(n, limit) if limit else n
    out_console.print(
        f"{out}: {archs * seeds - len(todo(cache, sampled, seeds))} of {archs * seeds} rows "
        f"done; training {n} now with {workers} worker(s)",
        markup=False,
        highlight=False,
    )
    with progress_bar("train standalone", n, not quiet) as advance:
        res = build_table(
            out, plan, on_row=lambda *_: advance(), limit=limit or None, opened=(cache, sampled)
        )
    out_console.print(
        f"wrote {res['trained']} rows in {res['seconds']:.0f} s; {res['rows']} of "
        f"{res['total']} rows done",
        markup=False,
        highlight=False,
    )
    if res["rows"]:
        s = table_summary(out)
        out_console.print(
            f"{s['archs']} archs: test accuracy {100 * s['min']:.1f}-{100 * s['max']:.1f} %, "
            f"mean seed difference {100 * s['mean_abs_seed_diff']:.2f} %, noise ceiling "
            f"(seed-vs-seed Kendall tau) {s['ceiling_kendall']:.3f} over "
            f"{s['ceiling_archs']} archs; {s['train_hours']:.2f} h of training, median "
            f"{s['median_run_seconds']:.0f} s per run",
            markup=False,
            highlight=False,
        )


@bench_app.command("nb101")
@_friendly
def bench_nb101(
    file: Annotated[
        Path, typer.Option("--file", help="NB101's nasbench_only108.tfrecord or nasbench_full")
    ],
    out: Annotated[Path, typer.Option("--out", help="CSV table to write")],
) -> None:
    """Convert the official NAS-Bench-101 data file into a table keyed by nb101 arch.

    Columns: arch, module_hash, params, n_repeats and, per epoch budget E, the mean over
    repeats of val_accuracy_E, test_accuracy_E (0..1) and train_seconds_E.
    """
    from supernas.bench.nb101 import nb101_table
    from supernas.cli import out_console

    res = nb101_table(file, out)
    out_console.print(
        f"wrote {out}: {res['archs']} cells from {res['records']} records, "
        f"{res['budgets']} epoch budget(s)",
        markup=False,
        highlight=False,
    )
