"""Standalone networks of the resnet50 space (no supernet: see space/resnet50.py).

Each bottleneck is conv a -> conv b (the stage's stride) -> conv c, BN after each, ReLU after
a and b and after the residual sum. Every conv has its own kernel and width, so a block's
input and output widths rarely match: the shortcut is the identity only when they do and
the stride is 1, else a 1x1 conv + BN (ResNet's projection shortcut).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from supernas.space import Arch, SearchSpace
from supernas.space.resnet50 import STAGE_STRIDES, STAGES
from supernas.supernet.base import register_network


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]


class Bottleneck(nn.Module):
    def __init__(self, cin: int, convs: Sequence[tuple[int, int]], stride: int) -> None:
        super().__init__()
        (ka, ca), (kb, cb), (kc, cc) = convs
        self.body = nn.Sequential(
            *conv_bn(cin, ca, ka),
            nn.ReLU(inplace=True),
            *conv_bn(ca, cb, kb, stride),
            nn.ReLU(inplace=True),
            *conv_bn(cb, cc, kc),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cc:
            self.shortcut = nn.Sequential(*conv_bn(cin, cc, 1, stride))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet50Network(nn.Module):
    """One arch of the resnet50 space; a 3x3-stride-1 stem suits small images."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        v = space.validate(arch).values
        convs = [(int(v[2 * i]), int(v[2 * i + 1])) for i in range(len(v) // 2)]
        k, c = convs[0]
        self.stem = nn.Sequential(*conv_bn(space.options["in_channels"], c, k), nn.ReLU(True))
        blocks, i = [], 1
        for n, stride in zip(STAGES, STAGE_STRIDES, strict=True):
            for b in range(n):
                blocks.append(Bottleneck(c, convs[i : i + 3], stride if b == 0 else 1))
                c = convs[i + 2][1]
                i += 3
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, space.options["num_classes"])

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


@register_network("resnet50")
def build(space: SearchSpace, arch: Arch) -> nn.Module:
    return ResNet50Network(space, arch)
