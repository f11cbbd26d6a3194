"""Single-path one-shot (SPOS, Guo et al. 2020): one uniformly sampled path per batch.

Uniform constrained sampling: paths outside the user's params/FLOPs range are resampled,
so the supernet is trained on exactly the archs the search may return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from supernas.errors import SupernasError
from supernas.io import load_checkpoint
from supernas.supernet import Supernet
from supernas.train.loop import (
    CHECKPOINT_FORMAT,
    SupernetTrainer,
    load_supernet_state,
    path_stats,
    sample_constrained,
    supernet_checkpoint,
)
from supernas.train.registry import register_trainer

__all__ = [
    "CHECKPOINT_FORMAT",
    "SPOSTrainer",
    "load_supernet",
    "load_supernet_state",
    "sample_constrained",
    "supernet_checkpoint",
]


@register_trainer("spos")
class SPOSTrainer(SupernetTrainer):
    """Train a supernet with one uniformly sampled (constrained) path per batch."""

    name = "spos"

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        arch = self.sample(supernet)
        logits, loss = self.backward_path(
            supernet, x, arch, lambda out: self.loss_fn(out, y), where
        )
        return path_stats(logits, loss, y)


def load_supernet(path: str | Path) -> tuple[Supernet, dict[str, Any]]:
    """Rebuild a trained supernet from `supernet.pt` (weights_only load, clear errors)."""
    from supernas.hyper import hypernet_from_checkpoint
    from supernas.space import get_space
    from supernas.supernet import build_supernet

    ckpt = load_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SupernasError(f"{path} is not a supernet checkpoint (format {ckpt.get('format')!r})")
    space = get_space(ckpt["space"], **ckpt["space_options"])
    hypernet = hypernet_from_checkpoint(ckpt, space)  # a smash/ghn checkpoint
    supernet = build_supernet(space) if hypernet is None else hypernet
    load_supernet_state(supernet, ckpt)
    supernet.eval()
    return supernet, ckpt
