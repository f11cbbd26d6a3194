"""Mixed-precision quantization search on digits (SPOS, Guo et al. 2020, section 4.3).

Trains the resnet18_quant supernet with SPOS under a size constraint of 4 bits per weight
on average (model_bits <= 4/32 of the float network's), searches it with regularized
evolution under that constraint, then retrains the found arch (quantization-aware
training: its standalone network fake-quantizes as it trains) and the all-32-bit (float)
arch with one recipe, and prints accuracy, model size and BitOPs side by side.

Goal: the found arch within 1 point of the float arch's test accuracy at <= 1/6 of its
model size.

    python benchmarks/quant_digits.py                     # small: minutes on a free CPU
    python benchmarks/quant_digits.py --base-width 8 --epochs 30 --retrain-epochs 30
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from supernas.data import load_data
from supernas.estimate import SupernetEstimator, train_arch
from supernas.hardware import ArchCost
from supernas.io import write_json
from supernas.search import get_strategy, run_search
from supernas.space import Arch, get_space
from supernas.supernet import build_supernet
from supernas.train import Recipe, get_trainer

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "quant_digits.json"


def row(name: str, arch: Arch, cost: ArchCost, acc: float, float_bits: int) -> dict[str, Any]:
    bits = cost.model_bits(arch)
    return {
        "name": name,
        "arch": str(arch),
        "test_accuracy": acc,
        "model_bits": bits,
        "model_kib": bits / 8 / 1024,
        "size_vs_float": bits / float_bits,
        "bitops": cost.bitops(arch),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-width", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=5, help="supernet epochs")
    ap.add_argument("--budget", type=int, default=40, help="archs evaluated by evolution")
    ap.add_argument("--retrain-epochs", type=int, default=8)
    ap.add_argument("--avg-bits", type=float, default=4.0, help="size limit: bits per weight")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-train", type=int, default=0, help="stratified subset (0 = all)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    data = load_data("digits", max_train=args.max_train)
    space = get_space(
        "resnet18_quant",
        base_width=args.base_width,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
    )
    cost = ArchCost(space, data.input_shape)
    full = space.arch([32] * len(space.choices))
    float_bits = cost.model_bits(full)
    limit = float_bits * args.avg_bits / 32

    def feasible(arch: Arch) -> bool:
        return cost.model_bits(arch) <= limit

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    recipe = Recipe(epochs=args.epochs, batch_size=64, lr=0.1)
    with torch.random.fork_rng():
        torch.manual_seed(args.seed)
        supernet = build_supernet(space)
    get_trainer("spos", recipe=recipe, seed=args.seed, constraint=feasible).fit(supernet, data)
    seconds["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    estimator = SupernetEstimator(supernet, data, recal_batches=8, seed=args.seed)
    strategy = get_strategy(
        "evolution", space, seed=args.seed, constraint=feasible, population=12, sample_size=4
    )
    best = run_search(strategy, estimator.score, args.budget).best
    seconds["search"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    retrain = Recipe(epochs=args.retrain_epochs, batch_size=64, lr=0.1)
    rows = []
    for name, arch in (("found (QAT)", best.arch), ("float (32-bit)", full)):
        _, res = train_arch(space, arch, data, retrain, seed=args.seed)
        rows.append(row(name, arch, cost, res.test_accuracy, float_bits))
    rows[0]["supernet_estimate"] = best.value
    seconds["retrain"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - t_all

    found, flt = rows
    goal = {
        "accuracy_gap_points": 100 * (flt["test_accuracy"] - found["test_accuracy"]),
        "size_ratio": found["size_vs_float"],
        "met": flt["test_accuracy"] - found["test_accuracy"] <= 0.01
        and found["size_vs_float"] <= 1 / 6,
    }
    table = Table(title=f"resnet18_quant on digits (base width {args.base_width})")
    for col in ("arch", "test acc", "model bits", "KiB", "size / float", "BitOPs"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            f"{r['name']}: {r['arch']}",
            f"{r['test_accuracy']:.4f}",
            f"{r['model_bits']:,}",
            f"{r['model_kib']:.1f}",
            f"{r['size_vs_float']:.3f}",
            f"{r['bitops']:.3g}",
        )
    Console(width=180).print(table)
    print(
        f"gap {goal['accuracy_gap_points']:.2f} points at {goal['size_ratio']:.3f} of the "
        f"float size: goal {'met' if goal['met'] else 'NOT met'}; {seconds['total']:.0f} s"
    )
    write_json(
        args.out,
        {
            "settings": vars(args) | {"out": str(args.out), "size_limit_bits": limit},
            "rows": rows,
            "goal": goal,
            "seconds": seconds,
        },
    )


if __name__ == "__main__":
    main()
