"""Build a ground-truth table: sampled archs trained standalone with one recipe, several seeds.

Why our own tables: published tables (NAS-Bench-201) are for CIFAR and ImageNet; the user's
question is how an estimator ranks archs on *their* task, and only standalone training on
that task answers it. Two seeds per arch also give the table's noise ceiling.

The table is a `CachedTrainFromScratch` file: each finished (arch, seed) is appended at
once, so a killed build loses at most the runs in flight and a restart trains only the
missing rows. With `workers > 1`, training runs in spawned processes (each loads the data
once and trains with `threads` torch threads) and the parent alone writes the file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from supernas.bench.anytime import sample_archs
from supernas.data import Dataset, load_data
from supernas.errors import SupernasError
from supernas.estimate.cached import CachedTrainFromScratch, train_row
from supernas.space import Arch, SearchSpace, get_space
from supernas.train import Recipe


@dataclass(frozen=True)
class BuildPlan:
    """What to build: the space, the data (as `load_data` keywords), the recipe, the sample."""

    space: str
    space_options: dict[str, Any]
    data: dict[str, Any]
    recipe: Recipe
    archs: int
    seeds: int = 2
    sample_seed: int = 0
    workers: int = 1
    threads: int = 1

    def __post_init__(self) -> None:
        if self.archs < 1 or self.seeds < 1:
            raise SupernasError(f"need at least 1 arch and 1 seed, got {self.archs}, {self.seeds}")
        if self.workers < 1 or self.threads < 1:
            raise SupernasError("workers and threads must be at least 1")


def open_table(
    path: str | os.PathLike[str], plan: BuildPlan
) -> tuple[CachedTrainFromScratch, list[Arch]]:
    """The table file (created or checked against the plan) and the plan's archs in order."""
    space, data = materialize(plan)
    cache = CachedTrainFromScratch(path, space, data, plan.recipe)
    archs = sample_archs(space, plan.archs, plan.sample_seed)
    return cache, archs


def materialize(plan: BuildPlan) -> tuple[SearchSpace, Dataset]:
    """The plan's space and data; `in_channels`/`num_classes` default to the data's."""
    data = load_data(**plan.data)
    opts = {"in_channels": data.in_channels, "num_classes": data.num_classes}
    opts.update(plan.space_options)
    for key in ("in_channels", "num_classes"):
        have = getattr(data, key)
        if opts[key] != have:
            raise SupernasError(
                f"the data has {key}={have} but the space was given {key}={opts[key]}: "
                f"drop that option or set it to {have}"
            )
    return get_space(plan.space, **opts), data


def todo(cache: CachedTrainFromScratch, archs: list[Arch], seeds: int) -> list[tuple[Arch, int]]:
    """The (arch, seed) runs the file lacks, arch by arch: a partial table holds whole archs,
    every seed of each, so its noise ceiling and rankings are valid at any point."""
    return [(a, s) for a in archs for s in range(seeds) if (a, s) not in cache.rows]


# -- worker processes --------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(plan: BuildPlan) -> None:
    torch.set_num_threads(plan.threads)
    _WORKER["space"], _WORKER["data"] = materialize(plan)
    _WORKER["recipe"] = plan.recipe


def _train_in_worker(arch_text: str, seed: int) -> tuple[str, int, dict[str, float]]:
    space: SearchSpace = _WORKER["space"]
    arch = space.parse(arch_text)
    return arch_text, seed, train_row(space, arch, _WORKER["data"], _WORKER["recipe"], seed)


