"""Search by several worker processes on one Optuna study, on SQLite and on a real PostgreSQL.

The PostgreSQL tests start a throwaway server (initdb into tmp, pg_ctl on a free port, fsync
off) and skip, saying why, only where its binaries are missing or it cannot start.
"""

from __future__ import annotations

import csv
import glob
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from supernas.cli import app
from supernas.cli_worker import build_estimator, run_worker
from supernas.search.distributed import Claims, Worker, audit, create_study, open_storage
from supernas.space import get_space

FORK = multiprocessing.get_context("fork")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every NB201 arch with a distinct made-up score (no data download needed)."""
    path = tmp_path_factory.mktemp("table") / "nb201.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "acc"])
        for i, arch in enumerate(get_space("nb201").enumerate()):
            w.writerow([str(arch), f"{(i * 7919) % 15625 / 100:.2f}"])
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """URL of a fresh PostgreSQL server, stopped (and its files removed) after the module."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="supernas-pg-"))  # pytest's tmp is root-only (0700)
    data, port = root / "data", _free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the `postgres` user
        if not shutil.which("runuser"):
            pytest.skip("running as root and `runuser` is missing: cannot start PostgreSQL")
        os.chmod(root, 0o777)
        run_as = ["runuser", "-u", "postgres", "--"]
    init = subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        capture_output=True,
        text=True,
    )
    if init.returncode:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {init.stderr.strip()[-300:]}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    opts += " -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
    start = subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
         "-w", "start"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if start.returncode:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {start.stderr.strip()[-300:]}")
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
        capture_output=True,
    )
    shutil.rmtree(root, ignore_errors=True)


def _spec(table: Path, budget: int, grace_s: int = 10) -> dict:
    return {
        "format": 1,
        "space": "nb201",
        "space_options": get_space("nb201").options,
        "estimator": {"kind": "table", "tables": [str(table)], "column": "acc"},
        "budget": budget,
        "strategy": "tpe",
        "strategy_options": {"n_startup_trials": 5},
        "heartbeat_s": 1,
        "grace_s": grace_s,
    }


@pytest.fixture(scope="module")
def built(table: Path) -> tuple:
    """The table estimator, built once and inherited by the forked workers."""
    return build_estimator(_spec(table, 1)["estimator"])


def _workers(url: str, study: str, n: int, built: tuple) -> None:
    procs = [
        FORK.Process(target=run_worker, args=(url, study, i + 1, None, built)) for i in range(n)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * n


def _check(url: str, study: str, budget: int) -> dict:
    a = audit(url, study)
    assert a["slots"] == a["done"] == budget, a
    assert a["lost"] == 0 and a["duplicated"] == 0, a
    assert set(a["states"]) <= {"complete", "fail"}, a  # nothing left running or waiting
    assert a["best_claimed"] == a["best_trial"], a  # the best result is the best of all trials
    return a


def test_postgres_four_workers(postgres: str, table: Path, built: tuple) -> None:
    create_study(postgres, "four", _spec(table, budget=24))
    _workers(postgres, "four", 4, built)
    _check(postgres, "four", 24)


def test_sqlite_two_workers_cli(tmp_path: Path, table: Path) -> None:
    out = tmp_path / "r.json"
    args = ["search", "--table", str(table), "--column", "acc", "--budget", "12"]
    res = CliRunner().invoke(app, [*args, "--workers", "2", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    url = f"sqlite:///{tmp_path / 'r.db'}"
    a = _check(url, "supernas", 12)
    saved = json.loads(out.read_text())
    assert len(saved["result"]["trials"]) == 12
    assert saved["top_k"][0]["estimate"] == a["best_claimed"]


def _slow_worker(url: str, study: str, built: tuple) -> None:
    """A worker whose arch takes 10 s to score: killed while it holds a slot."""
    space, score, feasible, _ = built
    slow = lambda archs: (time.sleep(10), score(archs))[1]  # noqa: E731
    Worker(url, study, space, slow, seed=7, feasible=feasible).run()


def test_killed_worker_trial_is_retried(tmp_path: Path, table: Path, built: tuple) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    create_study(url, "kill", _spec(table, budget=6, grace_s=2))
    proc = FORK.Process(target=_slow_worker, args=(url, "kill", built))
    proc.start()
    claims = Claims(open_storage(url).engine, "kill")
    deadline = time.time() + 120
    while claims.count() == 0 and time.time() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # dies while scoring its claimed arch
    proc.join()
    run_worker(url, "kill", 1, None, built)  # fails the stale trial after the grace, retries it
    a = _check(url, "kill", 6)
    assert a["retries"] == 1


def test_errors_are_one_line(tmp_path: Path, table: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'e.db'}"
    base = ["search", "--table", str(table), "--column", "acc", "--storage", db]
    res = runner.invoke(app, ["worker", "--storage", db, "--study", "nope"])
    assert res.exit_code == 2 and "no study 'nope'" in res.output
    res = runner.invoke(app, ["worker", "--storage", "mysql://x/y", "--study", "a"])
    assert res.exit_code == 2 and "sqlite:///PATH or postgresql://" in res.output
    res = runner.invoke(app, [*base, "--workers", "0", "--max-params", "1e5"])
    assert res.exit_code == 2 and "--max-params cannot be combined" in res.output
    res = runner.invoke(app, [*base, "--workers", "0", "--strategy", "evolution"])
    assert res.exit_code == 2 and "cannot run on a shared study" in res.output
    assert runner.invoke(app, [*base, "--workers", "0", "--budget", "5"]).exit_code == 0
    res = runner.invoke(app, [*base, "--workers", "0", "--budget", "7"])
    assert res.exit_code == 2 and "exists with other settings (budget: 5, now 7)" in res.output


def test_create_then_worker_cli(tmp_path: Path, table: Path) -> None:
    """The several-machines recipe: create the study, run `supernas worker`, read the top-k."""
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'w.db'}"
    create = ["search", "--table", str(table), "--column", "acc", "--budget", "6"]
    create += ["--storage", db, "--study", "m", "--workers", "0"]
    res = runner.invoke(app, create)
    assert res.exit_code == 0 and "supernas worker --storage" in res.output
    res = runner.invoke(app, ["worker", "--storage", db, "--study", "m", "--seed", "3"])
    assert res.exit_code == 0 and "6 archs scored" in res.output, res.output
    res = runner.invoke(app, [*create, "--out", str(tmp_path / "m.json")])
    assert res.exit_code == 0 and "6 of 6 archs claimed" in res.output
    assert len(json.loads((tmp_path / "m.json").read_text())["result"]["trials"]) == 6


def test_stalled_worker_moves_on(tmp_path: Path, table: Path, built: tuple) -> None:
    """A worker stalled past the grace period finds its trial failed (and retried) by another:
    it counts the trial as preempted and continues, instead of crashing."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    create_study(url, "stall", _spec(table, budget=2))
    space, score, feasible, _ = built
    w = Worker(url, "stall", space, score, feasible=feasible)
    trial = w._start_trial()
    assert trial is not None
    w.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)  # "stale"
    w._start_trial = lambda: trial  # type: ignore[method-assign]
    w._one_trial()
    assert w.report.preempted == 1 and w.report.evaluated == 0
