"""Soak test of multi-worker search: 4 worker processes on one PostgreSQL study, one of them
SIGKILLed and restarted every 20 s, for 2 minutes.

The workers are forked from this process, as `supernas search --workers N` starts them
(`cli_worker.start_local_workers`), so a restart costs no Python import: on a busy 2-core
machine a fresh `supernas worker` spends 20-70 s importing torch, and a kill every 20 s
would then test little but imports.

Objective: the NB201 table (cifar10_valid; ../shared/data) so that the database and the
workers, not training, are what is exercised. At the end every worker gets SIGTERM (it
finishes its trial), the stale trials of the last kill are retried by a drain pass, and the
study is audited: archs scored (`done`), claimed but never finished (`lost`, must be 0),
scored more than once (`duplicated`, must be 0), retried trials, reused repeats.

    python benchmarks/soak.py                      # starts a throwaway PostgreSQL server
    python benchmarks/soak.py --storage postgresql://user@host/db --seconds 600
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from supernas.cli_worker import (
    GRACE_S,
    HEARTBEAT_S,
    build_estimator,
    distributed_search,
    start_local_workers,
)
from supernas.io import write_json
from supernas.search.distributed import Worker, audit, load_spec, redact

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO.parent / "shared" / "data" / "nb201" / "accuracy.csv"


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL server in a temp folder on a free port (as `postgres` when root)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        sys.exit("PostgreSQL binaries not found: apt-get install postgresql, or pass --storage")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="supernas-soak-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    os.chmod(root, 0o777)
    data = root / "data"
    subprocess.run([*run_as, bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)  # fmt: skip
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=100"
    subprocess.run([*run_as, bindir / "pg_ctl", "-D", data, "-o", opts, "-l", root / "log",
                    "-w", "start"], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, bindir / "pg_ctl", "-D", data, "-m", "fast", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def soak(url: str, args: argparse.Namespace, console: Console) -> dict:
    study = f"soak-{int(time.time())}"
    distributed_search(
        supernet=None, table=[args.table], column=args.column, data={}, strategy="tpe",
        strategy_options={}, budget=args.budget, top_k=5, seed=0, workers=0, storage=url,
        study=study, out=None, quiet=True, unsupported={},
    )  # fmt: skip
    built = build_estimator(load_spec(url, study)["estimator"])
    seeds = iter(range(1, 10**6))
    procs: list[Any] = start_local_workers(
        url, study, [next(seeds) for _ in range(args.workers)], built
    )
    t0 = time.time()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = ru.ru_utime + ru.ru_stime
    kills = 0
    next_kill = t0 + args.kill_every
    while time.time() - t0 < args.seconds:
        time.sleep(0.2)
        if time.time() >= next_kill:
            i = kills % args.workers
            os.kill(procs[i].pid, signal.SIGKILL)
            procs[i].join()
            procs[i] = start_local_workers(url, study, [next(seeds)], built)[0]
            kills += 1
            next_kill += args.kill_every
            console.print(f"{time.time() - t0:6.1f} s: killed and restarted worker {i}")
        for i, p in enumerate(procs):
            if p.exitcode not in (None, 0):
                sys.exit(f"worker {i} failed with exit code {p.exitcode}")
    for p in procs:
        os.kill(p.pid, signal.SIGTERM)  # finish the current trial, then exit
    for p in procs:
        p.join()
    seconds = time.time() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers (all joined by now)
    cpu = ru.ru_utime + ru.ru_stime - cpu0
    # the last kill's trial goes stale only after the grace period: wait for it, then drain
    time.sleep(GRACE_S + 2 * HEARTBEAT_S)
    space, score, feasible, _ = built
    Worker(url, study, space, score, feasible=feasible, drain=True).run()
    a = audit(url, study)
    return {
        "storage": redact(url),
        "study": study,
        "workers": args.workers,
        "seconds": round(seconds, 1),
        "kill_every_s": args.kill_every,
        "kills": kills,
        "heartbeat_s": HEARTBEAT_S,
        "grace_s": GRACE_S,
        "archs_per_minute": round(a["done"] / seconds * 60, 1),
        "worker_cpu_s": round(cpu, 1),
        "worker_cpu_s_per_trial": round(cpu / max(a["trials"], 1), 3),
        "load_average": os.getloadavg(),
        **a,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--kill-every", type=float, default=20)
    ap.add_argument("--budget", type=int, default=15625, help="large: the clock ends the run")
    ap.add_argument("--storage", help="a PostgreSQL URL (default: a throwaway local server)")
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--column", default="cifar10_valid")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/soak.json")
    args = ap.parse_args()
    console = Console()
    if args.storage:
        res = soak(args.storage, args, console)
    else:
        with throwaway_postgres() as url:
            res = soak(url, args, console)
    table = Table("measure", "value", title=f"soak: {res['workers']} workers, {res['seconds']} s")
    keys = ["kills", "trials", "done", "lost", "duplicated", "retries", "reused", "over_budget"]
    keys += ["archs_per_minute", "worker_cpu_s_per_trial", "best_claimed", "best_trial"]
    for key in keys:
        table.add_row(key, str(res[key]))
    console.print(table)
    write_json(args.out, res)
    console.print(f"wrote {args.out}")
    if res["lost"] or res["duplicated"]:
        sys.exit("FAILED: trials lost or duplicated")


if __name__ == "__main__":
    main()
