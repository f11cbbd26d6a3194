"""Zero-cost proxies on NAS-Bench-201: rank correlation with CIFAR-10 test accuracy, and cost.

A fixed-seed sample of archs from the NB201 table is scored by every proxy on the full
NB201 networks (C=16, N=5, 10 classes) from one minibatch. CIFAR-10 images are not on this
machine, so data-dependent proxies see Fashion-MNIST resized to 32x32 and repeated to 3
channels (`--data random`: Gaussian images); synflow (all-ones input), zen and AZ-NAS
(Gaussian input) ignore the data by definition.

Cost: for each arch, each proxy's wall time divided by the time of one training step
(forward, CE loss, backward, SGD-momentum step) of the same network on the same batch,
timed in the same process right after the proxies; the table shows the median over archs.

Ensembles: `vote` (synflow, jacov, snip: Abdelfattah et al.), `az_nas` (its own rank
aggregation), fixed rank averages, and one rank average whose members are chosen greedily
on half of the archs and reported on the other half (so its rho is not fitted to the
archs it is judged on).

Every arch's scores are appended to a work file (kept in benchmarks/results/, so any
proxy can be rescored or any ensemble recomputed later) as they come: a killed run resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from supernas.bench.correlate import correlation
from supernas.bench.table import load_tables
from supernas.console import progress_columns
from supernas.io import write_json, write_text
from supernas.proxies import PROXIES, Ensemble, ProxyEstimator, proxy_batch, resolve
from supernas.space import get_space

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TABLE = REPO.parent / "shared" / "data" / "nb201" / "accuracy.csv"
#: Published Spearman rho vs CIFAR-10 accuracy on NB201 (shared/data/README.md).
PUBLISHED = {
    "synflow": (0.73, 0.78),
    "jacov": (0.73, 0.80),
    "nwot": (0.77, 0.81),
    "params": (0.72, 0.80),
    "flops": (0.69, 0.77),
    "zico": (0.76, 0.80),
    "snip": (0.58, 0.60),
    "grad_norm": (0.57, 0.60),
    "grasp": (0.51, 0.54),
    "fisher": (0.36, 0.55),
    "swap": (0.79, 0.79),
    "reg_swap": (0.88, 0.88),
    "vote": (0.82, 0.82),
}
SINGLE_PASS = ("grad_norm", "snip", "synflow", "jacov", "nwot", "params")
FIXED_ENSEMBLES = (
    "vote",
    "az_nas",
    "rankavg:synflow+nwot+jacov",
    "rankavg:nwot+synflow+zico+flops",
)

_EST: ProxyEstimator | None = None
_NAMES: list[str] = []


def per_network_proxies() -> list[str]:
    """Every per-network proxy, with AZ-NAS's four members measured by its one pass."""
    az = set(resolve("az_nas").members)
    names = [n for n in PROXIES.names() if not isinstance(PROXIES.get(n), Ensemble)]
    return [n for n in names if n not in az] + ["az_nas"]


def _init(space_opts: dict, batch: tuple, names: list[str], seed: int) -> None:
    global _EST, _NAMES
    torch.set_num_threads(1)
    _EST = ProxyEstimator(get_space("nb201", **space_opts), names, batch, seed=seed)
    _NAMES = names


def train_step_seconds(est: ProxyEstimator, arch: Any) -> float:
    """One forward + CE + backward + SGD-momentum step of the arch's network on the batch."""
    net = est.network(arch).train()
    x, y = est.batch
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    opt.step()
    return time.perf_counter() - t0


def _score(item: tuple[int, str]) -> dict[str, Any]:
    """Worker: every proxy on one arch, with per-proxy seconds and the training-step time."""
    assert _EST is not None
    i, text = item
    arch = _EST.space.parse(text)
    before = dict(_EST.seconds)
    scores = _EST.measure(arch, _NAMES)
    seconds = {k: v - before.get(k, 0.0) for k, v in _EST.seconds.items()}
    return {
        "i": i,
        "arch": text,
        "scores": scores,
        "seconds": seconds,
        "step": train_step_seconds(_EST, arch),
    }


