"""`supernas search --workers/--storage/--study` and `supernas worker`: search by many workers
on one Optuna study in SQLite or PostgreSQL (the machinery is in `search/distributed.py`).

Why the estimator is a spec and not an object: a worker on another machine rebuilds it from
the study's user attrs (table files + column, or supernet checkpoint + data), so it needs
only `--storage URL --study NAME`. Paths are recorded absolute: every machine must see the
files at the same path (a shared or copied folder).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from supernas.errors import SupernasError

WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="N local worker processes on one Optuna study (default 1; 0: only create it)",
    ),
]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="study database: sqlite:///PATH (default: next to --out) or postgresql://...",
    ),
]
StudyOpt = Annotated[str, typer.Option("--study", help="study name in --storage")]
TableOpt = Annotated[
    list[Path] | None, typer.Option("--table", help="score archs by a table column (CSV)")
]
ColumnOpt = Annotated[str | None, typer.Option("--column", help="with --table: the column")]

HEARTBEAT_S = 2  # a trial's heartbeat period ...
GRACE_S = 10  # ... and how long it may miss before another worker retries it


# -- the estimator, as a spec any machine can rebuild ------------------------------------------
def estimator_spec(
    supernet: Path | None, table: list[Path] | None, column: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    if (supernet is None) == (not table):
        raise SupernasError(
            "with --workers/--storage give --table FILE --column NAME or --supernet"
        )
    if table:
        if not column:
            raise SupernasError("--table needs --column NAME (e.g. cifar10_valid)")
        return {
            "kind": "table",
            "tables": [str(Path(t).resolve()) for t in table],
            "column": column,
        }
    return {"kind": "supernet", "checkpoint": str(Path(str(supernet)).resolve()), **data}


def build_estimator(spec: dict[str, Any]) -> tuple[Any, Any, Any, int]:
    """(space, score, feasible or None, number of archs it can score) from an estimator spec."""
    kind = spec.get("kind")
    if kind == "table":
        from supernas.bench.table import TableEstimator, load_tables

        est = TableEstimator(load_tables(spec["tables"]), spec["column"])
        lookup = est.table.arch_values(spec["column"])
        return est.table.space(), est.score, lookup.__contains__, len(lookup)
    if kind == "supernet":
        from supernas.cli import _load_data
        from supernas.estimate import SupernetEstimator
        from supernas.train import load_supernet

        net, _ = load_supernet(Path(spec["checkpoint"]))
        ds = _load_data(
            spec["data"], spec["data_dir"], spec["max_train"], spec["max_val"], spec["image_size"]
        )
        est = SupernetEstimator(net, ds, recal_batches=spec["recal_batches"], seed=spec["seed"])
        return net.space, est.score, None, net.space.size
    raise SupernasError(f"unknown estimator in the study: {kind!r}")


# -- workers -------------------------------------------------------------------------------------
def run_worker(
    storage: str, study: str, seed: int, stop: threading.Event | None = None, built: Any = None
) -> Any:
    """One worker to the end of the study; `built`: the estimator, already built (forked)."""
    from supernas.search.distributed import Worker, load_spec

    spec = load_spec(storage, study)
    space, score, feasible, _ = built or build_estimator(spec["estimator"])
    w = Worker(storage, study, space, score, seed=seed, feasible=feasible, stop=stop)
    return w.run()


def _child(storage: str, study: str, seed: int, built: Any) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the trial, then exit
    try:
        run_worker(storage, study, seed, stop, built)
    except SupernasError as exc:
        print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr)
        sys.exit(2)


def start_local_workers(storage: str, study: str, seeds: list[int], built: Any = None) -> list[Any]:
    """One worker process per seed. Forked where possible, inheriting the table estimator
    `built` here: a start costs no import of torch and no table parse. A supernet estimator
    is rebuilt in each worker (torch's thread pools do not survive a fork)."""
    fork = "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    built = built if fork else None
    procs = [ctx.Process(target=_child, args=(storage, study, s, built)) for s in seeds]
    gc.collect()  # a child must not finalize (and close) the parent's old DB connections
    for p in procs:
        p.start()
    return procs


def distributed_search(
    *,
    supernet: Path | None,
    table: list[Path] | None,
    column: str | None,
    data: dict[str, Any],
    strategy: str | None,
    strategy_options: dict[str, Any],
    budget: int,
    top_k: int,
    seed: int,
    workers: int | None,
    storage: str | None,
    study: str,
    out: Path | None,
    quiet: bool,
    unsupported: dict[str, Any],
) -> None:
    """Create (or resume) the study, run N local workers on it, print and write the top-k."""
    from supernas.cli import out_console
    from supernas.console import progress_bar
    from supernas.search.distributed import (
        Claims,
        create_study,
        make_sampler,
        open_storage,
        redact,
    )

    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise SupernasError(f"{', '.join(bad)} cannot be combined with --workers/--storage yet")
    if workers is not None and workers < 0:
        raise SupernasError(f"--workers must be >= 0, got {workers}")
    if budget < 1:
        raise SupernasError(f"--budget must be >= 1, got {budget}")
    url = storage or "sqlite:///" + str(
        (out.with_suffix(".db") if out else Path("supernas-study.db")).resolve()
    )
    est = estimator_spec(supernet, table, column, data)
    built = build_estimator(est)
    space, size = built[0], built[3]
    strat = strategy or "tpe"
    make_sampler(strat, seed, strategy_options)  # bad names and options fail here, not in workers
    spec = {
        "format": 1,
        "space": space.name,
        "space_options": space.options,
        "estimator": est,
        "budget": min(budget, size),
        "strategy": strat,
        "strategy_options": strategy_options,
        "heartbeat_s": HEARTBEAT_S,
        "grace_s": GRACE_S,
    }
    create_study(url, study, spec)
    claims = Claims(open_storage(url).engine, study)
    if workers == 0:  # workers join with `supernas worker`; run it again for the top-k so far
        out_console.print(
            f"study {study!r} in {redact(url)}: {claims.count()} of {spec['budget']} archs "
            f"claimed; start workers with\n"
            f"  supernas worker --storage '{redact(url)}' --study {study}",
            soft_wrap=True,  # a command to copy: never broken across lines
        )
        if claims.count():
            _report(url, study, spec, top_k, out)
        return
    workers = 1 if workers is None else workers
    seeds = [seed * 1000 + i + 1 for i in range(workers)]
    procs = start_local_workers(url, study, seeds, built if est["kind"] == "table" else None)
    try:
        with progress_bar(f"search ({workers} workers)", spec["budget"], not quiet) as advance:
            seen = 0
            while any(p.is_alive() for p in procs):
                time.sleep(0.5)
                n = claims.count()
                advance(n - seen)
                seen = n
    finally:
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise SupernasError(f"{len(failed)} of {workers} workers failed (exit codes {failed})")
    _report(url, study, spec, top_k, out)


def _report(url: str, study: str, spec: dict[str, Any], top_k: int, out: Path | None) -> None:
    """The top-k of the study's scored archs: a table, and the result JSON at --out."""
    from rich.table import Table

    from supernas.cli import out_console
    from supernas.io import write_json
    from supernas.search import SearchResult, Trial
    from supernas.search.distributed import audit, redact, space_of, study_trials

    space = space_of(spec)
    trials = [Trial(space.parse(a), v, slot) for slot, a, v in study_trials(url, study)]
    result = SearchResult(trials)
    top = result.top_k(top_k)
    if out:
        write_json(
            out,
            {
                "strategy": spec["strategy"],
                "budget": spec["budget"],
                "storage": redact(url),
                "study": study,
                "audit": audit(url, study),
                "top_k": [{"arch": str(t.arch), "estimate": t.value} for t in top],
                "result": result.to_json(),
            },
        )
    table = Table("rank", "arch", "estimate", title=f"study {study}: {len(trials)} archs")
    for i, t in enumerate(top):
        table.add_row(str(i), str(t.arch), f"{t.value:.4f}")
    out_console.print(table)


# -- `supernas worker` -----------------------------------------------------------------------
def worker(
    storage: Annotated[str, typer.Option("--storage", help="the study's database URL")],
    study: Annotated[str, typer.Option("--study", help="study name")] = "supernas",
    seed: Annotated[int, typer.Option("--seed", help="this worker's sampler seed")] = -1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Join a study made by `supernas search --storage ... --workers 0`: take trials until its
    budget is spent. Safe to kill (SIGKILL too) and restart; SIGTERM finishes the trial first."""
    from supernas.cli import out_console

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rep = run_worker(storage, study, seed if seed >= 0 else os.getpid(), stop)
    if not quiet:
        out_console.print(
            f"worker {os.getpid()}: {rep.evaluated} archs scored, {rep.reused} repeats reused, "
            f"{rep.skipped} skipped, {rep.failed} failed",
            soft_wrap=True,
        )
