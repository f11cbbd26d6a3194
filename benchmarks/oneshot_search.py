"""One-shot search methods side by side, the NAS-Bench-1Shot1 way, on our own ground truth.

Two parts (run both, or one with `--part`):

- **memory**: peak memory of one training epoch of each method on the full NB201 network
  (C=16, N=5, 32x32 inputs, batch 64), each in a fresh process: the peak resident set
  size during training minus the size before it. The ProxylessNAS claim is that binarized
  paths need about one path's memory (SPOS) while DARTS holds every op's activations.
- **search**: every method trains a supernet on the table's data and space (`--table`:
  benchmarks/tables/nb201_fmnist.csv, cells; resnet18_fmnist.csv, a macro space) with the
  same epochs and seeds; a method that does not apply to the space (pcdarts on resnet18) is
  skipped. After each of the
  `--anytime` epochs, the arch the method would return is recorded: argmax alpha, the
  controller's mode, or for spos/random_ws the best of `--pool` random archs scored with
  inherited weights (Random-WS as NAS-Bench-1Shot1 runs it). Its true test accuracy comes
  from standalone training with the table's recipe, kept in a cache file beside the table
  (`<table>.returned.csv`), so no arch is trained twice across methods, seeds or runs. At
  the end, the supernet's ranking of the table's archs (a fixed sample) against the table
  gives each method's rank correlation. Wall time is per method and seed.

Results go to one JSON (an entry per table), written after every run (a killed run
resumes; processes on different tables, or with disjoint `--methods` on one table, may
share the file: each merges its runs in under a lock), and plots (anytime curves, one per
table) beside it.

    python benchmarks/oneshot_search.py --part memory
    python benchmarks/oneshot_search.py --part search --seeds 2 --epochs 10
    python benchmarks/oneshot_search.py --part search --table benchmarks/tables/resnet18_fmnist.csv
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from supernas.bench.anytime import sample_archs
from supernas.bench.build import data_options
from supernas.bench.table import TableEstimator, load_tables
from supernas.bench.trust import noise_ceiling, trust_metrics
from supernas.data import load_data, make_dataset
from supernas.estimate import CachedTrainFromScratch, SupernetEstimator
from supernas.io import locked, read_json, write_json
from supernas.space import get_space
from supernas.supernet import build_supernet
from supernas.train import Recipe, get_trainer

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "benchmarks" / "tables" / "nb201_fmnist.csv"
OUT = REPO / "benchmarks" / "results" / "oneshot_search.json"
#: name -> (trainer, options): every method of issue 9 plus the single-path baselines.
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "spos": ("spos", {}),
    "random_ws": ("random_ws", {}),
    "darts": ("darts", {"order": 1}),
    "darts2": ("darts", {"order": 2}),
    "gdas": ("gdas", {}),
    "pcdarts": ("pcdarts", {}),
    "enas": ("enas", {}),
    "proxyless": ("proxyless", {}),
    "fbnet": ("fbnet", {}),
}
SINGLE_PATH = {"spos", "random_ws"}  # no arch parameters: a random search picks the arch
#: Methods that only apply to some spaces (PC-DARTS' partial channels are a cell-graph idea).
ONLY = {"pcdarts": {"nb201"}}
FORMAT = "supernas.oneshot_search/2"


# -- memory --------------------------------------------------------------------------------
def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def memory_child(method: str, batch: int, steps: int) -> dict[str, float]:
    """In a fresh process: peak RSS growth while `method` trains `steps` batches."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    space = get_space("nb201", C=16, N=5, in_channels=3, num_classes=10)
    rng = np.random.default_rng(0)
    n = batch * steps
    x = rng.standard_normal((2 * n, 3, 32, 32)).astype(np.float32)
    y = np.arange(2 * n) % 10
    data = make_dataset("noise", x, y, val_fraction=0.45, test_fraction=0.05)
    supernet = build_supernet(space)
    trainer_name, opts = METHODS[method]
    trainer = get_trainer(trainer_name, recipe=Recipe(epochs=1, batch_size=batch), **opts)
    base = _rss_mib()
    t0 = time.perf_counter()
    trainer.fit(supernet, data)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"base_mib": base, "peak_mib": peak, "train_mib": peak - base, "seconds": seconds}


