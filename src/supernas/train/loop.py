"""The loop every supernet trainer shares: epochs, checkpoint and exact resume, history.

A trainer only says what one step does (which paths, which losses); batching, the optimiser
step, the cosine schedule, checkpoints and the refusal of a foreign checkpoint live here once,
so every trainer resumes the same way and a bug is fixed in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.io import save_checkpoint
from supernas.space import Arch
from supernas.supernet import Supernet
from supernas.train.distributed import SINGLE, Parallel
from supernas.train.recipe import Recipe, check_loss

CHECKPOINT_FORMAT = "supernas.supernet/1"

Constraint = Callable[[Arch], bool]


def sample_constrained(
    space: Any,
    rng: np.random.Generator,
    constraint: Constraint | None,
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


def supernet_checkpoint(supernet: Supernet) -> dict[str, Any]:
    """The part of a checkpoint that rebuilds the supernet: format, space, options, weights."""
    return {
        "format": CHECKPOINT_FORMAT,
        "space": supernet.space.name,
        "space_options": dict(supernet.space.options),
        "state_dict": supernet.state_dict(),
    }


def load_supernet_state(supernet: Supernet, ckpt: dict[str, Any]) -> None:
    """Load a checkpoint's weights, refusing one of another space or space options.

    Why check options first: weights of another mode (resnet18's `sharing`) may even fit
    key by key while meaning something else; a mismatch gets one clear line instead.
    """
    space, saved = ckpt.get("space", supernet.space.name), ckpt.get("space_options")
    now = dict(supernet.space.options)
    if space != supernet.space.name or (saved is not None and dict(saved) != now):
        raise SupernasError(
            f"checkpoint is for space {space} {saved}, not {supernet.space.name} {now}: "
            "build the supernet with the checkpoint's space options (e.g. sharing)"
        )
    try:
        supernet.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise SupernasError(f"checkpoint weights do not fit this supernet: {first}") from None


def path_stats(logits: Tensor, loss: Tensor, y: Tensor) -> tuple[float, int, int]:
    """(summed loss, correct, examples) of one path on one batch, for the epoch averages."""
    return loss.item() * len(y), int((logits.argmax(1) == y).sum()), len(y)


class SupernetTrainer:
    """Base of the supernet trainers: subclasses implement `train_step` (and maybe hooks).

    The constructor only stores arguments; everything a fit needs is set up in `fit`, so one
    trainer object can fit several supernets.
    """

    name = ""

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Constraint | None = None,
    ) -> None:
        self.recipe = recipe or Recipe()
        self.seed = seed
        self.constraint = constraint

    def options(self) -> dict[str, Any]:
        """The trainer's own hyperparameters: part of the config, so a resume checks them."""
        return {}

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
            **self.options(),
        }

    # -- hooks ----------------------------------------------------------------------------
    def start(self, supernet: Supernet, data: Dataset) -> None:
        """Per-fit set-up before training (and before a checkpoint is loaded).

        `self.opt`, `self.sched`, `self.params`, `self.loss_fn`, `self.rng` and `self.gen`
        (the torch generator that shuffles the train batches) are already set, so a trainer
        may draw its own seeded state from them here.
        """

    def begin_epoch(self, epoch: int) -> None:
        """Per-epoch set-up (0-based `epoch`), also on the first epoch after a resume.

        Why a hook: what depends on the epoch (GDAS's temperature, a fresh pass over the
        val split) must be set before its first step, on a straight run and a resumed one.
        """

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        """Forward and backward the step's paths (gradients accumulate; the loop steps).

        Returns (summed loss, correct predictions, examples) over the paths it reports.
        """
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """Trainer state beyond weights, optimiser and RNGs, saved in each checkpoint."""
        return {}

    def load_extra_state(self, ckpt: dict[str, Any]) -> None:
        """Restore what `extra_state` saved."""

    def epoch_record(self) -> dict[str, Any]:
        """Extra keys for this epoch's history record."""
        return {}

    def finish(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The history `fit` returns (e.g. with a final summary in the last record)."""
        return history

    # -- helpers for train_step -----------------------------------------------------------
    def sample(self, supernet: Supernet) -> Arch:
        """One uniform path among those that satisfy the constraint."""
        return sample_constrained(supernet.space, self.rng, self.constraint)

    def backward_path(
        self,
        supernet: Supernet,
        x: Tensor,
        arch: Arch,
        loss_of: Callable[[Tensor], Tensor],
        where: str,
    ) -> tuple[Tensor, Tensor]:
        """Forward `arch`, check its loss, backward it (accumulating); (logits, loss)."""
        logits = supernet(x, arch)
        loss = loss_of(logits)
        check_loss(loss, f"{where} (arch {arch})")
        loss.backward()
        return logits, loss

    @property
    def progress(self) -> float:
        """Fraction of all training steps done before the current one (0 at the start)."""
        return self.global_step / max(self.total_steps, 1)

    # -- the loop -------------------------------------------------------------------------
    def fit(
        self,
        supernet: Supernet,
        data: Dataset,
        *,
        checkpoint: str | Path | None = None,
        on_step: Callable[[], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        parallel: Parallel | None = None,
    ) -> list[dict[str, Any]]:
        """Train, checkpointing each epoch to `checkpoint`; resume from it if it exists.

        Under torchrun, `parallel` (`distributed.init_from_env()`) splits each batch across
        the ranks; the callbacks run on every rank, and rank 0 alone writes `checkpoint`.
        Returns the per-epoch history (train loss and accuracy of the reported paths).
        """
        r = self.recipe
        par = parallel or SINGLE
        par.check(self.name, len(data.x_train), r.batch_size)
        steps_per_epoch = -(-len(data.x_train) // r.batch_size)
        params = [p for p in supernet.parameters() if p.requires_grad]
        opt = r.optimizer(params)
        sched = r.scheduler(opt, r.epochs * steps_per_epoch)
        # Exposed for the hooks: second-order DARTS reads the current lr and momentum buffers.
        self.params, self.opt, self.sched = params, opt, sched
        self.loss_fn = r.loss_fn()
        self.rng = np.random.default_rng(self.seed)
        self.total_steps = r.epochs * steps_per_epoch
        self.global_step = 0
        gen = torch.Generator().manual_seed(self.seed)
        self.gen = gen
        self.start(supernet, data)
        history: list[dict[str, Any]] = []
        start_epoch = 0
        ckpt = par.load(checkpoint)
        if ckpt is not None:
            if ckpt.get("trainer") != self.config() or ckpt.get("space") != supernet.space.name:
                raise SupernasError(
                    f"{checkpoint} was written by a different training config; "
                    "use another output folder or delete it"
                )
            load_supernet_state(supernet, ckpt)
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            gen.set_state(ckpt["rng"]["torch"])
            self.rng.bit_generator.state = ckpt["rng"]["numpy"]
            self.load_extra_state(ckpt)
            history = list(ckpt["history"])
            start_epoch = int(ckpt["epoch"])
            self.global_step = start_epoch * steps_per_epoch
            for _ in range(start_epoch * steps_per_epoch):
                if on_step:
                    on_step()
        par.broadcast(supernet)
        for epoch in range(start_epoch, r.epochs):
            t0 = time.perf_counter()
            self.begin_epoch(epoch)
            supernet.train()
            loss_sum, correct, n = 0.0, 0, 0
            for step, (x, y) in enumerate(
                data.batches("train", r.batch_size, shuffle=True, generator=gen)
            ):
                opt.zero_grad(set_to_none=True)  # unused paths keep grad None: SGD skips them
                n_global = len(y)
                x, y = par.shard(x, y)
                with par.step(supernet, len(y) / n_global):
                    step_loss, step_correct, step_n = self.train_step(
                        supernet, x, y, f"epoch {epoch} step {step}"
                    )
                par.reduce_grads(params)
                if r.grad_clip:
                    nn.utils.clip_grad_norm_(params, r.grad_clip)
                opt.step()
                sched.step()
                self.global_step += 1
                loss_sum += step_loss
                correct += step_correct
                n += step_n
                if on_step:
                    on_step()
            loss_sum, correct, n = par.sum([loss_sum, correct, n])
            rec = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / n,
                "train_accuracy": correct / n,
                "lr": sched.get_last_lr()[0],
                "seconds": time.perf_counter() - t0,
                **self.epoch_record(),
            }
            history.append(rec)
            if checkpoint is not None and par.is_writer:
                save_checkpoint(
                    checkpoint,
                    {
                        **supernet_checkpoint(supernet),
                        "trainer": self.config(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "rng": {"torch": gen.get_state(), "numpy": self.rng.bit_generator.state},
                        "epoch": epoch + 1,
                        "history": history,
                        **self.extra_state(),
                    },
                )
            par.barrier()  # the others wait for rank 0's checkpoint
            if on_epoch:
                on_epoch(rec)
        supernet.eval()
        return self.finish(history)
