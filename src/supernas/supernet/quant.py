"""Mixed-precision ResNet-18 supernet: one set of float weights, fake-quantized per path.

Every bit width shares the block's float conv weights and its BN (BN is recalibrated per
arch before evaluation, as for every supernet); only the activation clips are per bit
width. The standalone network of an arch is the same classes with its bits fixed and only
its clips kept, so `extract` is the generic copy and both run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from supernas.space import Arch, SearchSpace
from supernas.space.quant import QUANT_SPACE
from supernas.space.resnet18 import BLOCK_MULTIPLIERS
from supernas.supernet.base import Supernet, register_supernet
from supernas.supernet.fake_quant import QuantAct, QuantConv2d
from supernas.supernet.resnet18 import _block_channels, _stem

#: Per block: (weight bits, activation bits).
Bits = tuple[int, int]


class QuantBlock(nn.Module):
    """A 3x3 ResNet basic block whose convs (shortcut included) run at (w_bits, a_bits).

    The block input is quantized once for conv1 and the shortcut conv; the identity
    shortcut adds the float input, so the residual stream itself stays float.
    """

    def __init__(self, cin: int, cout: int, stride: int, a_options: Sequence[int]) -> None:
        super().__init__()
        self.act_in = QuantAct(a_options)
        self.conv1 = QuantConv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.act_mid = QuantAct(a_options)
        self.conv2 = QuantConv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: QuantConv2d | None = None
        if stride != 1 or cin != cout:
            self.shortcut = QuantConv2d(cin, cout, 1, stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(cout)
        self.relu_out = nn.ReLU(inplace=True)

    def convs(self) -> list[QuantConv2d]:
        return [c for c in (self.conv1, self.conv2, self.shortcut) if c is not None]

    def forward(self, x: Tensor, w_bits: int, a_bits: int) -> Tensor:
        xq = self.act_in(x, a_bits)
        h = self.relu(self.bn1(self.conv1(xq, w_bits)))
        h = self.bn2(self.conv2(self.act_mid(h, a_bits), w_bits))
        sc = x if self.shortcut is None else self.shortcut_bn(self.shortcut(xq, w_bits))
        return self.relu_out(h + sc)


def _build(net: nn.Module, space: SearchSpace, a_options: Sequence[Sequence[int]]) -> None:
    opts = space.options
    width = opts["base_width"]
    net.stem = _stem(opts, width)
    net.blocks = nn.ModuleList(
        QuantBlock(cin, cout, stride, a)
        for (cin, cout, stride), a in zip(_block_channels(width), a_options, strict=True)
    )
    net.fc = nn.Linear(BLOCK_MULTIPLIERS[-1] * width, opts["num_classes"])
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _forward(net: nn.Module, x: Tensor, bits: Sequence[Bits]) -> Tensor:
    x = net.stem(x)
    for block, (w, a) in zip(net.blocks, bits, strict=True):
        x = block(x, w, a)
    return net.fc(x.mean((2, 3)))


def arch_bits(space: SearchSpace, arch: Arch) -> tuple[Bits, ...]:
    """Per block: (weight bits, activation bits) of `arch`."""
    v = arch.values
    return tuple((int(v[2 * b]), int(v[2 * b + 1])) for b in range(len(v) // 2))


class QuantNetwork(nn.Module):
    """One mixed-precision arch on its own, its bits fixed (quantization-aware training)."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        self.arch = space.validate(arch)
        self.bits = arch_bits(space, self.arch)
        _build(self, space, [(a,) for _, a in self.bits])
        for block, (w, a) in zip(self.blocks, self.bits, strict=True):
            for conv in block.convs():
                conv.w_bits, conv.a_bits = w, a

    def forward(self, x: Tensor) -> Tensor:
        return _forward(self, x, self.bits)


@register_supernet(QUANT_SPACE)
class QuantSupernet(Supernet):
    """Every bit width of every block on one set of float weights (SPOS's quantization)."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        a_options = [
            [int(o) for o in space.choices[2 * b + 1].options]
            for b in range(len(BLOCK_MULTIPLIERS))
        ]
        _build(self, space, a_options)

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        return _forward(self, x, self.cached_config(arch, arch_bits))

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        return QuantNetwork(space, arch)
