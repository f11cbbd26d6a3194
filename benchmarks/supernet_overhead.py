"""How much a SPOS step on the supernet costs over the same step on the extracted network.

For each space and each sampled arch, one training step (forward, CE loss, backward, SGD
with momentum, zero_grad(set_to_none=True)) is timed on the supernet path and on
`supernet.extract(arch)`, interleaved so that drift in machine load hits both alike.
The ratio per space is the mean over archs of median(supernet) / median(standalone).
Goal: <= 1.10, i.e. weight sharing adds at most 10% to a training step.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from supernas.io import write_json
from supernas.space import get_space
from supernas.supernet import build_supernet

NUM_CLASSES = 10


def space_options(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "resnet18":
        return {"base_width": args.base_width, "num_classes": NUM_CLASSES}
    if name == "nb201":
        return {"C": args.nb201_c, "N": args.nb201_n, "num_classes": NUM_CLASSES}
    return {}


def make_step(
    model: nn.Module, forward: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, lr: float
) -> Callable[[], None]:
    """One SGD-momentum training step over all of `model`'s parameters."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(x), y).backward()
        opt.step()

    return step


def timed(step: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def bench_space(name: str, args: argparse.Namespace) -> dict[str, Any]:
    space = get_space(name, **space_options(name, args))
    torch.manual_seed(args.seed)
    sup = build_supernet(space).train()
    rng = np.random.default_rng(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    shape = (args.batch_size, space.options.get("in_channels", 3), args.image_size, args.image_size)
    x = torch.randn(shape, generator=g)
    y = torch.randint(0, NUM_CLASSES, (args.batch_size,), generator=g)
    rows = []
    for _ in range(args.archs):
        arch = space.sample(rng)
        net = sup.extract(arch).train()
        # Tiny lr: the weights barely move, so both sides time the same computation.
        sup_step = make_step(sup, lambda t, a=arch: sup(t, a), x, y, args.lr)
        net_step = make_step(net, net, x, y, args.lr)
        for _ in range(args.warmup):
            sup_step()
            net_step()
        t_sup, t_net = [], []
        for r in range(args.repeats):
            first, second = (sup_step, net_step) if r % 2 == 0 else (net_step, sup_step)
            a, b = timed(first), timed(second)
            t_sup.append(a if r % 2 == 0 else b)
            t_net.append(b if r % 2 == 0 else a)
        m_sup, m_net = statistics.median(t_sup), statistics.median(t_net)
        rows.append(
            {
                "arch": str(arch),
                "supernet_ms": 1e3 * m_sup,
                "standalone_ms": 1e3 * m_net,
                "ratio": m_sup / m_net,
                # Minima are less sensitive to other processes on a shared machine.
                "ratio_of_minima": min(t_sup) / min(t_net),
            }
        )
    return {
        "space": name,
        "options": space.options,
        "input_shape": list(shape),
        "ratio": statistics.fmean(r["ratio"] for r in rows),
        "ratio_of_minima": statistics.fmean(r["ratio_of_minima"] for r in rows),
        "archs": rows,
    }


def machine() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", default="resnet18,nb201", help="comma-separated space names")
    p.add_argument("--space", help="a single space (overrides --spaces)")
    p.add_argument("--base-width", type=int, default=16, help="resnet18 base width")
    p.add_argument("--nb201-c", type=int, default=8, help="nb201 C")
    p.add_argument("--nb201-n", type=int, default=1, help="nb201 N")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=28)
    p.add_argument("--archs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="benchmarks/results/supernet_overhead.json")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    names = [args.space] if args.space else [s.strip() for s in args.spaces.split(",") if s]

    results = [bench_space(name, args) for name in names]
    table = Table(title="SPOS step: supernet path vs extracted network (median ms)")
    for col in ("space", "arch", "supernet", "standalone", "ratio"):
        table.add_column(col, justify="left" if col in ("space", "arch") else "right")
    for res in results:
        for r in res["archs"]:
            table.add_row(
                res["space"],
                r["arch"],
                f"{r['supernet_ms']:.1f}",
                f"{r['standalone_ms']:.1f}",
                f"{r['ratio']:.3f}",
            )
        table.add_row(res["space"], "[b]mean ratio[/b]", "", "", f"[b]{res['ratio']:.3f}[/b]")
        table.add_row(res["space"], "mean ratio of minima", "", "", f"{res['ratio_of_minima']:.3f}")
        table.add_section()
    Console().print(table)
    report = {
        "benchmark": "supernet_overhead",
        "goal_ratio": 1.10,
        "args": vars(args),
        "machine": machine(),
        "spaces": {res["space"]: res for res in results},
    }
    write_json(args.out, report)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
