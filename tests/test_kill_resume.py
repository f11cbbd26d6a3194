"""`supernas run` killed with SIGKILL in every stage resumes to the same result.

A kill is no exception handler: nothing runs after it, so this is what a laptop lid, an OOM
killer or a preempted job does. Each kill waits for the file a stage writes after its first
unit of work (an epoch, an evaluation, an arch), so it lands inside that stage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TINY = [
    "--space", "nb201", "--space-opt", "C=2", "--space-opt", "N=1",
    "--max-train", "200", "--max-val", "100", "--epochs", "3", "--budget", "6",
    "--top-k", "2", "--trust-n", "3", "--retrain-epochs", "1", "--seed", "3", "--quiet",
]  # fmt: skip

#: (stage, the file that shows it has started, the file that shows it is done)
KILL_POINTS = [
    ("supernet training", "supernet.pt", "train.json"),
    ("search", "search_state.json", "search.json"),
    ("retrain", "retrain.json", None),
    ("trust", "trust.json", None),
]


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "supernas.cli", "run", "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _finish(proc: subprocess.Popen) -> None:
    output, _ = proc.communicate(timeout=900)  # slack for a loaded CI machine
    assert proc.returncode == 0, output.decode()


def _kill_when(proc: subprocess.Popen, trigger: Path, timeout: float = 900) -> None:
    """SIGKILL `proc` as soon as `trigger` exists (fails if it exits first)."""
    deadline = time.monotonic() + timeout
    while not trigger.exists():
        if proc.poll() is not None:
            raise AssertionError(f"exited before {trigger.name}: {proc.stdout.read().decode()}")
        assert time.monotonic() < deadline, f"no {trigger.name} after {timeout} s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def _comparable(obj: Any) -> Any:
    """A run's JSON without wall-clock times, which differ from run to run."""
    if isinstance(obj, dict):
        return {k: _comparable(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_comparable(v) for v in obj]
    return obj


def _read(out: Path, name: str) -> str:
    # json.dumps writes NaN as NaN, so equal texts also mean equal NaNs (an undefined tau)
    return json.dumps(_comparable(json.loads((out / name).read_text())), sort_keys=True)


def test_run_killed_in_every_stage_resumes_to_the_same_result(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    _finish(_start(straight, *TINY))

    killed = tmp_path / "killed"
    proc = _start(killed, *TINY)
    for stage, started, done in KILL_POINTS:
        _kill_when(proc, killed / started)
        assert not (killed / "result.json").exists(), f"killed in {stage} after the end"
        if done is not None:  # the kill landed inside the stage, not after it
            assert not (killed / done).exists(), f"{stage} finished before the kill"
        proc = _start(killed, "--resume", "--quiet")
    _finish(proc)

    result = json.loads((killed / "result.json").read_text())
    assert result["trust"]["n"] == 3 and len(result["top_k"]) == 2
    for name in ("result.json", "train.json", "search.json", "retrain.json", "trust.json"):
        assert _read(killed, name) == _read(straight, name), name
    log = (killed / "log.txt").read_text()
    assert log.count("resuming the run") == len(KILL_POINTS)
