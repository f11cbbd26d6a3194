"""Every registered search strategy on NAS-Bench-201, from the tables (no training).

Settings (all over seeds 0..K-1, each new arch one query):
- honest:      guided by cifar10_valid, reports cifar10_test (the NB201 paper's protocol),
               budgets 50/100/300 by default;
- ORACLE:      guided by cifar100_test, reports cifar100_test (guiding by a test column is
               an upper bound, not a result: labelled as such);
- constrained: edgegpu_latency <= its median over the table (HW-NAS-Bench, Jetson TX2),
               guided by cifar10_valid, budget 200, reports cifar10_test and the % of seeds
               whose returned arch satisfies the constraint (checked, not assumed).
`exhaustive` is skipped: on a table it is the oracle itself. Writes
benchmarks/results/search_nb201.json (after each strategy, atomically) and regret PNGs.

    .venv/bin/python benchmarks/search_nb201.py --seeds 5 --budgets 100 --strategies random

A row (strategy, setting, budget) already in the JSON with the same seeds is skipped. Each
seed's result is saved as it finishes (under `partial`) and the row is made once every seed
is in, all merged into the file as it is now on disk: a killed run resumes from its last
seed, and several processes can fill one JSON side by side, split by `--settings` or by
seeds (`--shard 0/2` and `--shard 1/2`; the last shard to finish writes the row).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from supernas.bench.table import load_tables
from supernas.bench.table_search import summarize, table_search
from supernas.cli_bench import regret_plot
from supernas.errors import SupernasError
from supernas.io import locked, read_json, write_json
from supernas.search import list_strategies

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nb201"
RESULTS = ROOT / "benchmarks" / "results"
CONSTRAINT = "edgegpu_latency<=median"


def settings(budgets: list[int], constrained_budget: int) -> list[dict[str, Any]]:
    out = []
    for b in budgets:
        out.append(
            {
                "setting": "cifar10",
                "objective": "cifar10_valid",
                "report": "cifar10_test",
                "budget": b,
                "constraints": [],
            }
        )
    for b in budgets:
        out.append(
            {
                "setting": "ORACLE cifar100",
                "objective": "cifar100_test",
                "report": "cifar100_test",
                "budget": b,
                "constraints": [],
            }
        )
    out.append(
        {
            "setting": "constrained",
            "objective": "cifar10_valid",
            "report": "cifar10_test",
            "budget": constrained_budget,
            "constraints": [CONSTRAINT],
        }
    )
    return out


def run_seed(table: Any, strategy: str, s: dict[str, Any], seed: int) -> dict[str, Any]:
    """One seed of one setting: what the row needs from it (trajectories left out)."""
    r = table_search(
        table,
        s["objective"],
        report=s["report"],
        constraints=s["constraints"],
        strategy=strategy,
        budget=s["budget"],
        seeds=[seed],
    )
    run = r["seeds"][0]
    keep = ("seed", "best_arch", "report", "queries", "feasible", "regret_trajectory")
    return {**{k: run[k] for k in keep}, "seconds": r["seconds_per_run"], "oracle": r["oracle"]}


def make_row(strategy: str, s: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The row of one (strategy, setting, budget) from its seeds' results."""
    runs = sorted(runs, key=lambda r: r["seed"])
    oracle = runs[0]["oracle"]
    summary = summarize(runs, [r["seconds"] for r in runs], oracle["report"])
    return {
        **s,
        "strategy": strategy,
        "seeds": len(runs),
        "mean": summary["mean"],
        "std": summary["std"],
        "regret": summary["regret"],
        "feasible_fraction": summary["feasible_fraction"],
        "oracle": oracle,
        "seconds_per_run": summary["seconds_per_run"],
        "seconds": sum(r["seconds"] for r in runs),
        "regret_curve": {k: [round(v, 4) for v in c] for k, c in summary["regret_curve"].items()},
        "per_seed": [{k: r[k] for k in ("seed", "best_arch", "report", "queries")} for r in runs],
    }


def plots(rows: list[dict[str, Any]], prefix: Path) -> list[Path]:
    """One PNG per setting: each strategy's mean regret curve at its largest budget."""
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        last = {r["strategy"]: r for r in sorted(mine, key=lambda r: r["budget"])}
        curves = {f"{k} ({r['seeds']} seeds)": r["regret_curve"] for k, r in last.items()}
        first = mine[0]
        title = (
            f"NB201 {setting}: regret of {first['report']} (guide {first['objective']}"
            f"{', ' + CONSTRAINT if first['constraints'] else ''})"
        )
        name = setting.lower().replace(" ", "_")
        out.append(regret_plot(Path(f"{prefix}_regret_{name}.png"), curves, title))
    return out


def plan(strategy: str, args: argparse.Namespace) -> tuple[list[dict[str, Any]], int]:
    """Settings and seeds for one strategy; slow ones get fewer seeds and the honest setting."""
    wanted = {w.strip().lower() for w in args.settings.split(",") if w.strip()}
    if strategy in args.slow.split(","):
        budgets = [int(b) for b in args.slow_budgets.split(",") if b]
        todo = [s for s in settings(budgets, 0) if s["setting"] == "cifar10"]
        seeds = args.slow_seeds
    else:
        budgets = [int(b) for b in args.budgets.split(",") if b]
        todo, seeds = settings(budgets, args.constrained_budget), args.seeds
    return [s for s in todo if KIND[s["setting"]] in wanted], seeds


#: --settings names of the settings.
KIND = {"cifar10": "cifar10", "ORACLE cifar100": "oracle", "constrained": "constrained"}


def _key(r: dict[str, Any]) -> tuple[str, str, int]:
    return r["strategy"], r["setting"], r["budget"]


