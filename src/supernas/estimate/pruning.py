"""Pruning-based NAS: one wide network trained once, any narrower arch cut out of it.

Why: a supernet shares weights between paths that train each other's weights only part of
the time; pruning trains one network (the widest arch of the resnet18 space: every block
kernel 7, width x2) fully, then obtains any arch by structured channel pruning (keep each
block's inner filters with the largest L1 norm, as Li et al. 2017) and centre-cropping
kernels (as once-for-all), fine-tunes it for a few steps and scores it on the val split.
So the trust report can set it beside the supernets on the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace
from supernas.supernet import build_network, recalibrate_bn
from supernas.train import Recipe, evaluate, train_model


def widest_arch(space: SearchSpace) -> Arch:
    """Every block: the largest kernel and the widest inner width."""
    return space.arch({c.name: max(c.options) for c in space.choices})


def _crop(w: torch.Tensor, k: int) -> torch.Tensor:
    big = w.shape[-1]
    s = (big - k) // 2
    return w[..., s : s + k, s : s + k]


@torch.no_grad()
def prune_into(wide: nn.Module, net: nn.Module) -> nn.Module:
    """Copy `wide`'s weights into the narrower `net` (both resnet18 standalone networks).

    Per block: the inner filters of conv1 with the largest L1 norms (in their original order),
    the matching BN1 entries and conv2 input channels, kernels centre-cropped; everything
    whose shape does not depend on the arch (stem, shortcuts, BN2, fc) is copied as is.
    """
    for name in ("stem", "fc"):
        getattr(net, name).load_state_dict(getattr(wide, name).state_dict())
    for wb, nb in zip(wide.blocks, net.blocks, strict=True):
        nb.shortcut.load_state_dict(wb.shortcut.state_dict())
        (src,) = wb.branches.values()
        (dst,) = nb.branches.values()
        mid, k = dst.conv1.out_channels, dst.conv1.kernel_size[0]
        if mid > src.conv1.out_channels or k > src.conv1.kernel_size[0]:
            raise SupernasError("prune_into: the target network is wider than the source")
        norms = src.conv1.weight.abs().sum((1, 2, 3))
        keep = torch.topk(norms, mid).indices.sort().values
        dst.conv1.weight.copy_(_crop(src.conv1.weight[keep], k))
        dst.conv2.weight.copy_(_crop(src.conv2.weight[:, keep], k))
        for attr in ("weight", "bias", "running_mean", "running_var"):
            getattr(dst.bn1, attr).copy_(getattr(src.bn1, attr)[keep])
        dst.bn2.load_state_dict(src.bn2.state_dict())
    return net


class PruningEstimator:
    """Score = val accuracy of the arch pruned from the trained wide network, fine-tuned.

    `wide`: the trained widest network (`train_wide`, or `supernas retrain` of
    `widest_arch` loaded back); `finetune_steps` SGD steps of `recipe` on the train split
    (0: BN recalibration only), seeded and the same for every arch.
    """

    name = "pruning"

    def __init__(
        self,
        space: SearchSpace,
        wide: nn.Module,
        data: Dataset,
        *,
        finetune_steps: int = 20,
        recipe: Recipe | None = None,
        recal_batches: int = 10,
        seed: int = 0,
        on_arch: Callable[[], None] | None = None,
    ) -> None:
        self.space = space
        self.wide = wide
        self.data = data
        self.finetune_steps = finetune_steps
        self.recipe = recipe or Recipe(epochs=1, batch_size=128, lr=0.01)
        self.recal_batches = recal_batches
        self.seed = seed
        self.on_arch = on_arch

    def prune(self, arch: Arch) -> nn.Module:
        if self.space.name != "resnet18":
            raise SupernasError(
                f"the pruning estimator works on the resnet18 space, not {self.space.name!r}"
            )
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            net = build_network(self.space, arch)
        return prune_into(self.wide, net)

    def score(self, archs: Sequence[Arch]) -> list[float]:
        out = []
        for arch in archs:
            net = self.prune(self.space.validate(arch))
            self._finetune(net)
            net.eval()
            out.append(evaluate(net, self.data.batches("val", 512))[0])
            if self.on_arch:
                self.on_arch()
        return out

    def _finetune(self, net: nn.Module) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        if self.finetune_steps > 0:
            opt = self.recipe.optimizer(net.parameters())
            loss_fn = self.recipe.loss_fn()
            net.train()
            batches = self.data.batches(
                "train", self.recipe.batch_size, shuffle=True, generator=gen, drop_last=True
            )
            for step, (x, y) in enumerate(batches):
                if step == self.finetune_steps:
                    break
                loss = loss_fn(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        elif self.recal_batches > 0:
            recalibrate_bn(
                net,
                self.data.batches(
                    "train", self.recipe.batch_size, shuffle=True, generator=gen,
                    drop_last=True, limit=self.recal_batches,
                ),
            )  # fmt: skip


def train_wide(space: SearchSpace, data: Dataset, recipe: Recipe, seed: int = 0) -> nn.Module:
    """Train the widest arch of `space` standalone once: the network every arch is cut from."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        wide = build_network(space, widest_arch(space))
    train_model(wide, data, recipe, seed=seed)
    return wide
