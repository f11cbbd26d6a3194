"""MobileNetV2 supernet: 16 inverted-residual blocks, each an MBConv op or (where legal) skip.

Weight sharing, as Once-for-All's elastic kernel: every weight of a block is shared by
all its ops. One depthwise conv holds the largest kernel (7x7); a kxk op uses its centre
kxk (`slice_of` tells `extract` so). Everything is allocated at the largest expansion (6);
expansion 3 uses the leading channels of the expand conv, the depthwise conv and the BNs,
and the leading input channels of the project conv. A skipped block holds no weights and
returns its input. (Independent per-kernel depthwise convs, SPOS-style, were tried first:
with a random kernel per block each kernel's weights saw a third of the steps, and SPOS
barely learned on digits in 12 epochs.)

Activations are nn.ReLU, not MobileNetV2's ReLU6 (a clamp for 8-bit inference), as CIFAR
MobileNetV2s do; the activation-pattern proxies also hook nn.ReLU modules and would see
no activation in a ReLU6 network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernas.space import Arch, SearchSpace
from supernas.space.mobilenetv2 import (
    FIRST_CHANNELS,
    HEAD_CHANNELS,
    SKIP,
    STEM_CHANNELS,
    block_layout,
    scaled,
    skippable,
)
from supernas.supernet.base import Supernet, mix, register_supernet
from supernas.supernet.resnet18 import SlicedBatchNorm2d

#: Per block: (depthwise kernel, expanded width); (0, 0) for a skipped block.
BlockConfig = tuple[int, int]


class MBBlock(nn.Module):
    """One searchable block: expand 1x1 + BN + ReLU, depthwise kxk (stride) + BN + ReLU,
    project 1x1 + BN (+ identity shortcut where legal); or skip, the identity.

    `kernel` is the depthwise conv's size: the largest candidate in a supernet, the chosen
    one in a standalone network; a smaller kernel runs on its centre. A block built with
    kernel 0 (a skipped block of a standalone network) holds nothing.
    """

    def __init__(
        self, cin: int, cout: int, stride: int, kernel: int, mid: int, residual: bool
    ) -> None:
        super().__init__()
        self.residual = residual
        if not kernel:
            return
        self.expand = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = SlicedBatchNorm2d(mid)
        self.act1 = nn.ReLU(inplace=True)  # modules, so activation proxies can hook them
        self.dw = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self.bn2 = SlicedBatchNorm2d(mid)
        self.act2 = nn.ReLU(inplace=True)
        self.project = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, kernel: int, mid: int) -> Tensor:
        if not kernel:
            return x
        dw = self.dw
        if mid == dw.out_channels and kernel == dw.kernel_size[0]:  # plain module calls
            h = self.act1(self.bn1(self.expand(x)))
            h = self.act2(self.bn2(dw(h)))
            h = self.bn3(self.project(h))
        else:
            h = self.act1(self.bn1(F.conv2d(x, self.expand.weight[:mid])))
            o = (dw.kernel_size[0] - kernel) // 2
            w = dw.weight[:mid, :, o : o + kernel, o : o + kernel]
            h = F.conv2d(h, w, None, dw.stride, kernel // 2, groups=mid)
            h = self.act2(self.bn2(h))
            h = self.bn3(F.conv2d(h, self.project.weight[:, :mid]))
        return x + h if self.residual else h

    def forward_mixed(
        self,
        x: Tensor,
        configs: Sequence[BlockConfig],
        weights: Tensor,
        zero: Sequence[bool],
    ) -> Tensor:
        """sum_j weights[j] * op_j(x) over the block's ops, each op exactly `forward`'s.

        Each op is the whole block under that (kernel, width), its shortcut included, and
        skip (kernel 0) is x itself, so a one-hot weight gives `forward`'s output exactly.
        Zero weights are not computed (`mix`); if every op was skipped, zeros of the
        block's output shape stand in (the shape is known without running an op).
        """
        total = mix(weights, zero, lambda j: self(x, *configs[j]))
        if total is None or total.dim() == 0:
            n, _, h, w = x.shape
            stride = self.dw.stride[0]
            shape = (n, self.project.out_channels, (h - 1) // stride + 1, (w - 1) // stride + 1)
            zeros = x.new_zeros(shape)
            total = zeros if total is None else total + zeros
        return total


def _conv_bn(cin: int, cout: int, kernel: int, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, 1, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


def _build(net: nn.Module, space: SearchSpace, kernels: Sequence[int], mids: Sequence[int]) -> None:
    """Give `net` the layers both the supernet and a standalone network have."""
    opts = space.options
    width = opts["base_width"]
    stem, first = scaled(STEM_CHANNELS, width), scaled(FIRST_CHANNELS, width)
    net.stem = nn.Sequential(*_conv_bn(opts["in_channels"], stem, 3), nn.ReLU(inplace=True))
    # MobileNetV2's first block (expansion 1: depthwise 3x3, project 1x1) is fixed.
    net.first = nn.Sequential(
        *_conv_bn(stem, stem, 3, groups=stem), nn.ReLU(inplace=True), *_conv_bn(stem, first, 1)
    )
    layout = block_layout(width)
    legal = [skippable(*lay) for lay in block_layout(STEM_CHANNELS)]
    net.blocks = nn.ModuleList(
        MBBlock(cin, cout, stride, ks, mid, res)
        for (cin, cout, stride), ks, mid, res in zip(layout, kernels, mids, legal, strict=True)
    )
    head = scaled(HEAD_CHANNELS, width)
    net.head = nn.Sequential(*_conv_bn(layout[-1][1], head, 1), nn.ReLU(inplace=True))
    net.fc = nn.Linear(head, opts["num_classes"])
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _forward(net: nn.Module, x: Tensor, config: Sequence[BlockConfig]) -> Tensor:
    x = net.first(net.stem(x))
    for block, (kernel, mid) in zip(net.blocks, config, strict=True):
        x = block(x, kernel, mid)
    return net.fc(net.head(x).mean((2, 3)))


def _op_config(op: object, cin: int) -> BlockConfig:
    """(kernel, expanded width) of one op token on a block with `cin` input channels."""
    if op == SKIP:
        return (0, 0)
    kernel, expansion = str(op)[1:].split("e")
    return (int(kernel), int(expansion) * cin)


def _config(space: SearchSpace, arch: Arch) -> tuple[BlockConfig, ...]:
    layout = block_layout(space.options["base_width"])
    return tuple(_op_config(op, cin) for op, (cin, _, _) in zip(arch.values, layout, strict=True))


class MobileNetV2Network(nn.Module):
    """One MobileNetV2 arch on its own: `forward(x)` runs the fixed arch it was built for."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        self.arch = space.validate(arch)
        self.config = _config(space, self.arch)
        _build(self, space, [k for k, _ in self.config], [mid for _, mid in self.config])

    def forward(self, x: Tensor) -> Tensor:
        return _forward(self, x, self.config)