def _pkey(strategy: str, s: dict[str, Any]) -> str:
    return f"{strategy} | {s['setting']} | {s['budget']}"


def _merge(
    path: Path,
    reference: dict[str, Any],
    row: dict | None = None,
    errors: dict | None = None,
    seed_run: tuple[str, dict] | None = None,
) -> dict[str, Any]:
    """Update the JSON as it is on disk now (other processes may have added to it): a row
    (its seeds' partial results are then dropped), errors, or one seed's result."""
    with locked(path):
        doc = read_json(path, missing={})
        rows = [r for r in doc.get("runs", []) if row is None or _key(r) != _key(row)]
        partial = doc.get("partial", {})
        if row is not None:
            rows.append(row)
            partial.pop(_pkey(row["strategy"], row), None)
        if seed_run is not None:
            key, run = seed_run
            done = [r for r in partial.get(key, []) if r["seed"] != run["seed"]]
            partial[key] = [*done, run]
        doc = {
            "reference": reference,
            "runs": rows,
            "errors": {**doc.get("errors", {}), **(errors or {})},
            **({"partial": partial} if partial else {}),
        }
        write_json(path, doc)
        return doc


def _shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n such as 0/2, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"need 0 <= i < n, got {text!r}")
    return i, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budgets", default="50,100,300", help="comma-separated")
    ap.add_argument("--constrained-budget", type=int, default=200)
    ap.add_argument(
        "--strategies", default="", help="comma-separated (default: all but exhaustive)"
    )
    ap.add_argument("--slow", default="gp", help="strategies run with --slow-seeds/-budgets")
    ap.add_argument("--slow-seeds", type=int, default=3)
    ap.add_argument("--slow-budgets", default="50,100")
    ap.add_argument(
        "--settings", default="cifar10,oracle,constrained", help="which settings to run"
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "search_nb201.json")
    ap.add_argument("--fresh", action="store_true", help="re-run rows already in --out")
    ap.add_argument(
        "--shard", type=_shard, default=(0, 1), help="i/n: run only the seeds with seed %% n == i"
    )
    args = ap.parse_args()
    strategies = [s for s in args.strategies.split(",") if s] or [
        s for s in list_strategies() if s != "exhaustive"
    ]
    table = load_tables([DATA / "accuracy.csv", DATA / "latency.csv"])
    val, test = table.values("cifar10_valid"), table.values("cifar10_test")
    best_val = max(val, key=val.__getitem__)
    reference = {
        "val_optimal_arch": best_val,
        "val_optimal_test": test[best_val],
        "best_test": max(test.values()),
    }
    console = Console(width=140)
    console.print(
        f"val-optimal arch {best_val}: cifar10_test {test[best_val]:.2f} "
        f"(best cifar10_test in the table {reference['best_test']:.2f})"
    )
    shard, shards = args.shard
    for strategy in strategies:
        todo, seeds = plan(strategy, args)
        for s in todo:
            doc = read_json(args.out, missing={})
            done = {_key(r): r["seeds"] for r in doc.get("runs", [])}
            if not args.fresh and done.get((strategy, s["setting"], s["budget"])) == seeds:
                continue
            key = _pkey(strategy, s)
            try:
                for seed in range(shard, seeds, shards):
                    # Re-read: another process (--shard) may have run this seed meanwhile.
                    doc = read_json(args.out, missing={})
                    if any(r["seed"] == seed for r in doc.get("partial", {}).get(key, [])):
                        continue
                    run = run_seed(table, strategy, s, seed)
                    doc = _merge(args.out, reference, seed_run=(key, run))
                    console.print(
                        f"{key} seed {seed}: {run['report']:.2f} ({run['seconds']:.0f} s)"
                    )
            except SupernasError as exc:
                console.print(f"[red]{strategy}: {exc}[/red]")
                _merge(args.out, reference, errors={strategy: str(exc)})
                break
            runs = [r for r in doc.get("partial", {}).get(key, []) if r["seed"] < seeds]
            if len({r["seed"] for r in runs}) < seeds:
                console.print(
                    f"{key}: {len(runs)} of {seeds} seeds done (other shards run the rest)"
                )
                continue
            row = make_row(strategy, s, runs)
            _merge(args.out, reference, row=row)
            console.print(
                f"{strategy:>14} {s['setting']:<16} budget {s['budget']:>3}: "
                f"{row['mean']:.2f} ± {row['std']:.2f} "
                f"({row['seconds_per_run']:.3f} s/run)"
            )
    rows = read_json(args.out, missing={}).get("runs", [])
    rows.sort(key=lambda r: (r["setting"] != "cifar10", r["setting"], r["budget"], -r["mean"]))
    table_out = Table(title="NB201 search from tables (mean ± std over seeds)")
    for col in (
        "setting",
        "seeds",
        "guide -> report",
        "strategy",
        "budget",
        "mean ± std",
        "regret",
        "feasible",
        "s/run",
    ):
        table_out.add_column(col, no_wrap=True)
    for r in rows:
        table_out.add_row(
            r["setting"],
            str(r["seeds"]),
            f"{r['objective']} -> {r['report']}",
            r["strategy"],
            str(r["budget"]),
            f"{r['mean']:.2f} ± {r['std']:.2f}",
            f"{r['regret']['mean']:.2f}",
            f"{100 * r['feasible_fraction']:.0f}%" if r["constraints"] else "",
            f"{r['seconds_per_run']:.3f}",
        )
    console.print(table_out)
    if rows:
        for p in plots(rows, args.out.with_suffix("")):
            console.print(f"wrote {p}")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