def build_table(
    path: str | os.PathLike[str],
    plan: BuildPlan,
    *,
    on_row: Callable[[Arch, int, dict[str, float]], None] | None = None,
    limit: int | None = None,
    opened: tuple[CachedTrainFromScratch, list[Arch]] | None = None,
) -> dict[str, Any]:
    """Train the plan's missing (arch, seed) runs into `path`; return what was done.

    `limit` stops after that many new runs (a build spread over several sessions);
    `opened` is `open_table(path, plan)` when the caller already has it.
    """
    cache, archs = opened or open_table(path, plan)
    jobs = todo(cache, archs, plan.seeds)
    if limit is not None:
        jobs = jobs[:limit]
    start = time.perf_counter()
    done = 0

    def finish(arch: Arch, seed: int, row: dict[str, float]) -> None:
        nonlocal done
        cache.record(arch, seed, row)
        done += 1
        if on_row:
            on_row(arch, seed, row)

    if plan.workers == 1 or len(jobs) <= 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(plan.threads)
        try:
            for arch, seed in jobs:
                finish(arch, seed, train_row(cache.space, arch, cache.data, plan.recipe, seed))
        finally:
            torch.set_num_threads(threads)
    else:
        _run_pool(cache, plan, jobs, finish)
    total = plan.archs * plan.seeds
    return {
        "path": str(Path(path)),
        "trained": done,
        "rows": sum(1 for a in archs for s in range(plan.seeds) if (a, s) in cache.rows),
        "total": total,
        "seconds": time.perf_counter() - start,
    }


def _run_pool(
    cache: CachedTrainFromScratch,
    plan: BuildPlan,
    jobs: list[tuple[Arch, int]],
    finish: Callable[[Arch, int, dict[str, float]], None],
) -> None:
    """At most `workers` runs in flight; each result is written as soon as it arrives."""
    pending = list(reversed(jobs))
    running: set[Future[tuple[str, int, dict[str, float]]]] = set()
    ctx = get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(
        plan.workers, mp_context=ctx, initializer=_init_worker, initargs=(plan,)
    ) as pool:
        try:
            while pending or running:
                while pending and len(running) < plan.workers:
                    arch, seed = pending.pop()
                    running.add(pool.submit(_train_in_worker, str(arch), seed))
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    text, seed, row = fut.result()
                    finish(cache.space.parse(text), seed, row)
        except BaseException:
            for fut in running:
                fut.cancel()
            raise


def data_options(meta: dict[str, Any]) -> dict[str, Any]:
    """`load_data` keywords that rebuild a table's data from its `.meta.json`.

    Why: an estimator judged against a table must see the table's data (same subset sizes,
    same resolution); the meta records the data name, split sizes and input shape.
    """
    if not meta.get("data"):
        raise SupernasError("the table's meta records no data: pass the data explicitly")
    opts: dict[str, Any] = {"data": meta["data"]}
    sizes = meta.get("sizes") or []
    if len(sizes) >= 2:
        opts.update(max_train=int(sizes[0]), max_val=int(sizes[1]))
    shape = meta.get("input_shape") or []
    if len(shape) == 3 and shape[1] == shape[2]:
        opts["image_size"] = int(shape[1])
    return opts


def table_summary(path: str | os.PathLike[str], column: str = "test_accuracy") -> dict[str, Any]:
    """What a table's README reports: size, accuracy range, seed noise, ceiling, cost."""
    import csv

    from supernas.bench.trust import noise_ceiling

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SupernasError(f"table {path} has no rows yet")
    by_arch: dict[str, list[float]] = {}
    for r in rows:
        by_arch.setdefault(r["arch"], []).append(float(r[column]))
    means = [sum(v) / len(v) for v in by_arch.values()]
    ceiling = noise_ceiling(path, column)
    seconds = [float(r["train_seconds"]) for r in rows]
    return {
        "rows": len(rows),
        "archs": len(by_arch),
        "column": column,
        "min": min(means),
        "max": max(means),
        "mean_abs_seed_diff": ceiling["mean_abs_seed_diff"],
        "ceiling_kendall": ceiling["kendall"],
        "ceiling_spearman": ceiling["spearman"],
        "ceiling_archs": ceiling["n_archs"],
        "train_hours": sum(seconds) / 3600,
        "median_run_seconds": sorted(seconds)[len(seconds) // 2],
    }
