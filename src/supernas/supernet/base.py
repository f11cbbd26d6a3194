"""The supernet contract: `forward(x, arch)` with an explicit arch, and `extract(arch)`.

Design: a space's standalone network is built from the *same* module classes as its
supernet, holding only the chosen candidate (and only the chosen width). Its state-dict
keys are therefore a subset of the supernet's, and each tensor is a leading slice of the
supernet's tensor, so `extract` is one generic copy and the two forwards share code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.registry import Registry
from supernas.space import Arch, SearchSpace, get_space


class Supernet(nn.Module):
    """All candidate weights of a space. Subclasses implement `forward` and `build_network`."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def forward(self, x: Tensor, arch: Arch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:  # pragma: no cover
        """A fresh (randomly initialised) standalone network for `arch`."""
        raise NotImplementedError

    def extract(self, arch: Arch) -> nn.Module:
        """A standalone network for `arch` with the supernet's weights and BN stats copied."""
        arch = self.space.validate(arch)
        net = self.build_network(self.space, arch)
        first = next(self.parameters(), None)
        if first is not None:  # a standalone lives where its supernet lives (e.g. on the GPU)
            net.to(first.device)
        src = self.state_dict()
        dst = net.state_dict()
        new = {}
        for key, t in dst.items():
            if key not in src:
                raise RuntimeError(f"{type(self).__name__}: standalone key {key} not in supernet")
            s = src[key]
            new[key] = s[tuple(slice(0, n) for n in t.shape)].clone() if t.dim() else s.clone()
        net.load_state_dict(new)
        net.train(self.training)
        return net


SUPERNETS: Registry[type[Supernet]] = Registry("supernet (space)")


def register_supernet(space_name: str) -> Callable[[type[Supernet]], type[Supernet]]:
    """Register the Supernet class that builds networks for the space `space_name`."""
    return SUPERNETS.register(space_name)


def _space(space: SearchSpace | str, options: dict[str, Any]) -> SearchSpace:
    if isinstance(space, str):
        return get_space(space, **options)
    if options:
        raise SupernasError("pass space options to get_space, or a space name to build_supernet")
    return space


def build_supernet(space: SearchSpace | str, **options: Any) -> Supernet:
    """The weight-sharing supernet of a space (a SearchSpace, or a name plus space options)."""
    space = _space(space, options)
    return SUPERNETS.get(space.name)(space)


def build_network(space: SearchSpace | str, arch: Arch | str, **options: Any) -> nn.Module:
    """A fresh standalone network of one arch: what train-from-scratch trains."""
    space = _space(space, options)
    return SUPERNETS.get(space.name).build_network(space, space.validate(arch))


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Any,
    forward: Callable[[Tensor], Tensor] | None = None,
) -> int:
    """Reset BN running stats and re-estimate them as an exact average over `batches`.

    Why: a supernet's BN statistics mix every path it trained; a sub-network evaluated with
    them is mis-scored (SPOS, Guo et al. 2020). `forward` defaults to `model`; for a
    supernet pass `lambda x: supernet(x, arch)`. Returns the number of batches used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch weighs the same
    model.train()
    fwd = forward or model
    n = 0
    try:
        for x in batches:
            if isinstance(x, tuple | list):
                x = x[0]
            fwd(x)
            n += 1
    finally:
        for m, mom in saved:
            m.momentum = mom
        model.train(was_training)
    if n == 0:
        raise SupernasError("BN recalibration got no batches (is the train split empty?)")
    return n
