"""The bad-input catalogue: each case is one `error: ...` line, exit code 2, nothing lost.

Run as a subprocess, as a user would: a traceback or a second line would show on stderr.
`{fx}` in a case's arguments is a folder of fixtures (a real nb201 supernet.pt, broken
checkpoints, odd datasets and tables) whose files must come out of every case unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from supernas.cli import app
from supernas.io import load_checkpoint

NB201_ARCH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
NB201_ARCH2 = "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
RESNET18_ARCH = "k3w1-k3w1-k3w1-k3w1-k3w1-k3w1-k3w1-k3w1"
NB_TINY = ["--space", "nb201", "--space-opt", "C=2", "--space-opt", "N=1"]
DIVERGE = ["train", *NB_TINY, "--max-train", "20", "--epochs", "2", "--lr", "1e30", "--out", "nan"]


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs for the cases: each is read, never to be written."""
    d = tmp_path_factory.mktemp("fixtures")
    r = CliRunner().invoke(
        app,
        [
            "train",
            *NB_TINY,
            "--epochs",
            "1",
            "--max-train",
            "20",
            "--quiet",
            "--out",
            str(d / "nb"),
        ],
    )
    assert r.exit_code == 0, r.output
    real = (d / "nb" / "supernet.pt").read_bytes()
    (d / "half.pt").write_bytes(real[: len(real) // 2])
    (d / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    rng = np.random.default_rng(0)
    img = rng.random((40, 1, 8, 8), dtype=np.float32)
    np.savez(d / "empty.npz", x=img[:0], y=np.zeros(0, np.int64))
    np.savez(d / "oneclass.npz", x=img, y=np.zeros(40, np.int64))
    np.savez(d / "flat.npz", x=img.reshape(40, -1), y=np.arange(40) % 2)
    np.savez(
        d / "mixed.npz",
        x_train=img,
        y_train=np.arange(40) % 2,
        x_test=rng.random((20, 1, 10, 10), dtype=np.float32),
        y_test=np.arange(20) % 2,
    )
    from PIL import Image

    for k, name in enumerate(["ants", "bees"]):
        (d / "imgs" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (8 + 2 * (i % 2), 8), 40 * k + i).save(d / "imgs" / name / f"{i}.png")
    (d / "ok.csv").write_text(f"arch,acc\n{NB201_ARCH},0.5\n{NB201_ARCH2},0.6\n")
    (d / "noarch.csv").write_text("name,acc\nx,0.5\n")
    (d / "dup.csv").write_text(f"arch,acc\n{NB201_ARCH},0.5\n{NB201_ARCH},0.6\n")
    (d / "text.csv").write_text(f"arch,acc\n{NB201_ARCH},abc\n{NB201_ARCH2},0.6\n")
    return d


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "supernas.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=900,  # slack for a loaded CI machine
    )


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


BENCH = ["bench", "search", "--objective", "acc", "--budget", "1", "--seeds", "1", "--table"]

# (arguments, text(s) the error line holds, files the failed command may leave behind)
CASES = [
    # unknown names: each lists the valid ones
    (["run", "--space", "nosuch"], ("unknown space 'nosuch'; valid: ", "nb201, ", "resnet18")),
    (["run", "--strategy", "nosuch"], ("unknown strategy 'nosuch'; valid: ", "evolution, ")),
    (["train", "--method", "nosuch", "--out", "o"], ("unknown trainer 'nosuch'; valid: ", "spos")),
    (["search", "--proxy", "nosuch"], ("unknown proxy 'nosuch'; valid: ", "synflow, ")),
    (["proxies", "--proxies", "nosuch", "--sample", "2"], ("unknown proxy 'nosuch'; ", "synflow")),
    # arch strings: malformed, or naming an option the space does not have
    (["retrain", "--arch", "k3w1-k9w1", "--out", "o"], "arch string 'k3w1-k9w1'"),
    (
        ["retrain", "--arch", RESNET18_ARCH.replace("k3w1", "k9w1"), "--out", "o"],
        "'9' is not an option of choice 'b0.kernel'; options: 3, 5, 7",
    ),
    (
        ["retrain", "--space", "nb201", "--arch", "|conv~0|+|none~0|none~1|", "--out", "o"],
        "NB201 format",
    ),
    # tables
    ([*BENCH, "missing.csv"], "table not found: missing.csv"),
    ([*BENCH, "{fx}/noarch.csv"], "has no 'arch' column; its columns: name, acc"),
    ([*BENCH, "{fx}/ok.csv", "--objective", "nosuch"], "unknown column 'nosuch'; columns: acc"),
    ([*BENCH, "{fx}/dup.csv"], "appears twice (lines 2 and 3)"),
    ([*BENCH, "{fx}/text.csv"], "line 2 (arch " + NB201_ARCH + "): 'abc' is not a finite number"),
    # checkpoints: missing, random bytes, cut in half, of another space
    (["search", "--supernet", "missing.pt"], "checkpoint not found"),
    (["search", "--supernet", "{fx}/random.pt"], "random.pt: corrupt or truncated (not a file"),
    (["search", "--supernet", "{fx}/half.pt"], "half.pt: corrupt or truncated (Pytorch"),
    (
        ["train", "--space", "resnet18", "--space-opt", "base_width=2", "--out", "{fx}/nb"],
        "nb/supernet.pt was written by a different training config",
    ),
    (
        ["retrain", "--supernet", "{fx}/nb/supernet.pt", "--arch", RESNET18_ARCH, "--out", "o"],
        "is not in the NB201 format",
    ),
    # data
    (
        ["train", "--data", "fashion-mnist", "--data-dir", "/nonexistent", "--out", "o"],
        "apt-get install dataset-fashion-mnist",
    ),
    (["train", "--data", "{fx}/empty.npz", "--out", "o"], "dataset 'empty' is empty"),
    (["train", "--data", "{fx}/oneclass.npz", "--out", "o"], "has a single class; need at least 2"),
    (["train", "--data", "{fx}/flat.npz", "--out", "o"], "images must be (N,H,W), (N,H,W,C)"),
    (["train", "--data", "{fx}/mixed.npz", "--out", "o"], "test images (1, 10, 10) differ"),
    (["train", "--data", "{fx}/imgs", "--out", "o"], "differ in size (8x8 (6), 10x8 (6)); pass"),
    # training diverges: one step per epoch, so epoch 0 is checkpointed and epoch 1 fails;
    # without --quiet, as the progress bar must not add a line to the error
    (
        DIVERGE,
        "at epoch 1 step 0",
        {"nan/supernet.pt"},
    ),
    # constraints
    (["run", "--constraint", "latency<3"], "constraint"),
    (["run", "--constraint", "latency_ms<=3"], "needs a latency lookup table"),
    (["run", "--space", "nb201", "--lut", "missing.json"], "not found"),
    (
        ["run", "--constraint", "params<=1"],
        "no architecture satisfies params<=1: the smallest params in space resnet18 is",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: " ".join(c[0])[:60])
def test_bad_input_gives_one_clear_line_and_exit_code_2(
    tmp_path: Path, fx: Path, case: tuple
) -> None:
    args, message, leaves = (*case, set())[:3]
    before = _snapshot(fx)
    p = _cli(*(a.replace("{fx}", str(fx)) for a in args), cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for text in (message,) if isinstance(message, str) else message:
        assert text in lines[0]
    assert _snapshot(fx) == before  # nothing written before is lost or changed
    assert set(_snapshot(tmp_path)) == leaves  # and a refused command writes nothing
    for name in leaves:  # the last good checkpoint before the failure still loads
        assert load_checkpoint(tmp_path / name)["epoch"] == 1
