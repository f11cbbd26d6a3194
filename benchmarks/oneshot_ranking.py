"""How well does each way of training a supernet rank architectures? Measured on our own tables.

For every ground-truth table (`supernas bench build`: archs trained standalone, two seeds
each) and every method (spos, fairnas, greedynas, path_dropout, sandwich, the hypernetworks
smash and ghn; resnet18 in each weight-sharing mode; and pruning: the widest resnet18
trained once, archs cut out of it by L1 filter pruning and fine-tuned briefly), a model is
trained on the table's own data with the same budget
(epochs over the same training images), then every arch of the table is scored with
inherited weights (BN recalibrated per arch, val accuracy on a fixed val subset) and
compared with the table's seed-mean test accuracy: Kendall tau, Spearman rho, top-k,
regret of the top-1, next to the table's noise ceiling (seed-vs-seed tau). Cost is the
supernet's training plus scoring time as a fraction of the table's total training time.

Results go to a JSON (one entry per table x method x sharing, written after each, so a
killed run resumes and skips finished entries) and a printed table. Processes given
disjoint `--methods` (or `--sharing`) may share one `--out`: each adds its results under a
file lock.

    python benchmarks/oneshot_ranking.py --table benchmarks/tables/nb201_fmnist.csv
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from supernas.bench.build import data_options
from supernas.bench.table import TableEstimator, load_tables
from supernas.bench.trust import noise_ceiling, trust_metrics
from supernas.data import load_data
from supernas.estimate import HypernetEstimator, SupernetEstimator
from supernas.estimate.pruning import PruningEstimator, train_wide, widest_arch
from supernas.hardware import count_params
from supernas.hyper.load import model_for
from supernas.io import load_checkpoint, locked, read_json, save_checkpoint, write_json
from supernas.space import get_space
from supernas.supernet import build_network
from supernas.train import Recipe, get_trainer

REPO = Path(__file__).resolve().parents[1]
TABLES = [REPO / "benchmarks" / "tables" / f"{n}_fmnist.csv" for n in ("nb201", "resnet18")]
METHODS = ["spos", "fairnas", "greedynas", "path_dropout", "sandwich", "pruning", "smash", "ghn"]
#: Hypernetworks: weights generated per arch, so no weight-sharing mode applies.
HYPERNETS = {"smash", "ghn"}
#: Weight-sharing modes per space (nb201's ops differ in kind, so each has its own weights).
SHARING = {"resnet18": ["kernel", "independent", "nested"]}
#: Methods that only apply to some spaces (pruning cuts resnet18 archs from its widest).
ONLY = {"pruning": {"resnet18"}}
FORMAT = "supernas.oneshot_ranking/1"
MODEL_FORMAT = "supernas.oneshot_ranking_model/1"


def table_cost(path: Path) -> float:
    """Seconds of standalone training the table holds (all rows, all seeds)."""
    with open(path, newline="") as f:
        return sum(float(r["train_seconds"]) for r in csv.DictReader(f))


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a result (and a kept model) depends on."""
    keys = ("target", "epochs", "batch_size", "lr", "hyper_lr", "recal_batches", "score_val")
    return {k: getattr(args, k) for k in (*keys, "finetune_steps", "seed")}


