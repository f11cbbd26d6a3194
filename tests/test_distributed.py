"""Data-parallel supernet training: two gloo processes under torchrun train exactly as one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from typer.testing import CliRunner

from supernas.cli import app
from supernas.errors import SupernasError
from supernas.train import FairNASTrainer
from supernas.train.distributed import SINGLE, Parallel, init_from_env, synced_batch_norm

TINY = [
    "--space", "nb201", "--space-opt", "C=2", "--space-opt", "N=1",
    "--max-train", "64", "--batch-size", "14", "--lr", "0.05", "--quiet",
]  # fmt: skip
# --max-train 64 keeps 61 (stratified): batches of 14 (7 + 7 per rank) and a last one of
# 5 (3 + 2): uneven shards too


def _single(out: Path, *args: str) -> None:
    result = CliRunner().invoke(app, ["train", "--out", str(out), *TINY, *args])
    assert result.exit_code == 0, result.output


def _torchrun(out: Path, *args: str) -> None:
    launch = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    cmd = [sys.executable, *launch, "-m", "supernas.cli", "train", "--out", str(out), *TINY, *args]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _max_diff(a: Path, b: Path) -> float:
    sa = torch.load(a / "supernet.pt", weights_only=True)["state_dict"]
    sb = torch.load(b / "supernet.pt", weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys()
    return max((sa[k].double() - sb[k].double()).abs().max().item() for k in sa)


def test_spos_on_two_processes_equals_one_process(tmp_path: Path) -> None:
    _single(tmp_path / "one", "--epochs", "1")
    _torchrun(tmp_path / "two", "--epochs", "1")
    # weights and BN running statistics of the whole supernet
    assert _max_diff(tmp_path / "one", tmp_path / "two") < 1e-5
    one = torch.load(tmp_path / "one" / "supernet.pt", weights_only=True)["history"]
    two = torch.load(tmp_path / "two" / "supernet.pt", weights_only=True)["history"]
    assert one[0]["train_accuracy"] == two[0]["train_accuracy"]
    assert one[0]["train_loss"] == pytest.approx(two[0]["train_loss"], abs=1e-5)
    assert (tmp_path / "two" / "train.json").is_file()


class _Killed(Exception):
    pass


def test_fairnas_killed_then_resumed_under_torchrun_equals_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _single(tmp_path / "one", "--epochs", "2", "--method", "fairnas")

    def kill_at_epoch_2(self: FairNASTrainer, epoch: int) -> None:
        if epoch == 1:
            raise _Killed

    with monkeypatch.context() as m:  # a single process killed after epoch 1 ...
        m.setattr(FairNASTrainer, "begin_epoch", kill_at_epoch_2)
        args = ["train", "--out", str(tmp_path / "two"), *TINY, "--epochs", "2"]
        result = CliRunner().invoke(app, [*args, "--method", "fairnas"])
        assert isinstance(result.exception, _Killed)
    _torchrun(tmp_path / "two", "--epochs", "2", "--method", "fairnas")  # ... resumed on two
    ckpt = torch.load(tmp_path / "two" / "supernet.pt", weights_only=True)
    assert ckpt["epoch"] == 2
    assert _max_diff(tmp_path / "one", tmp_path / "two") < 1e-5


def test_synced_batch_norm_on_one_rank_is_batch_norm(tmp_path: Path) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        x = torch.randn(6, 3, 4, 4, requires_grad=True)
        w, b = torch.rand(3, requires_grad=True), torch.rand(3, requires_grad=True)
        stats = [torch.zeros(3), torch.ones(3)], [torch.zeros(3), torch.ones(3)]
        outs, grads = [], []
        for bn, (mean, var) in zip((F.batch_norm, synced_batch_norm), stats, strict=True):
            out = bn(x, mean, var, w, b, True, 0.1, 1e-5)
            grads.append(torch.autograd.grad(out.square().sum(), (x, w, b)))
            outs.append(out)
        torch.testing.assert_close(outs[0], outs[1])
        for g0, g1 in zip(*grads, strict=True):
            torch.testing.assert_close(g0, g1)
        for s0, s1 in zip(*stats, strict=True):
            torch.testing.assert_close(s0, s1)
    finally:
        dist.destroy_process_group()


def test_unsupported_trainer_and_empty_shards_are_refused() -> None:
    two = Parallel(rank=0, world=2)
    with pytest.raises(SupernasError, match="cannot train on several processes"):
        two.check("darts", 64, 16)
    with pytest.raises(SupernasError, match="one per process"):
        two.check("spos", 65, 16)  # a last batch of one example
    with pytest.raises(SupernasError, match="one per process"):
        two.check("spos", 64, 1)
    two.check("fairnas", 64, 15)
    SINGLE.check("darts", 65, 1)  # one process: anything goes


def test_without_torchrun_training_stays_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env() is SINGLE
    x, y = torch.ones(5, 2), torch.arange(5)
    assert SINGLE.shard(x, y)[0] is x
