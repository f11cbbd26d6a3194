"""Single-path one-shot (SPOS, Guo et al. 2020): one uniformly sampled path per batch.

Uniform constrained sampling: paths outside the user's params/FLOPs range are resampled,
so the supernet is trained on exactly the archs the search may return.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.io import load_checkpoint, save_checkpoint
from supernas.space import Arch
from supernas.supernet import Supernet
from supernas.train.recipe import Recipe, check_loss
from supernas.train.registry import register_trainer

CHECKPOINT_FORMAT = "supernas.supernet/1"


def sample_constrained(
    space: Any,
    rng: np.random.Generator,
    constraint: Callable[[Arch], bool] | None,
    max_tries: int = 1000,
) -> Arch:
    """A uniform sample from the archs that satisfy `constraint` (rejection sampling)."""
    for _ in range(max_tries):
        arch = space.sample(rng)
        if constraint is None or constraint(arch):
            return arch
    raise SupernasError(
        f"no architecture satisfying the constraints found in {max_tries} samples; "
        "loosen the params/FLOPs limits"
    )


@register_trainer("spos")
class SPOSTrainer:
    """Train a supernet with one uniformly sampled (constrained) path per batch."""

    name = "spos"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Callable[[Arch], bool] | None = None,
    ) -> None:
        self.recipe = recipe or Recipe()
        self.seed = seed
        self.constraint = constraint

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "recipe": self.recipe.to_dict(), "seed": self.seed}

    def fit(
        self,
        supernet: Supernet,
        data: Dataset,
        *,
        checkpoint: str | Path | None = None,
        on_step: Callable[[], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train, checkpointing each epoch to `checkpoint`; resume from it if it exists.

        Returns the per-epoch history (train loss and accuracy of the sampled paths).
        """
        r = self.recipe
        steps_per_epoch = -(-len(data.x_train) // r.batch_size)
        params = [p for p in supernet.parameters() if p.requires_grad]
        opt = r.optimizer(params)
        sched = r.scheduler(opt, r.epochs * steps_per_epoch)
        loss_fn = r.loss_fn()
        gen = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        if checkpoint is not None and Path(checkpoint).is_file():
            ckpt = load_checkpoint(checkpoint)
            if ckpt.get("trainer") != self.config() or ckpt.get("space") != supernet.space.name:
                raise SupernasError(
                    f"{checkpoint} was written by a different training config; "
                    "use another output folder or delete it"
                )
            load_supernet_state(supernet, ckpt)
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            gen.set_state(ckpt["rng"]["torch"])
            rng.bit_generator.state = ckpt["rng"]["numpy"]
            history = list(ckpt["history"])
            start_epoch = int(ckpt["epoch"])
            for _ in range(start_epoch * steps_per_epoch):
                if on_step:
                    on_step()
        for epoch in range(start_epoch, r.epochs):
            t0 = time.perf_counter()
            supernet.train()
            loss_sum, correct, n = 0.0, 0, 0
            for step, (x, y) in enumerate(
                data.batches("train", r.batch_size, shuffle=True, generator=gen)
            ):
                arch = sample_constrained(supernet.space, rng, self.constraint)
                logits = supernet(x, arch)
                loss = loss_fn(logits, y)
                check_loss(loss, f"epoch {epoch} step {step} (arch {arch})")
                opt.zero_grad(set_to_none=True)  # unused paths keep grad None: SGD skips them
                loss.backward()
                if r.grad_clip:
                    nn.utils.clip_grad_norm_(params, r.grad_clip)
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
                n += len(y)
                if on_step:
                    on_step()
            rec = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / n,
                "train_accuracy": correct / n,
                "lr": sched.get_last_lr()[0],
                "seconds": time.perf_counter() - t0,
            }
            history.append(rec)
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint,
                    {
                        **supernet_checkpoint(supernet),
                        "trainer": self.config(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "rng": {"torch": gen.get_state(), "numpy": rng.bit_generator.state},
                        "epoch": epoch + 1,
                        "history": history,
                    },
                )
            if on_epoch:
                on_epoch(rec)
        supernet.eval()
        return history


def supernet_checkpoint(supernet: Supernet) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the supernet: format, space, options, weights."""
    return {
        "format": CHECKPOINT_FORMAT,
        "space": supernet.space.name,
        "space_options": dict(supernet.space.options),
        "state_dict": supernet.state_dict(),
    }


def load_supernet_state(supernet: Supernet, ckpt: dict[str, Any]) -> None:
    try:
        supernet.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise SupernasError(f"checkpoint weights do not fit this supernet: {first}") from None


def load_supernet(path: str | Path) -> tuple[Supernet, dict[str, Any]]:
    """Rebuild a trained supernet from `supernet.pt` (weights_only load, clear errors)."""
    from supernas.space import get_space
    from supernas.supernet import build_supernet

    ckpt = load_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SupernasError(f"{path} is not a supernet checkpoint (format {ckpt.get('format')!r})")
    space = get_space(ckpt["space"], **ckpt["space_options"])
    supernet = build_supernet(space)
    load_supernet_state(supernet, ckpt)
    supernet.eval()
    return supernet, ckpt
