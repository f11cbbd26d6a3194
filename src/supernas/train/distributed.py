"""Data-parallel supernet training under torchrun: one global batch split across ranks.

Why not `DistributedDataParallel`: a single-path step leaves most weights without a gradient,
and a step may run several paths (FairNAS, sandwich) before one optimiser step. So the loop
all-reduces the gradients itself after the step's backward passes, and every rank stays in
lock-step because every rank draws the same paths from the same seeded RNG.

What makes N ranks train exactly as one process on the global batch:

- every rank iterates the same shuffled global batches (same seed) and takes a contiguous
  shard (`torch.tensor_split`: sizes differ by at most one);
- BatchNorm uses the statistics of the whole global batch (`synced_batch_norm`, through a
  differentiable all-reduce; torch's SyncBatchNorm runs only on GPUs and cannot take the
  supernets' sliced BN);
- each rank's gradient is scaled by its share of the global batch (n_rank / n_global) and
  the gradients are summed across ranks: the gradient of the global batch's mean loss.

`SINGLE` is the world of one process: every method is a no-op, so the loop has one code path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.io import load_checkpoint

#: Trainers whose step is a function of the batch and the shared RNG alone. The others read
#: the val split, step their own arch parameters or split the batch themselves (ghost BN),
#: which this data parallelism does not synchronise: they are refused.
DATA_PARALLEL_TRAINERS = ("spos", "random_ws", "fairnas", "sandwich")

_plain_batch_norm = F.batch_norm


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass(frozen=True)
class Parallel:
    """This process's place in the world: rank, world size and the device it trains on."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes checkpoints, results and logs."""
        return self.rank == 0

    def check(self, trainer_name: str, n_train: int, batch_size: int) -> None:
        """Refuse what would desynchronise the ranks or leave one with an empty shard."""
        if not self.active:
            return
        if trainer_name not in DATA_PARALLEL_TRAINERS:
            raise SupernasError(
                f"trainer {trainer_name} cannot train on several processes; "
                f"use one of {', '.join(DATA_PARALLEL_TRAINERS)} or a single process"
            )
        last = n_train % batch_size
        if batch_size < self.world or 0 < last < self.world:
            raise SupernasError(
                f"every batch must hold at least {self.world} examples (one per process): "
                f"batch size {batch_size} on {n_train} train examples leaves a batch of "
                f"{last or batch_size}; change --batch-size or --max-train"
            )

    def shard(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """This rank's contiguous part of a global batch, on its device."""
        if self.active:
            x, y = (
                torch.tensor_split(x, self.world)[self.rank],
                torch.tensor_split(y, self.world)[self.rank],
            )
        return x.to(self.device), y.to(self.device)

    @contextmanager
    def step(self, supernet: nn.Module, share: float) -> Iterator[None]:
        """Within one step: BN on global-batch statistics, gradients scaled by `share`."""
        if not self.active:
            yield
            return

        def scale(_module: nn.Module, _args: Any, out: Any) -> None:
            if isinstance(out, Tensor) and out.requires_grad:
                out.register_hook(lambda g: g * share)

        handle = supernet.register_forward_hook(scale)
        F.batch_norm = synced_batch_norm
        try:
            yield
        finally:
            F.batch_norm = _plain_batch_norm
            handle.remove()

    def reduce_grads(self, params: Sequence[nn.Parameter]) -> None:
        """Sum the (share-scaled) gradients across ranks; a None gradient counts as zero.

        With the same paths on every rank the same parameters have gradients, but a flag
        all-reduce first keeps the ranks consistent even if they did not.
        """
        if not self.active or not params:
            return
        has = torch.tensor(
            [p.grad is not None for p in params], dtype=torch.uint8, device=self.device
        )
        dist.all_reduce(has, op=dist.ReduceOp.MAX)
        used = [p for p, h in zip(params, has.tolist(), strict=True) if h]
        if not used:
            return
        for p in used:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in used])
        dist.all_reduce(flat)
        for p, g in zip(used, flat.split([p.numel() for p in used]), strict=True):
            p.grad.copy_(g.view_as(p))

    def sum(self, values: Sequence[float]) -> list[float]:
        """Sums over ranks (epoch loss, correct and example counts)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def broadcast(self, module: nn.Module) -> None:
        """Rank 0's weights and buffers to every rank (identical starts, whatever the seed)."""
        if self.active:
            for t in module.state_dict().values():
                dist.broadcast(t, 0)

    def load(self, path: str | Path | None) -> dict[str, Any] | None:
        """The checkpoint to resume from, as rank 0 reads it (no shared filesystem needed)."""
        if not self.active:
            return load_checkpoint(path) if path is not None and Path(path).is_file() else None
        box: list[Any] = [None]
        if self.is_writer and path is not None and Path(path).is_file():
            box[0] = load_checkpoint(path)
        dist.broadcast_object_list(box, 0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


SINGLE = Parallel()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients over ranks too.

    Own code because torch.distributed.nn.functional.all_reduce is deprecated and its
    replacement (functional collectives) has no autograd.
    """

    @staticmethod
    def forward(ctx: Any, t: Tensor) -> Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(t: Tensor) -> Tensor:
    """Differentiable sum of `t` over all ranks."""
    return _AllReduceSum.apply(t)


def synced_batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """`F.batch_norm` with batch statistics over the union of all ranks' shards.

    Mean first, then the centred second moment (two all-reduces, as accurate as one pass
    over the global batch). The all-reduces are differentiable, so the backward pass carries
    each rank's share of the gradient through the statistics to the other ranks.
    """
    if not training:
        return _plain_batch_norm(
            input, running_mean, running_var, weight, bias, training, momentum, eps
        )
    dims = [0, *range(2, input.dim())]
    shape = [1, -1] + [1] * (input.dim() - 2)
    count = input.new_tensor([input.numel() / input.shape[1]])
    total = all_reduce_sum(torch.cat([input.sum(dims), count]))
    n = total[-1].detach()
    mean = total[:-1] / n
    centred = input - mean.view(shape)
    var = all_reduce_sum(centred.square().sum(dims)) / n
    out = centred * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * n / (n - 1).clamp(min=1), alpha=momentum)
    return out


def init_from_env(backend: str | None = None) -> Parallel:
    """Join the process group torchrun describes in the environment (or the world of one).

    Backend: nccl with one GPU per process (LOCAL_RANK) when CUDA is available, else gloo
    on the CPU; `backend` overrides.
    """
    if not launched_by_torchrun():
        return SINGLE
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("gloo", "nccl"):
        raise SupernasError(f"unknown backend {backend!r}; use gloo (CPU) or nccl (GPUs)")
    device = torch.device("cpu")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise SupernasError("backend nccl needs CUDA GPUs; use --backend gloo on CPUs")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    return Parallel(dist.get_rank(), dist.get_world_size(), device)


def shutdown(par: Parallel) -> None:
    """Leave the process group `init_from_env` joined (a no-op in a single process)."""
    if par.active and dist.is_initialized():
        dist.destroy_process_group()