def memory(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for method in args.methods:
        cmd = [sys.executable, __file__, "--memory-child", method, "--batch", str(args.batch)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"{method}: memory run failed:\n{out.stderr[-2000:]}")
        rows[method] = json.loads(out.stdout.strip().splitlines()[-1])
        console.print(f"memory {method}: {rows[method]['train_mib']:.0f} MiB")
    one = rows.get("spos", {}).get("train_mib", math.nan)
    for r in rows.values():
        r["vs_spos"] = r["train_mib"] / one if one else math.nan
    return {"network": "nb201 C=16 N=5, 3x32x32", "batch": args.batch, "methods": rows}


# -- search --------------------------------------------------------------------------------
def _returned(trainer: Any, supernet: Any, method: str, pool: list[Any], data: Any) -> str:
    if method not in SINGLE_PATH:
        return str(trainer.derive())
    est = SupernetEstimator(supernet, data, recal_batches=5, seed=0)
    scores = est.score(pool)
    return str(pool[int(np.argmax(scores))])


def search_one(method: str, seed: int, ctx: dict[str, Any], args: argparse.Namespace) -> dict:
    space, data, scoring = ctx["space"], ctx["data"], ctx["scoring"]
    trainer_name, opts = METHODS[method]
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        supernet = build_supernet(space)
    trainer = get_trainer(trainer_name, recipe=recipe, seed=seed, **opts)
    pool = sample_archs(space, args.pool, seed + 1000)
    anytime = set(args.anytime or range(1, args.epochs + 1))
    picks: list[dict[str, Any]] = []

    def on_epoch(rec: dict[str, Any]) -> None:
        epoch = int(rec["epoch"])
        if epoch in anytime or epoch == args.epochs:
            arch = rec.get("arch") or _returned(trainer, supernet, method, pool, scoring)
            picks.append({"epoch": epoch, "arch": str(arch)})

    t0 = time.perf_counter()
    trainer.fit(supernet, data, on_epoch=on_epoch)
    wall = time.perf_counter() - t0
    truth = ctx["truth"]
    archs = [space.parse(p["arch"]) for p in picks]
    true = truth.score(archs)
    best = -math.inf
    for p, t in zip(picks, true, strict=True):
        best = max(best, t)
        p.update(true_test_accuracy=float(t), best_so_far=float(best))
    est = SupernetEstimator(supernet, scoring, recal_batches=args.recal_batches, seed=seed)
    ranking = trust_metrics(est.score(ctx["rank_archs"]), ctx["rank_truth"])
    return {
        "method": method,
        "seed": seed,
        "final_arch": picks[-1]["arch"],
        "final_true": picks[-1]["true_test_accuracy"],
        "trajectory": picks,
        "ranking": {k: ranking[k] for k in ("kendall", "spearman", "top_precision", "regret")},
        "wall_seconds": wall,
    }


def search(args: argparse.Namespace, doc: dict[str, Any], console: Console) -> None:
    meta = read_json(args.table.with_name(args.table.name + ".meta.json"))
    space = get_space(meta["space"], **meta["space_options"])
    load = data_options(meta)
    tab = load_tables([str(args.table)])
    pool = [space.parse(a) for a in tab.archs]
    rank_archs = sample_archs(space, min(args.rank_archs, len(pool)), 0, pool)
    ctx = {
        "space": space,
        "data": load_data(**load),
        "scoring": load_data(**{**load, "max_val": args.score_val}),
        "rank_archs": rank_archs,
        "rank_truth": TableEstimator(tab, "test_accuracy").score(rank_archs),
    }
    recipe = Recipe.from_dict(meta["recipe"])
    cache = args.table.with_name(args.table.stem + ".returned.csv")
    ctx["truth"] = CachedTrainFromScratch(cache, space, ctx["data"], recipe, metric="test")
    settings = {
        k: getattr(args, k)
        for k in ("epochs", "batch_size", "lr", "pool", "rank_archs", "score_val")
    }
    settings.update(
        table=str(args.table.relative_to(REPO) if args.table.is_relative_to(REPO) else args.table),
        truth_cache=cache.name,
    )
    # One entry per table: its settings, noise ceiling and runs (a run is a method x seed).
    entry = doc.setdefault("search", {}).setdefault(args.table.stem, {})
    if entry.get("settings", settings) != settings:
        raise SystemExit(
            f"{args.out} holds {args.table.stem} runs with other settings "
            f"({entry['settings']}); use another --out"
        )
    entry.update(settings=settings, ceiling=noise_ceiling(args.table)["kendall"])
    runs = entry.setdefault("runs", [])
    methods = [m for m in args.methods if space.name in ONLY.get(m, {space.name})]
    for m in sorted(set(args.methods) - set(methods)):
        console.print(f"skip {m}: it does not apply to the {space.name} space")
    for seed in range(args.seeds):
        for method in methods:
            if any(r["method"] == method and r["seed"] == seed for r in runs):
                continue
            console.print(f"search {method} seed {seed} on {args.table.stem} ...")
            runs.append(search_one(method, seed, ctx, args))
            entry = store(args.out, "search", args.table.stem, entry)["search"][args.table.stem]
            runs = entry["runs"]  # with the runs other processes stored meanwhile


def store(path: Path, part: str, table: str | None, value: Any) -> dict[str, Any]:
    """Write one part, or one table's search entry, into the JSON as it is on disk now, under
    a lock. A search entry's runs are merged by (method, seed) with the runs on disk, so
    processes on different tables, or with disjoint --methods on one table, share the file."""
    with locked(path):
        doc = read_json(path, missing={})
        doc["format"] = FORMAT
        if table is None:
            doc[part] = value
        else:
            old = doc.setdefault(part, {}).get(table, {})
            if old.get("settings", value["settings"]) != value["settings"]:
                raise SystemExit(
                    f"{path} holds {table} runs with other settings: use another --out"
                )
            mine = {(r["method"], r["seed"]) for r in value["runs"]}
            others = [r for r in old.get("runs", []) if (r["method"], r["seed"]) not in mine]
            doc[part][table] = {**value, "runs": others + value["runs"]}
        write_json(path, doc)
        return doc


def plot(entry: dict[str, Any], name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    by: dict[str, list[dict[str, Any]]] = {}
    for r in entry.get("runs", []):
        by.setdefault(r["method"], []).append(r)
    for method, runs in sorted(by.items()):
        epochs = [p["epoch"] for p in runs[0]["trajectory"]]
        ys = [
            statistics.mean(r["trajectory"][i]["true_test_accuracy"] for r in runs)
            for i in range(len(epochs))
        ]
        ax.plot(epochs, [100 * y for y in ys], marker="o", label=method)
    ax.set_xlabel("supernet training epoch")
    ax.set_ylabel("true test accuracy of the returned arch (%)")
    ax.set_title(f"{name}, anytime: the arch each method would return (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def show(doc: dict[str, Any], console: Console) -> None:
    if "memory" in doc:
        t = Table(title=f"peak training memory, {doc['memory']['network']}")
        for c in ("method", "MiB", "x spos", "seconds"):
            t.add_column(c)
        for m, r in doc["memory"]["methods"].items():
            t.add_row(m, f"{r['train_mib']:.0f}", f"{r['vs_spos']:.2f}", f"{r['seconds']:.1f}")
        console.print(t)
    for name, entry in doc.get("search", {}).items():
        show_search(name, entry, console)


def show_search(name: str, entry: dict[str, Any], console: Console) -> None:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in entry.get("runs", []):
        by.setdefault(r["method"], []).append(r)
    if by:
        t = Table(
            title=f"one-shot search on {name} (mean over seeds; ceiling tau {entry['ceiling']:.3f})"
        )
        for c in ("method", "seeds", "final true acc", "best-so-far", "tau", "rho", "wall s"):
            t.add_column(c)
        for m, rs in by.items():
            t.add_row(
                m,
                str(len(rs)),
                f"{100 * statistics.mean(r['final_true'] for r in rs):.2f}",
                f"{100 * statistics.mean(r['trajectory'][-1]['best_so_far'] for r in rs):.2f}",
                f"{statistics.mean(r['ranking']['kendall'] for r in rs):.3f}",
                f"{statistics.mean(r['ranking']['spearman'] for r in rs):.3f}",
                f"{statistics.mean(r['wall_seconds'] for r in rs):.0f}",
            )
        console.print(t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("memory", "search", "all"), default="all")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--table", type=Path, default=TABLE)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--anytime", type=int, nargs="*", help="epochs to record (default: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--pool", type=int, default=30, help="random archs spos/random_ws pick from")
    p.add_argument("--rank-archs", type=int, default=100)
    p.add_argument("--score-val", type=int, default=1000)
    p.add_argument("--recal-batches", type=int, default=10)
    p.add_argument("--batch", type=int, default=64, help="memory part: batch size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.batch, steps=4)))
        return
    args.methods = args.methods.split(",")
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; valid: {', '.join(METHODS)}")
    torch.set_num_threads(args.threads)
    console = Console()
    doc: dict[str, Any] = read_json(args.out, missing={})  # `store` writes, and sets the format
    if args.part in ("memory", "all"):
        doc["memory"] = memory(args, console)
        doc = store(args.out, "memory", None, doc["memory"])
    if args.part in ("search", "all"):
        search(args, doc, console)
        doc = read_json(args.out)
        name = args.table.stem
        plot(doc["search"][name], name, args.out.with_name(f"{args.out.stem}_{name}.png"))
    show(doc, console)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
