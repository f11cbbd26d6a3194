"""Val accuracy with inherited weights, after BN recalibration for each arch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from supernas.data import Dataset
from supernas.space import Arch
from supernas.supernet import Supernet, recalibrate_bn
from supernas.train import evaluate


class SupernetEstimator:
    """Score = accuracy (0..1) of the sub-network on `split`, weights inherited from the supernet.

    BN statistics are re-estimated for every arch on the same `recal_batches` train batches
    (the same batches for all archs, so no arch is favoured by luck), and the supernet's own
    statistics are restored afterwards so scoring never changes the checkpoint.
    """

    name = "supernet"

    def __init__(
        self,
        supernet: Supernet,
        data: Dataset,
        *,
        split: str = "val",
        recal_batches: int = 10,
        batch_size: int = 128,
        seed: int = 0,
        on_arch: Callable[[], None] | None = None,
    ) -> None:
        self.supernet = supernet
        self.data = data
        self.split = split
        self.recal_batches = recal_batches
        self.batch_size = batch_size
        self.seed = seed
        self.on_arch = on_arch
        self._cache: dict[Arch, float] = {}

    def score(self, archs: Sequence[Arch]) -> list[float]:
        return [self.score_one(a) for a in archs]

    def score_one(self, arch: Arch) -> float:
        arch = self.supernet.space.validate(arch)
        if arch not in self._cache:
            self._cache[arch] = self._evaluate(arch)
        if self.on_arch:
            self.on_arch()
        return self._cache[arch]

    def _evaluate(self, arch: Arch) -> float:
        net = self.supernet
        saved = _bn_buffers(net)
        try:
            if self.recal_batches > 0:
                gen = torch.Generator().manual_seed(self.seed)
                recalibrate_bn(
                    net,
                    self.data.batches(
                        "train",
                        self.batch_size,
                        shuffle=True,
                        generator=gen,
                        limit=self.recal_batches,
                    ),
                    forward=lambda x: net(x, arch),
                )
            net.eval()
            acc, _ = evaluate(lambda x: net(x, arch), self.data.batches(self.split, 512))
        finally:
            _restore(net, saved)
        return acc


def _bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "running_" in k or "num_batches_tracked" in k
    }


def _restore(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    with torch.no_grad():
        for k, v in saved.items():
            state[k].copy_(v)
