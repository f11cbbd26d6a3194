"""ResNet-18 supernet: 8 basic blocks, each choosing a kernel {3,5,7} and an inner width.

Weight sharing as in SPOS (Guo et al. 2020): every kernel size owns its convs and BNs,
allocated at the widest inner width; a narrower width uses their leading channels. The
standalone network is built from the same classes with only the chosen kernel, allocated
at exactly its width, so its weights are leading slices of the supernet's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from supernas.space import Arch, SearchSpace
from supernas.space.resnet18 import BLOCK_MULTIPLIERS, BLOCK_STRIDES
from supernas.supernet.base import Supernet, mix, register_supernet

#: Per block: (ModuleDict key of the chosen kernel, inner width).
BlockConfig = tuple[str, int]


class SlicedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose input may have c <= num_features channels: it uses the first c entries.

    Why: a narrower candidate's statistics must live in the leading entries of the widest
    one's buffers, so `extract` stays a slice copy. Running stats update in place exactly as
    nn.BatchNorm2d's (momentum=None gives a cumulative average, which recalibration uses).
    """

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        if c > self.num_features:
            raise ValueError(f"input has {c} channels, BN holds only {self.num_features}")
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or self.running_mean is None
        keep_stats = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            _head(self.running_mean, c) if keep_stats else None,
            _head(self.running_var, c) if keep_stats else None,
            _head(self.weight, c),
            _head(self.bias, c),
            use_batch_stats,
            factor,
            self.eps,
        )


def _head(t: Tensor | None, c: int) -> Tensor | None:
    return None if t is None else t[:c]


class KernelBranch(nn.Module):
    """conv kxk (in->mid, stride) + BN + ReLU + conv kxk (mid->out) + BN, for one kernel size."""

    def __init__(self, cin: int, mid: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv2d(cin, mid, kernel, stride, pad, bias=False)
        self.bn1 = SlicedBatchNorm2d(mid)
        self.relu = nn.ReLU(inplace=True)  # a module, so activation proxies can hook it
        self.conv2 = nn.Conv2d(mid, cout, kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, mid: int) -> Tensor:
        c1, c2 = self.conv1, self.conv2
        if mid == c1.out_channels:  # the full width: plain module calls, no slicing
            h = self.relu(self.bn1(c1(x)))
            return self.bn2(c2(h))
        h = F.conv2d(x, c1.weight[:mid], None, c1.stride, c1.padding)
        h = self.relu(self.bn1(h))
        return self.bn2(F.conv2d(h, c2.weight[:, :mid], None, 1, c2.padding))


class BasicBlock(nn.Module):
    """A ResNet basic block whose residual branch is one of several kernel candidates."""

    def __init__(self, cin: int, cout: int, stride: int, kernels: Sequence[int], mid: int) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(
            {f"k{k}": KernelBranch(cin, mid, cout, k, stride) for k in kernels}
        )
        # The shortcut does not depend on the choice, so every candidate shares it.
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, key: str, mid: int) -> Tensor:
        return self.relu(self.branches[key](x, mid) + self.shortcut(x))

    def forward_mixed(
        self,
        x: Tensor,
        candidates: Sequence[BlockConfig],
        weights: Tensor,
        zero: Sequence[bool],
    ) -> Tensor:
        """relu(sum_j weights[j] * branch_j(x) + shortcut(x)) over (kernel, width) candidates.

        Every candidate's branch ends in the block's own out-channels (the width choice is
        the inner width), so the outputs add as they are; no padding is needed.
        """
        branch = mix(weights, zero, lambda j: self.branches[candidates[j][0]](x, candidates[j][1]))
        out = self.shortcut(x)
        if branch is None:  # every weight 0: only the shortcut (x itself must not change)
            return F.relu(out)
        return self.relu(branch + out)


def inner_width(width: float, out_channels: int) -> int:
    """Channels between a block's two convs: round(width * out), at least 1."""
    return max(1, round(width * out_channels))


def _block_channels(base_width: int) -> list[tuple[int, int, int]]:
    """(in, out, stride) of the 8 blocks."""
    outs = [m * base_width for m in BLOCK_MULTIPLIERS]
    ins = [base_width, *outs[:-1]]
    return list(zip(ins, outs, BLOCK_STRIDES, strict=True))


