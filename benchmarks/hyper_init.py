"""Is a hypernet's generated weight set a better start than random init? Measured per k.

For each hypernet that `benchmarks/oneshot_ranking.py` trained on a ground-truth table's data
(kept in `<its out>.models/`), N archs drawn from the table (fixed seed) are fine-tuned for k
SGD steps from the generated weights and, on the same batches, from a seeded random init;
the val accuracy after each k (BN recalibrated on 4 train batches first) is averaged over
the archs. Writes a JSON and prints a table.

    python benchmarks/hyper_init.py --table benchmarks/tables/nb201_fmnist.csv
"""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from supernas.bench.build import data_options
from supernas.bench.table import load_tables
from supernas.data import load_data
from supernas.hyper.finetune import compare_init
from supernas.hyper.load import model_for
from supernas.io import load_checkpoint, read_json, write_json
from supernas.space import get_space
from supernas.train import Recipe, get_trainer

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "benchmarks/results/oneshot_ranking.models"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--table", type=Path, default=REPO / "benchmarks/tables/nb201_fmnist.csv")
    p.add_argument("--methods", default="smash,ghn")
    p.add_argument("--models", type=Path, default=MODELS, help="folder of kept hypernets")
    p.add_argument("--archs", type=int, default=10)
    p.add_argument("--steps", default="0,20,100")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks/results/hyper_init.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    meta = read_json(args.table.with_name(args.table.name + ".meta.json"))
    space = get_space(meta["space"], **meta["space_options"])
    data = load_data(**data_options(meta))
    names = load_tables([str(args.table)]).archs
    rng = np.random.default_rng(args.seed)
    archs = [space.parse(names[i]) for i in rng.choice(len(names), args.archs, replace=False)]
    steps = [int(k) for k in args.steps.split(",")]
    recipe = Recipe(batch_size=args.batch_size, lr=args.lr)
    rows: list[dict[str, Any]] = []
    for method in args.methods.split(","):
        saved = args.models / f"{args.table.stem}_{method}_None.pt"
        if not saved.is_file():
            raise SystemExit(f"{saved} not found: run benchmarks/oneshot_ranking.py first")
        ckpt = load_checkpoint(saved)
        trainer = get_trainer(method, recipe=Recipe(), seed=ckpt["settings"]["seed"])
        hyper = model_for(trainer, space)
        hyper.load_state_dict(ckpt["state_dict"])
        for k in steps:
            runs = [
                compare_init(hyper, a, data, steps=k, recipe=recipe, seed=args.seed) for a in archs
            ]
            gen, rnd = [r["hypernet"] for r in runs], [r["random"] for r in runs]
            rows.append(
                {
                    "method": method,
                    "steps": k,
                    "hypernet": statistics.mean(gen),
                    "random": statistics.mean(rnd),
                    "hypernet_wins": sum(g > r for g, r in zip(gen, rnd, strict=True)),
                    "per_arch": runs,
                }
            )
            Console().print(
                f"{method} k={k}: {rows[-1]['hypernet']:.4f} vs {rows[-1]['random']:.4f}"
            )
    doc = {
        "table": str(
            args.table.relative_to(REPO) if args.table.is_relative_to(REPO) else args.table
        ),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "archs": [str(a) for a in archs],
        "results": rows,
        "machine": {"python": platform.python_version(), "torch": torch.__version__},
    }
    write_json(args.out, doc)
    t = Table(title=f"fine-tuning from generated vs random init ({len(archs)} archs, val acc.)")
    for c in ("hypernet", "k steps", "from generated", "from random", "generated better"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            r["method"],
            str(r["steps"]),
            f"{r['hypernet']:.4f}",
            f"{r['random']:.4f}",
            f"{r['hypernet_wins']}/{len(archs)}",
        )
    Console().print(t)
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