@register_supernet("mobilenetv2")
class MobileNetV2Supernet(Supernet):
    """Every block at its largest kernel and expansion; each op is a slice of it."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        layout = block_layout(space.options["base_width"])
        kernels, mids = [], []
        for choice, (cin, _, _) in zip(space.choices, layout, strict=True):
            ops = [str(op)[1:].split("e") for op in choice.options if op != SKIP]
            kernels.append(max(int(k) for k, _ in ops))
            mids.append(max(int(e) for _, e in ops) * cin)
        _build(self, space, kernels, mids)
        #: Per block, the (kernel, width) of each option, in the choice's option order.
        self._op_configs = [
            [_op_config(op, cin) for op in choice.options]
            for choice, (cin, _, _) in zip(space.choices, layout, strict=True)
        ]

    def config(self, arch: Arch) -> tuple[BlockConfig, ...]:
        """Per-block (kernel, expanded width), cached: validation stays off the step."""
        return self.cached_config(arch, _config)

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        return _forward(self, x, self.config(arch))

    def forward_mixed(self, x: Tensor, weights: Sequence[Tensor]) -> Tensor:
        """Per block, sum_j weights[b][j] * op_j(x) over its ops (skip: x itself).

        The ProxylessNAS/FBNet mixed block: every op of a block reads the same input and the
        weighted outputs add (all ops of a block end in its output shape, and a skip exists
        only where that is x's shape). Ops with weight exactly 0 never run, so a one-hot
        weight runs `forward(x, arch)`'s path and a sampled path costs one op per block.
        """
        zeros = self.mixed_zeros(weights)
        x = self.first(self.stem(x))
        for block, configs, w, zero in zip(
            self.blocks, self._op_configs, weights, zeros, strict=True
        ):
            x = block.forward_mixed(x, configs, w, zero)
        return self.fc(self.head(x).mean((2, 3)))

    def slice_of(self, key: str, shape: torch.Size) -> tuple[slice, ...]:
        """A depthwise kernel is the centre of the block's largest one; the rest lead."""
        lead = super().slice_of(key, shape)
        if not key.endswith(".dw.weight"):
            return lead
        big = self.get_parameter(key).shape[-1]
        o = (big - shape[-1]) // 2
        return (*lead[:2], slice(o, o + shape[-2]), slice(o, o + shape[-1]))

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        return MobileNetV2Network(space, arch)
