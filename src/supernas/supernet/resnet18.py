"""ResNet-18 supernet: 8 basic blocks, each choosing a kernel {3,5,7} and an inner width.

How the 9 (kernel, width) options of a block share weights is the space option `sharing`:

- `kernel` (default; SPOS, Guo et al. 2020): every kernel size owns its convs and BNs,
  allocated at the widest inner width; a narrower width uses their leading channels.
- `independent`: every (kernel, width) option owns its convs and BNs at exactly its width,
  nothing shared: 9 branches a block, the baseline that isolates what sharing costs.
- `nested` (Once-for-All's elastic kernel and width; SPOS's channel search): one branch a
  block at the largest kernel and widest width; a kxk option uses the centre kxk of its
  kernels (as mobilenetv2's depthwise kernels) and a narrower width the leading channels.

The standalone network, whatever the mode, is built from the same classes with only the
chosen option at exactly its width; `source_key` and `slice_of` tell `extract` which
supernet tensor, and which part of it, each of its tensors is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernas.space import Arch, SearchSpace, format_option
from supernas.space.resnet18 import BLOCK_MULTIPLIERS, BLOCK_STRIDES, SHARINGS
from supernas.supernet.base import Supernet, mix, register_supernet

#: Per block: (ModuleDict key of the branch that runs, inner width, kernel).
BlockConfig = tuple[str, int, int]
#: Per block: the branches it holds, key -> (kernel, inner width allocated).
BranchSpec = dict[str, tuple[int, int]]


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


def centre(weight: Tensor, kernel: int) -> Tensor:
    """The centre kernel x kernel of a conv weight (nested sharing's smaller kernels)."""
    o = (weight.shape[-1] - kernel) // 2
    return weight[..., o : o + kernel, o : o + kernel]


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

    def forward(self, x: Tensor, mid: int, kernel: int) -> Tensor:
        c1, c2 = self.conv1, self.conv2
        if mid == c1.out_channels and kernel == c1.kernel_size[0]:  # plain module calls
            h = self.relu(self.bn1(c1(x)))
            return self.bn2(c2(h))
        w1, w2 = c1.weight[:mid], c2.weight[:, :mid]
        if kernel != c1.kernel_size[0]:
            w1, w2 = centre(w1, kernel), centre(w2, kernel)
        h = F.conv2d(x, w1, None, c1.stride, kernel // 2)
        h = self.relu(self.bn1(h))
        return self.bn2(F.conv2d(h, w2, None, 1, kernel // 2))


class BasicBlock(nn.Module):
    """A ResNet basic block whose residual branch is one of several kernel candidates."""

    def __init__(self, cin: int, cout: int, stride: int, branches: BranchSpec) -> None:
        super().__init__()
        self.branches = nn.ModuleDict(
            {key: KernelBranch(cin, mid, cout, k, stride) for key, (k, mid) in branches.items()}
        )
        # The shortcut does not depend on the choice, so every candidate shares it.
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, key: str, mid: int, kernel: int) -> Tensor:
        return self.relu(self.branches[key](x, mid, kernel) + self.shortcut(x))

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

        def branch_of(j: int) -> Tensor:
            key, mid, kernel = candidates[j]
            return self.branches[key](x, mid, kernel)

        branch = mix(weights, zero, branch_of)
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


def _build(net: nn.Module, space: SearchSpace, branches: Sequence[BranchSpec]) -> None:
    """Give `net` the layers both the supernet and a standalone network have."""
    opts = space.options
    width = opts["base_width"]
    net.stem = _stem(opts, width)
    net.blocks = nn.ModuleList(
        BasicBlock(cin, cout, stride, spec)
        for (cin, cout, stride), spec in zip(_block_channels(width), branches, strict=True)
    )
    net.fc = nn.Linear(BLOCK_MULTIPLIERS[-1] * width, opts["num_classes"])
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _forward(net: nn.Module, x: Tensor, config: Sequence[BlockConfig]) -> Tensor:
    x = net.stem(x)
    for block, (key, mid, kernel) in zip(net.blocks, config, strict=True):
        x = block(x, key, mid, kernel)
    return net.fc(x.mean((2, 3)))


def _options(space: SearchSpace, arch: Arch) -> list[tuple[int, float, int]]:
    """Per block: (kernel, width, inner width) of `arch`."""
    v = arch.values
    outs = [m * space.options["base_width"] for m in BLOCK_MULTIPLIERS]
    return [
        (int(v[2 * b]), float(v[2 * b + 1]), inner_width(float(v[2 * b + 1]), out))
        for b, out in enumerate(outs)
    ]


def _config(space: SearchSpace, arch: Arch) -> tuple[BlockConfig, ...]:
    """The standalone network's plan: its one branch per block is keyed by the kernel."""
    return tuple((f"k{k}", mid, k) for k, _, mid in _options(space, arch))


class ResNet18Network(nn.Module):
    """One ResNet-18 arch on its own: `forward(x)` runs the fixed arch it was built for."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        self.arch = space.validate(arch)
        self.config = _config(space, self.arch)
        _build(self, space, [{key: (k, mid)} for key, mid, k in self.config])

    def forward(self, x: Tensor) -> Tensor:
        return _forward(self, x, self.config)


def sharing_of(space: SearchSpace) -> str:
    """The space's weight-sharing mode (absent from `options` means the default)."""
    return str(space.options.get("sharing", SHARINGS[0]))


def branch_key(sharing: str, kernel: int, width: float, kernels: Sequence[int]) -> str:
    """The supernet branch that option (kernel, width) of a block runs on."""
    if sharing == "independent":  # ModuleDict keys cannot hold '.': w0.5 -> w0_5
        return f"k{kernel}w{format_option(width).replace('.', '_')}"
    if sharing == "nested":
        return f"k{max(kernels)}"
    return f"k{kernel}"


def _supernet_config(space: SearchSpace, arch: Arch) -> tuple[BlockConfig, ...]:
    sharing = sharing_of(space)
    return tuple(
        (branch_key(sharing, k, w, space.choices[2 * b].options), mid, k)
        for b, (k, w, mid) in enumerate(_options(space, arch))
    )


@register_supernet("resnet18")
class ResNet18Supernet(Supernet):
    """Every (kernel, width) option of every block, its weights shared as `sharing` says."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        sharing = sharing_of(space)
        outs = [m * space.options["base_width"] for m in BLOCK_MULTIPLIERS]
        #: Per block, the (branch key, inner width, kernel) of each (kernel, width) option,
        #: kernel-major: the order of forward_mixed's joint weights.
        self._candidates: list[list[BlockConfig]] = []
        branches: list[BranchSpec] = []
        for b, out in enumerate(outs):
            kernels = [int(k) for k in space.choices[2 * b].options]
            widths = [float(w) for w in space.choices[2 * b + 1].options]
            cands = [
                (branch_key(sharing, k, w, kernels), inner_width(w, out), k)
                for k in kernels
                for w in widths
            ]
            spec: BranchSpec = {}
            for key, mid, k in cands:  # a shared branch: the largest kernel and width
                old_k, old_mid = spec.get(key, (0, 0))
                spec[key] = (max(k, old_k), max(mid, old_mid))
            self._candidates.append(cands)
            branches.append(spec)
        _build(self, space, branches)

    def config(self, arch: Arch) -> tuple[BlockConfig, ...]:
        """Per-block (branch key, inner width, kernel), cached: validation stays off the step."""
        return self.cached_config(arch, _supernet_config)

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        return _forward(self, x, self.config(arch))

    def forward_mixed(self, x: Tensor, weights: Sequence[Tensor]) -> Tensor:
        """Per block, the weighted sum over its 9 (kernel, width) candidates.

        A block has two choices (kernel, width), each with its own weight vector; candidate
        (k, w) weighs weights[kernel][k] * weights[width][w], the expectation under the
        factorised distribution (a one-hot pair selects exactly `forward(x, arch)`'s
        path). Each candidate runs the path `forward` runs for it (its own branch, or a
        slice of a shared one), so every candidate updates its BN statistics in train mode.
        """
        zeros = self.mixed_zeros(weights)
        x = self.stem(x)
        for b, (block, cands) in enumerate(zip(self.blocks, self._candidates, strict=True)):
            wk, ww = weights[2 * b], weights[2 * b + 1]
            zk, zw = zeros[2 * b], zeros[2 * b + 1]
            joint = (wk[:, None] * ww[None, :]).reshape(-1)
            zero = [a or c for a in zk for c in zw]
            x = block.forward_mixed(x, cands, joint, zero)
        return self.fc(x.mean((2, 3)))

    def source_key(self, key: str, arch: Arch) -> str:
        """A standalone branch key (`k3`) names the supernet branch its option runs on."""
        parts = key.split(".")
        if sharing_of(self.space) == SHARINGS[0] or parts[0] != "blocks" or len(parts) < 4:
            return key
        if parts[2] != "branches":  # the shortcut: one for every option
            return key
        parts[3] = self.config(arch)[int(parts[1])][0]
        return ".".join(parts)

    def slice_of(self, key: str, shape: torch.Size) -> tuple[slice, ...]:
        """Leading channels; a smaller kernel of a nested branch is its kernel's centre."""
        lead = super().slice_of(key, shape)
        if len(shape) != 4 or ".branches." not in key:
            return lead
        big = self.get_parameter(key).shape[-1]
        o = (big - shape[-1]) // 2
        return (*lead[:2], slice(o, o + shape[-2]), slice(o, o + shape[-1]))

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        return ResNet18Network(space, arch)
