"""Train one standalone network from scratch with a fixed recipe: the ground truth."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from supernas.data import Dataset
from supernas.train.recipe import Recipe, check_loss, evaluate


@dataclass
class TrainResult:
    val_accuracy: float
    test_accuracy: float
    train_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy,
            "train_loss": self.train_loss,
            "seconds": self.seconds,
        }


def train_epochs(model: nn.Module, data: Dataset, recipe: Recipe, seed: int = 0) -> Iterator[float]:
    """Train epoch by epoch, yielding the mean train loss after each one.

    A generator, so a caller can evaluate, log or stop between epochs (learning-curve
    extrapolation stops bad runs this way) without a callback API.
    """
    gen = torch.Generator().manual_seed(seed)
    if recipe.channels_last:
        model.to(memory_format=torch.channels_last)
    steps_per_epoch = -(-len(data.x_train) // recipe.batch_size)
    opt = recipe.optimizer(model.parameters())
    sched = recipe.scheduler(opt, recipe.epochs * steps_per_epoch)
    loss_fn = recipe.loss_fn()
    for epoch in range(recipe.epochs):
        model.train()
        total, n = 0.0, 0
        for step, (x, y) in enumerate(
            data.batches("train", recipe.batch_size, shuffle=True, generator=gen)
        ):
            loss = loss_fn(model(x), y)
            check_loss(loss, f"epoch {epoch} step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            n += len(y)
        yield total / n


def train_model(
    model: nn.Module,
    data: Dataset,
    recipe: Recipe,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Fit `model` on the train split; report val and test accuracy of the final weights."""
    start = time.perf_counter()
    history = []
    for epoch, loss in enumerate(train_epochs(model, data, recipe, seed)):
        history.append(loss)
        if on_epoch:
            on_epoch(epoch, loss)
    model.eval()
    val, _ = evaluate(model, data.batches("val", 256))
    test, _ = evaluate(model, data.batches("test", 256))
    return TrainResult(val, test, history, time.perf_counter() - start)
