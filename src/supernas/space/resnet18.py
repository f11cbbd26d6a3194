"""The seed space: ResNet-18's 8 basic blocks, each choosing its kernel and its inner width."""

from __future__ import annotations

import re

from supernas.errors import SupernasError
from supernas.space.core import (
    Arch,
    Choice,
    Scalar,
    SearchSpace,
    check_network_options,
    format_option,
)
from supernas.space.registry import register_space

KERNELS = (3, 5, 7)
WIDTHS = (0.5, 1.0, 2.0)
#: Output channels of the 8 blocks in units of base_width (ResNet-18: 64,64,128,...,512).
BLOCK_MULTIPLIERS = (1, 1, 2, 2, 4, 4, 8, 8)
BLOCK_STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)
STEMS = ("small", "imagenet")
#: How the supernet shares weights between options (see supernet/resnet18.py); the first is
#: the default and, being the historical behaviour, is left out of `options`.
SHARINGS = ("kernel", "independent", "nested")

_TOKEN = re.compile(r"^k(\d+)w([0-9.]+)$")


class ResNet18Space(SearchSpace):
    """Arch string: one 'k{kernel}w{width}' token per block joined by '-': 'k3w1-k5w0.5-...'."""

    def format(self, values: tuple[Scalar, ...]) -> str:
        return "-".join(
            f"k{format_option(values[2 * b])}w{format_option(values[2 * b + 1])}"
            for b in range(len(values) // 2)
        )

    def parse(self, text: str) -> Arch:
        tokens = text.strip().split("-")
        nblocks = len(self.choices) // 2
        if len(tokens) != nblocks:
            raise SupernasError(
                f"arch string {text!r} has {len(tokens)} blocks; resnet18 needs {nblocks} "
                f"'k<kernel>w<width>' tokens joined by '-', e.g. {self.example()!r}"
            )
        values: list[Scalar] = []
        for b, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m:
                raise SupernasError(
                    f"arch string {text!r}: block {b} token {tok!r} is not 'k<kernel>w<width>'"
                )
            values.append(self.choices[2 * b].from_text(m.group(1)))
            values.append(self.choices[2 * b + 1].from_text(m.group(2)))
        return Arch(self.name, tuple(values))


@register_space("resnet18")
def resnet18(
    base_width: int = 64,
    in_channels: int = 3,
    num_classes: int = 10,
    stem: str = "small",
    sharing: str = "kernel",
) -> SearchSpace:
    """ResNet-18 blocks x kernel {3,5,7} x inner width {x0.5,x1,x2}: 9^8 networks.

    `sharing` (kernel, independent, nested) is how the supernet shares weights between the
    options (supernet/resnet18.py); it never changes the archs or the standalone networks.
    """
    check_network_options(
        "resnet18", base_width=base_width, in_channels=in_channels, num_classes=num_classes
    )
    if stem not in STEMS:
        raise SupernasError(f"resnet18: unknown stem {stem!r}; valid: {', '.join(STEMS)}")
    if sharing not in SHARINGS:
        raise SupernasError(f"resnet18: unknown sharing {sharing!r}; valid: {', '.join(SHARINGS)}")
    choices = []
    for b in range(len(BLOCK_MULTIPLIERS)):
        choices.append(Choice(f"b{b}.kernel", KERNELS))
        choices.append(Choice(f"b{b}.width", WIDTHS))
    return ResNet18Space(
        "resnet18",
        choices,
        description="ResNet-18's 8 basic blocks, each with kernel {3,5,7} x inner width "
        "{x0.5,x1,x2} of the block's width",
        options={
            "base_width": base_width,
            "in_channels": in_channels,
            "num_classes": num_classes,
            "stem": stem,
            # Only a non-default mode is recorded, so the checkpoints, LUTs and result files
            # written before this option existed still match a default space exactly.
            **({"sharing": sharing} if sharing != SHARINGS[0] else {}),
        },
    )