def _stem(opts: dict, width: int) -> nn.Sequential:
    cin = opts["in_channels"]
    if opts["stem"] == "imagenet":
        return nn.Sequential(
            nn.Conv2d(cin, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
    return nn.Sequential(
        nn.Conv2d(cin, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
    )


def _build(
    net: nn.Module, space: SearchSpace, kernels: Sequence[Sequence[int]], mids: Sequence[int]
) -> None:
    """Give `net` the layers both the supernet and a standalone network have."""
    opts = space.options
    width = opts["base_width"]
    net.stem = _stem(opts, width)
    net.blocks = nn.ModuleList(
        BasicBlock(cin, cout, stride, ks, mid)
        for (cin, cout, stride), ks, mid in zip(_block_channels(width), kernels, mids, strict=True)
    )
    net.fc = nn.Linear(BLOCK_MULTIPLIERS[-1] * width, opts["num_classes"])
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _forward(net: nn.Module, x: Tensor, config: Sequence[BlockConfig]) -> Tensor:
    x = net.stem(x)
    for block, (key, mid) in zip(net.blocks, config, strict=True):
        x = block(x, key, mid)
    return net.fc(x.mean((2, 3)))


def _config(space: SearchSpace, arch: Arch) -> tuple[BlockConfig, ...]:
    v = arch.values
    outs = [m * space.options["base_width"] for m in BLOCK_MULTIPLIERS]
    return tuple(
        (f"k{v[2 * b]}", inner_width(float(v[2 * b + 1]), out)) for b, out in enumerate(outs)
    )


class ResNet18Network(nn.Module):
    """One ResNet-18 arch on its own: `forward(x)` runs the fixed arch it was built for."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        self.arch = space.validate(arch)
        self.config = _config(space, self.arch)
        kernels = [[int(key[1:])] for key, _ in self.config]
        _build(self, space, kernels, [mid for _, mid in self.config])

    def forward(self, x: Tensor) -> Tensor:
        return _forward(self, x, self.config)


@register_supernet("resnet18")
class ResNet18Supernet(Supernet):
    """Every kernel candidate of every block, each allocated at the widest inner width."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        outs = [m * space.options["base_width"] for m in BLOCK_MULTIPLIERS]
        kernels = [space.choices[2 * b].options for b in range(len(outs))]
        mids = [
            max(inner_width(float(w), out) for w in space.choices[2 * b + 1].options)
            for b, out in enumerate(outs)
        ]
        _build(self, space, kernels, mids)

    def config(self, arch: Arch) -> tuple[BlockConfig, ...]:
        """Per-block (kernel key, inner width), cached: validation stays off the training step."""
        return self.cached_config(arch, _config)

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        return _forward(self, x, self.config(arch))

    def forward_mixed(self, x: Tensor, weights: Sequence[Tensor]) -> Tensor:
        """Per block, the weighted sum over its 9 (kernel, width) candidates.

        A block has two choices (kernel, width), each with its own weight vector; candidate
        (k, w) weighs weights[kernel][k] * weights[width][w], the expectation under the
        factorised distribution (a one-hot pair selects exactly `forward(x, arch)`'s
        path). Each candidate runs the sliced path at its inner width, as `forward` does,
        so every candidate updates its own BN statistics in train mode.
        """
        zeros = self.mixed_zeros(weights)
        opts = self.space.options
        outs = [m * opts["base_width"] for m in BLOCK_MULTIPLIERS]
        x = self.stem(x)
        for b, (block, out) in enumerate(zip(self.blocks, outs, strict=True)):
            kernels = self.space.choices[2 * b].options
            widths = self.space.choices[2 * b + 1].options
            cands = [(f"k{k}", inner_width(float(w), out)) for k in kernels for w in widths]
            wk, ww = weights[2 * b], weights[2 * b + 1]
            zk, zw = zeros[2 * b], zeros[2 * b + 1]
            joint = (wk[:, None] * ww[None, :]).reshape(-1)
            zero = [a or c for a in zk for c in zw]
            x = block.forward_mixed(x, cands, joint, zero)
        return self.fc(x.mean((2, 3)))

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        return ResNet18Network(space, arch)