def _read_work(path: Path) -> dict[int, dict]:
    """Lines already scored; a line cut short by a kill is ignored (and redone)."""
    done: dict[int, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[row["i"]] = row
    return done


def score_all(args: argparse.Namespace, archs: list[str], batch: tuple, names: list[str]) -> list:
    work = Path(args.work)
    work.parent.mkdir(parents=True, exist_ok=True)
    header = {"n": args.n, "seed": args.seed, "batch_size": args.batch_size, "data": args.data}
    meta = work.with_suffix(".meta.json")
    if meta.exists() and json.loads(meta.read_text()) != header:
        raise SystemExit(f"{work} was made with other settings; delete it or pass --work")
    write_json(meta, header)
    done = _read_work(work)
    todo = [(i, a) for i, a in enumerate(archs) if i not in done]
    space_opts = {"C": args.C, "N": args.N, "num_classes": 10}
    ctx = get_context("fork")
    with (
        Progress(*progress_columns()) as bar,
        work.open("a") as f,
        ctx.Pool(args.workers, _init, (space_opts, batch, names, args.seed)) as pool,
    ):
        task = bar.add_task("proxies on NB201", total=len(archs), completed=len(done))
        for row in pool.imap_unordered(_score, todo):
            f.write(json.dumps(row) + "\n")
            f.flush()
            done[row["i"]] = row
            bar.advance(task)
    return [done[i] for i in range(len(archs))]


def rescore(args: argparse.Namespace, archs: list[str], batch: tuple, names: list[str]) -> None:
    """Score `names` again on every arch of a finished work file (after a proxy changed).

    The new scores replace the old; their cost is against a training step timed with them.
    """
    work = Path(args.work)
    done = _read_work(work)
    if len(done) < len(archs):
        raise SystemExit(f"{work} has {len(done)} of {len(archs)} archs: finish it first")
    only = json.loads(Path(args.rescore_only).read_text()) if args.rescore_only else None
    todo = [(i, a) for i, a in enumerate(archs) if only is None or i in set(only)]
    space_opts = {"C": args.C, "N": args.N, "num_classes": 10}
    with (
        Progress(*progress_columns()) as bar,
        get_context("fork").Pool(
            args.workers, _init, (space_opts, batch, names, args.seed)
        ) as pool,
    ):
        task = bar.add_task(f"rescore {','.join(names)}", total=len(todo))
        for new in pool.imap_unordered(_score, todo):
            row = done[new["i"]]
            row["scores"].update(new["scores"])
            row["seconds"].update(new["seconds"])
            row.setdefault("rescore_step", {}).update(dict.fromkeys(new["seconds"], new["step"]))
            bar.advance(task)
    write_text(work, "".join(json.dumps(done[i]) + "\n" for i in range(len(archs))))


def _columns(names: list[str]) -> list[str]:
    """Measured names, each one-pass ensemble followed by its members' own columns."""
    out: list[str] = []
    for n in names:
        p = resolve(n)
        if isinstance(p, Ensemble) and p.measure is not None:
            out += [m for m in p.members if m not in out]
        if n not in out:
            out.append(n)
    return out


def greedy_rank_average(raw: list[dict], truth: np.ndarray, names: list[str], fit: np.ndarray):
    """Forward selection of rank-average members on the `fit` rows (Spearman)."""
    chosen: list[str] = []
    best = -math.inf
    while True:
        trial = None
        for n in names:
            if n in chosen:
                continue
            members = [*chosen, n]
            col = _rankavg(raw, members, fit)
            rho = correlation(col, truth[fit])["spearman"]
            if rho > best + 1e-4:
                best, trial = rho, n
        if trial is None or len(chosen) >= 6:
            return chosen, best
        chosen.append(trial)


def _steps(row: dict[str, Any], name: str) -> float:
    """`name`'s cost in training steps for one arch: its time over the step timed with it."""
    seconds, rescored = row["seconds"], row.get("rescore_step", {})
    if name in seconds:
        return seconds[name] / rescored.get(name, row["step"])
    p = resolve(name)
    if isinstance(p, Ensemble):
        return sum(_steps(row, m) for m in p.members)
    for other in seconds:  # a member measured by its ensemble's one pass
        q = resolve(other)
        if isinstance(q, Ensemble) and name in q.members:
            return _steps(row, other)
    return 0.0


def _seconds(row: dict[str, Any], name: str) -> float:
    """`name`'s wall time for one arch (for the seconds-per-arch column)."""
    return _steps(row, name) * row["step"]


def _rankavg(raw: list[dict], members: list[str], rows: np.ndarray) -> list[float]:
    sub = [raw[i] for i in rows]
    if len(members) == 1:
        return [r[members[0]] for r in sub]
    return ProxyEstimator.combine(sub, ["rankavg:" + "+".join(members)])[
        "rankavg:" + "+".join(members)
    ]


def _data_note(data: str) -> str:
    if data == "random":
        return "Gaussian images (3x32x32)"
    return (
        f"{data} resized to 32x32 and repeated to 3 channels, standing in for CIFAR-10 "
        "(not on this machine)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default=str(DEFAULT_TABLE))
    p.add_argument("--target", default="cifar10_test")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data", default="fashion-mnist", help="fashion-mnist, digits or random")
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--N", type=int, default=5)
    p.add_argument("--proxies", default="", help="comma list (default: every proxy)")
    p.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    p.add_argument("--out", default=str(REPO / "benchmarks/results/proxies_nb201.json"))
    p.add_argument("--work", default=str(REPO / "benchmarks/results/proxies_nb201.scores.jsonl"))
    p.add_argument(
        "--partial", action="store_true", help="report the archs scored so far; score nothing"
    )
    p.add_argument("--rescore", default="", help="comma list: score these again on every arch")
    p.add_argument(
        "--rescore-only", default="", help="JSON list of arch indices: rescore just these"
    )
    args = p.parse_args()

    table = load_tables([args.table])
    space = table.space()
    truth_by_arch = table.values(args.target)
    rng = np.random.default_rng(args.seed)
    archs = [table.archs[i] for i in rng.choice(len(table.archs), args.n, replace=False)]
    names = [s for s in args.proxies.split(",") if s] or per_network_proxies()
    for n in names:
        resolve(n)
    columns = _columns(names)
    ensembles = [e for e in FIXED_ENSEMBLES if e not in columns]
    ensembles = [e for e in ensembles if all(m in columns for m in resolve(e).members)]
    columns += ensembles
    nb = get_space("nb201", C=args.C, N=args.N, num_classes=10)
    batch = proxy_batch(args.data, nb, batch_size=args.batch_size, seed=args.seed)
    t0 = time.perf_counter()
    if args.partial:
        done = _read_work(Path(args.work))
        keep = [i for i in range(len(archs)) if i in done]
        archs, rows = [archs[i] for i in keep], [done[i] for i in keep]
        args.out = str(Path(args.out).with_suffix(".partial.json"))
    else:
        if args.rescore:
            rescore(args, archs, batch, [n for n in args.rescore.split(",") if n])
        rows = score_all(args, archs, batch, names)
    wall = time.perf_counter() - t0
    del space

    raw = [r["scores"] for r in rows]
    truth = np.array([truth_by_arch[a] for a in archs])
    steps = np.array([r["step"] for r in rows])
    results: dict[str, Any] = {}
    cols = ProxyEstimator.combine(raw, columns)
    for name in columns:
        p_ = resolve(name)
        per_arch = [_seconds(r, name) for r in rows]
        ratios = [_steps(r, name) for r in rows]
        results[name] = {
            **correlation(cols[name], truth),
            "cost_steps": float(np.median(ratios)),
            "seconds_per_arch": float(np.mean(per_arch)),
            "published": PUBLISHED.get(name),
            "ensemble": isinstance(p_, Ensemble),
        }
    idx = np.arange(len(archs))
    fit, held = idx[::2], idx[1::2]
    singles = [c for c in columns if not isinstance(resolve(c), Ensemble)]
    members, fit_rho = greedy_rank_average(raw, truth, singles, fit)
    held_res = correlation(_rankavg(raw, members, held), truth[held])
    selected = {
        "members": members,
        "spearman_fit_half": fit_rho,
        "spearman_held_out_half": held_res["spearman"],
        "kendall_held_out_half": held_res["kendall"],
        "top_precision_held_out_half": held_res["top_precision"],
    }

    view = Table(title=f"zero-cost proxies on {len(archs)} NB201 archs vs {args.target}")
    for col in ("proxy", "Spearman", "published", "Kendall", "top-10%", "NaN", "cost (steps)"):
        view.add_column(col, justify="left" if col == "proxy" else "right")
    for name, r in sorted(results.items(), key=lambda kv: -np.nan_to_num(kv[1]["spearman"])):
        pub = r["published"]
        view.add_row(
            name,
            f"{r['spearman']:.3f}",
            "" if pub is None else f"{pub[0]:.2f}-{pub[1]:.2f}",
            f"{r['kendall']:.3f}",
            f"{r['top_precision']:.2f}",
            str(r["n_nan"]),
            f"{r['cost_steps']:.2f}",
        )
    console = Console()
    console.print(view)
    console.print(f"data: {_data_note(args.data)}; batch {args.batch_size}; {args.workers} workers")
    console.print(
        f"rank average chosen on half the archs: {'+'.join(members)}; Spearman "
        f"{fit_rho:.3f} on that half, {held_res['spearman']:.3f} on the held-out half"
    )
    write_json(
        args.out,
        {
            "benchmark": "proxies_nb201",
            "n_archs": len(archs),
            "seed": args.seed,
            "target": args.target,
            "data": args.data,
            "data_note": _data_note(args.data),
            "batch_size": args.batch_size,
            "network": {"C": args.C, "N": args.N, "num_classes": 10},
            "nan_policy": "undefined scores ranked worst",
            "train_step_seconds_median": float(statistics.median(steps)),
            "wall_seconds": wall,
            "workers": args.workers,
            "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
            "torch": torch.__version__,
            "proxies": results,
            "selected_rank_average": selected,
        },
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
