"""Score archs with generated weights: one generation and one pass over the val split."""

from __future__ import annotations

from typing import Any

import torch

from supernas.data import Dataset
from supernas.estimate.supernet import SupernetEstimator
from supernas.hyper.base import HyperSupernet
from supernas.space import Arch
from supernas.train import evaluate


class HypernetEstimator(SupernetEstimator):
    """Score = accuracy (0..1) on `split` of the network with the hypernet's weights.

    No BN recalibration: generated networks normalise with batch statistics, so an unseen
    arch costs one generation plus the evaluation forward.
    """

    name = "hypernet"

    def __init__(self, hypernet: HyperSupernet, data: Dataset, **options: Any) -> None:
        options["recal_batches"] = 0
        super().__init__(hypernet, data, **options)

    def _evaluate(self, arch: Arch) -> float:
        hyper = self.supernet
        was_training = hyper.training
        hyper.eval()
        try:
            with torch.no_grad():
                net = hyper.extract(arch)
            acc, _ = evaluate(net, self.data.batches(self.split, 512))
        finally:
            hyper.train(was_training)
        return acc
