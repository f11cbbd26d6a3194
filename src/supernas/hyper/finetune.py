"""Retrain from generated weights, and measure what that start is worth.

Why: a hypernet's weights for an arch are a free initialisation. `compare_init` answers
whether it beats random init after k fine-tuning steps, on the same batches and recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.hyper.base import HyperSupernet
from supernas.hyper.params import load_params
from supernas.space import Arch
from supernas.supernet import build_network, recalibrate_bn
from supernas.train import Recipe, check_loss, evaluate


def load_hypernet(path: str | Path) -> HyperSupernet:
    """A trained hypernet from a `supernas train --method smash|ghn` checkpoint."""
    from supernas.train import load_supernet

    net, ckpt = load_supernet(path)
    if not isinstance(net, HyperSupernet):
        method = (ckpt.get("trainer") or {}).get("name")
        raise SupernasError(
            f"{path} holds a supernet trained with {method}, not a hypernet: "
            "train one with --method smash or --method ghn"
        )
    return net


def init_from_hypernet(hyper: HyperSupernet | str | Path, arch: Arch | str) -> nn.Module:
    """A fresh standalone network of `arch` (ordinary BN) holding the generated weights."""
    if not isinstance(hyper, HyperSupernet):
        hyper = load_hypernet(hyper)
    arch = hyper.space.validate(arch)
    was_training = hyper.training
    hyper.eval()
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)  # every parameter is overwritten; keep the caller's RNG
            net = build_network(hyper.space, arch).to(hyper.device)
        with torch.no_grad():
            load_params(net, hyper.weights(arch))
    finally:
        hyper.train(was_training)
    return net


def finetune(
    net: nn.Module, data: Dataset, steps: int, recipe: Recipe, seed: int = 0, recal: int = 4
) -> float:
    """Val accuracy after `steps` SGD steps (BN statistics recalibrated before evaluating)."""
    gen = torch.Generator().manual_seed(seed)
    opt = recipe.optimizer(net.parameters())
    loss_fn = recipe.loss_fn()
    done = 0
    net.train()
    while done < steps:
        if len(data.x_train) == 0:
            raise SupernasError("fine-tuning needs a non-empty train split")
        for x, y in data.batches("train", recipe.batch_size, shuffle=True, generator=gen):
            if done == steps:
                break
            loss = loss_fn(net(x), y)
            check_loss(loss, f"fine-tuning step {done}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
    batches = data.batches("train", recipe.batch_size, shuffle=True, generator=gen, limit=recal)
    recalibrate_bn(net, batches)
    net.eval()
    return evaluate(net, data.batches("val", 512))[0]


def compare_init(
    hyper: HyperSupernet,
    arch: Arch | str,
    data: Dataset,
    steps: int = 20,
    recipe: Recipe | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Val accuracy after `steps` fine-tuning steps from generated vs random (seeded) init."""
    recipe = recipe or Recipe(lr=0.05)
    arch = hyper.space.validate(arch)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        scratch = build_network(hyper.space, arch).to(hyper.device)
    return {
        "arch": str(arch),
        "steps": steps,
        "hypernet": finetune(init_from_hypernet(hyper, arch), data, steps, recipe, seed),
        "random": finetune(scratch, data, steps, recipe, seed),
    }