def train_settings(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """What a kept model depends on: the training budget and recipe, not the scoring."""
    lr = args.hyper_lr if method in HYPERNETS else args.lr
    return {"epochs": args.epochs, "batch_size": args.batch_size, "lr": lr, "seed": args.seed}


def run_one(
    table: Path, method: str, sharing: str | None, args: argparse.Namespace
) -> dict[str, Any] | None:
    """Train (or load the kept model), score every arch of `table`; None with --train-only."""
    meta = read_json(table.with_name(table.name + ".meta.json"))
    opts = dict(meta["space_options"])
    if sharing is not None:
        opts["sharing"] = sharing
    space = get_space(meta["space"], **opts)
    load = data_options(meta)
    data = load_data(**load)
    scoring = load_data(**{**load, "max_val": args.score_val})
    tab = load_tables([str(table)])
    archs = [space.parse(a) for a in tab.archs]
    truth = TableEstimator(tab, args.target).score(archs)
    ceiling = noise_ceiling(table, args.target)

    train = train_settings(args, method)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=train["lr"])
    # The trained model is kept, so a table that grows (or a killed run) is rescored without
    # retraining: training depends on the data and recipe, not on the table's rows.
    saved = args.out.with_suffix(".models") / f"{table.stem}_{method}_{sharing}.pt"
    cached = load_checkpoint(saved) if saved.is_file() else None
    if cached is not None and any(cached["settings"].get(k) != v for k, v in train.items()):
        cached = None
    # a killed training resumes from its last epoch (checkpoint named by its recipe)
    partial = saved.with_name(f"{saved.stem}_lr{train['lr']:g}_e{args.epochs}.partial.pt")
    t0 = time.perf_counter()
    if method == "pruning":  # one wide network trained with the same budget, archs cut out
        if cached is None:
            model = train_wide(space, data, recipe, seed=args.seed)
            train_s = time.perf_counter() - t0
        else:
            model = build_network(space, widest_arch(space))
    else:
        trainer = get_trainer(method, recipe=recipe, seed=args.seed)
        with torch.random.fork_rng():
            torch.manual_seed(args.seed)
            model = model_for(trainer, space)  # the supernet, or the hypernet of smash/ghn
        if cached is None:  # per-epoch seconds: a resumed training still counts them all
            history = trainer.fit(model, data, checkpoint=partial)
            train_s = sum(h["seconds"] for h in history) or time.perf_counter() - t0
    if cached is None:
        save_checkpoint(
            saved,
            {
                "format": MODEL_FORMAT,
                "settings": train,
                "train_seconds": train_s,
                "state_dict": model.state_dict(),
            },
        )
        partial.unlink(missing_ok=True)  # the kept model replaces it
    else:
        model.load_state_dict(cached["state_dict"])
        train_s = cached["train_seconds"]
    if args.train_only:
        return None
    if method == "pruning":
        est: Any = PruningEstimator(
            space, model, scoring, finetune_steps=args.finetune_steps, seed=args.seed
        )
    elif method in HYPERNETS:
        est = HypernetEstimator(model, scoring, seed=args.seed)
    else:
        est = SupernetEstimator(model, scoring, recal_batches=args.recal_batches, seed=args.seed)
    t0 = time.perf_counter()
    estimate = est.score(archs)
    score_s = time.perf_counter() - t0
    metrics = trust_metrics(estimate, truth, ceiling_tau=ceiling["kendall"])
    cost = table_cost(table)
    return {
        "table": str(table.relative_to(REPO) if table.is_relative_to(REPO) else table),
        "space": space.name,
        "space_options": dict(space.options),
        "method": method,
        "sharing": sharing,
        "archs": len(archs),
        "model_params": count_params(model),
        "lr": train["lr"],
        "train_seconds": train_s,
        "score_seconds": score_s,
        "table_seconds": cost,
        "cost_fraction": (train_s + score_s) / cost,
        "ceiling_kendall": ceiling["kendall"],
        "metrics": metrics,
        "estimate": [float(v) for v in estimate],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", type=Path, action="append", help="ground-truth CSV (repeatable)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--sharing", help="weight-sharing modes to run, comma-separated (default: all)")
    p.add_argument("--target", default="test_accuracy")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument(
        "--hyper-lr",
        type=float,
        default=0.005,
        help="lr of smash/ghn (2 epochs on nb201_fmnist: 0.005 best of 0.1/0.02/0.005/0.002)",
    )
    p.add_argument("--recal-batches", type=int, default=10)
    p.add_argument("--score-val", type=int, default=1000, help="val images used to score")
    p.add_argument("--finetune-steps", type=int, default=20, help="pruning: steps per arch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: two threads on busy cores made SMASH 25x slower here)",
    )
    p.add_argument(
        "--train-only",
        action="store_true",
        help="train and keep the models, score nothing (while the table is still being built)",
    )
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/oneshot_ranking.json")
    args = p.parse_args()
    valid = sorted({m for ms in SHARING.values() for m in ms})
    unknown = sorted(set((args.sharing or "").split(",")) - {"", *valid})
    if unknown:
        p.error(f"unknown --sharing {', '.join(unknown)}; valid: {', '.join(valid)}")
    torch.set_num_threads(args.threads)
    tables = [t for t in (args.table or TABLES) if t.is_file()]
    if not tables:
        raise SystemExit("no table found: build one with `supernas bench build` first")
    settings = settings_of(args)
    console = Console()
    for table in tables:
        meta = read_json(table.with_name(table.name + ".meta.json"))
        n_rows = len(table.read_text().splitlines()) - 1
        for method in args.methods.split(","):
            if meta["space"] not in ONLY.get(method, {meta["space"]}):
                continue
            own = method == "pruning" or method in HYPERNETS
            modes = [None] if own else SHARING.get(meta["space"], [None])
            if args.sharing and modes != [None]:
                modes = [m for m in modes if m in args.sharing.split(",")]
            for sharing in modes:
                key = (str(table.name), method, sharing)
                doc = current(args.out, settings)  # another process may have added to it
                done = [
                    r
                    for r in doc["results"]
                    if (Path(r["table"]).name, r["method"], r["sharing"]) == key
                    and r.get("rows") == n_rows
                ]
                if done:
                    continue
                console.print(f"{table.name}: {method} (sharing {sharing}) ...")
                res = run_one(table, method, sharing, args)
                if res is None:
                    continue
                res["rows"] = n_rows
                doc = merge(args.out, settings, key, res)
    show(console, current(args.out, settings))
    console.print(f"wrote {args.out}")


def current(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The results on disk, if they were made with these settings (else none)."""
    doc = read_json(path, missing={})
    if doc.get("settings") != settings:
        doc = {"format": FORMAT, "settings": settings, "results": []}
    return doc


def merge(
    path: Path, settings: dict[str, Any], key: tuple[str, str, str | None], res: dict[str, Any]
) -> dict[str, Any]:
    """Add one result to the JSON as it is on disk now: processes given disjoint --methods
    share one results file, each read-modify-write under a lock."""
    with locked(path):
        doc = current(path, settings)
        doc["results"] = [
            r for r in doc["results"] if (Path(r["table"]).name, r["method"], r["sharing"]) != key
        ]
        doc["results"].append(res)
        doc["machine"] = {"python": platform.python_version(), "torch": torch.__version__}
        write_json(path, doc)
        return doc


def show(console: Console, doc: dict[str, Any]) -> None:
    t = Table(title="one-shot ranking vs ground-truth tables")
    for c in ("table", "method", "sharing", "archs", "tau", "rho", "top-10%", "regret",
              "ceiling", "tau/ceiling", "cost"):  # fmt: skip
        t.add_column(c)
    for r in doc["results"]:
        m = r["metrics"]
        t.add_row(
            Path(r["table"]).stem,
            r["method"],
            str(r["sharing"] or "-"),
            str(r["archs"]),
            f"{m['kendall']:.3f}",
            f"{m['spearman']:.3f}",
            f"{m['top_precision']:.2f}",
            f"{m['regret']:.4f}",
            f"{r['ceiling_kendall']:.3f}",
            f"{m['fraction_of_ceiling']:.2f}",
            f"{100 * r['cost_fraction']:.1f}%",
        )
    console.print(t)


if __name__ == "__main__":
    main()
