"""MobileNetV2's inverted-residual blocks, each choosing its MBConv op (as ProxylessNAS).

Per searchable block one choice `b{i}.op`: a depthwise kernel {3, 5, 7} x an expansion
{3, 6}, written `k{kernel}e{expansion}`, plus `skip` (the block is the identity) on the
blocks where skipping is legal: stride 1 and as many input as output channels. One choice
per block, not separate kernel/expansion/skip choices, so every arch is a distinct network
(a skipped block has no kernel to choose) and the arch string is one token per block.
"""

from __future__ import annotations

import re

from supernas.errors import SupernasError
from supernas.space.core import Arch, Choice, Scalar, SearchSpace, check_network_options
from supernas.space.registry import register_space

KERNELS = (3, 5, 7)
EXPANSIONS = (3, 6)
SKIP = "skip"
#: The MBConv ops of every block, kernel-major: k3e3, k3e6, k5e3, ..., k7e6.
OPS = tuple(f"k{k}e{e}" for k in KERNELS for e in EXPANSIONS)

#: MobileNetV2's channel counts at width 1.0; base_width is the stem's (32 at width 1.0),
#: and every other count scales by base_width / STEM_CHANNELS.
STEM_CHANNELS = 32
FIRST_CHANNELS = 16  # the fixed first block: MBConv expansion 1, kernel 3 (not searched)
HEAD_CHANNELS = 1280
#: Searchable stages: (out channels at width 1.0, blocks, stride of the first block).
#: CIFAR layout: the 24-channel stage keeps stride 1, so 32x32 inputs end at 4x4.
STAGES = ((24, 2, 1), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))

_TOKEN = re.compile(r"^(k\d+e\d+|skip)$")


def scaled(channels: int, base_width: int) -> int:
    """channels * base_width / 32 rounded, at least 1 (exact for base_width a multiple of 4)."""
    return max(1, round(channels * base_width / STEM_CHANNELS))


def block_layout(base_width: int) -> list[tuple[int, int, int]]:
    """(in, out, stride) of each searchable block."""
    out: list[tuple[int, int, int]] = []
    cin = scaled(FIRST_CHANNELS, base_width)
    for channels, n, stride in STAGES:
        cout = scaled(channels, base_width)
        for i in range(n):
            out.append((cin, cout, stride if i == 0 else 1))
            cin = cout
    return out


def skippable(cin: int, cout: int, stride: int) -> bool:
    """A block may be the identity only where the identity has its shape."""
    return stride == 1 and cin == cout


class MobileNetV2Space(SearchSpace):
    """Arch string: one op token per block joined by '-': 'k3e6-k5e3-skip-...'."""

    def format(self, values: tuple[Scalar, ...]) -> str:
        return "-".join(str(v) for v in values)

    def parse(self, text: str) -> Arch:
        tokens = text.strip().split("-")
        n = len(self.choices)
        if len(tokens) != n:
            raise SupernasError(
                f"arch string {text!r} has {len(tokens)} blocks; mobilenetv2 needs {n} "
                f"'k<kernel>e<expansion>' or 'skip' tokens joined by '-', e.g. {self.example()!r}"
            )
        values: list[Scalar] = []
        for b, (tok, choice) in enumerate(zip(tokens, self.choices, strict=True)):
            if not _TOKEN.match(tok):
                raise SupernasError(
                    f"arch string {text!r}: block {b} token {tok!r} is not "
                    "'k<kernel>e<expansion>' or 'skip'"
                )
            if tok == SKIP and SKIP not in choice.options:
                raise SupernasError(
                    f"arch string {text!r}: block {b} cannot be skipped (its stride or "
                    "channel count changes); it takes " + ", ".join(map(str, choice.options))
                )
            values.append(choice.from_text(tok))
        return Arch(self.name, tuple(values))


@register_space("mobilenetv2")
def mobilenetv2(
    base_width: int = 16,
    in_channels: int = 3,
    num_classes: int = 10,
) -> SearchSpace:
    """16 MBConv blocks x kernel {3,5,7} x expansion {3,6} (+ skip where legal): 6^6 * 7^10."""
    check_network_options(
        "mobilenetv2", base_width=base_width, in_channels=in_channels, num_classes=num_classes
    )
    # Which blocks may skip comes from the width-1.0 layout, so the width option never
    # changes which archs exist (rounding at tiny widths can make in == out elsewhere).
    choices = [
        Choice(f"b{b}.op", (*OPS, SKIP) if skippable(*layout) else OPS)
        for b, layout in enumerate(block_layout(STEM_CHANNELS))
    ]
    return MobileNetV2Space(
        "mobilenetv2",
        choices,
        description="MobileNetV2's 16 inverted-residual blocks (CIFAR layout), each an MBConv "
        "with kernel {3,5,7} x expansion {3,6}, or skip where stride 1 and in == out",
        options={
            "base_width": base_width,
            "in_channels": in_channels,
            "num_classes": num_classes,
        },
    )
