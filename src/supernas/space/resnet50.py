"""A space far too large to enumerate: ResNet-50's 49 convs, each picking kernel and channels.

Why it exists: the sizes users meet in the literature (10^20 for once-for-all, about 10^77 in
talks about ResNet-50-like spaces) make "train and compare every network" absurd on sight.
Here every conv of a ResNet-50-depth network (the stem conv and the 3 convs of each of its
16 bottleneck blocks, stages of 3, 4, 6, 3 blocks) picks a kernel {3, 5, 7} and an output
width {16, 32, 64, ..., 1024}: 21 options per conv, 21^49 (about 5.6 x 10^64) networks,
exact as a Python int (`size`). Sampling, mutation, neighbours and evolution work as on
any space; exhaustive search refuses it and names the size.

There is no weight-sharing supernet (its largest network alone would hold billions of
weights); `build_network` builds any one arch, so params/FLOPs constraints, zero-cost
proxies and standalone training work.
"""

from __future__ import annotations

import re

from supernas.errors import SupernasError
from supernas.space.core import Arch, Choice, Scalar, SearchSpace, check_network_options
from supernas.space.registry import register_space

KERNELS = (3, 5, 7)
CHANNELS = (16, 32, 64, 128, 256, 512, 1024)
#: Bottleneck blocks per stage (ResNet-50) and the stride of each stage's first block.
STAGES = (3, 4, 6, 3)
STAGE_STRIDES = (1, 2, 2, 2)
#: The stem plus 3 convs per block.
NUM_CONVS = 1 + 3 * sum(STAGES)

_TOKEN = re.compile(r"^k(\d+)c(\d+)$")


def conv_names() -> list[str]:
    """'stem', then 's{stage}b{block}.{a,b,c}' for the three convs of each bottleneck."""
    names = ["stem"]
    for s, n in enumerate(STAGES):
        for b in range(n):
            names += [f"s{s}b{b}.{part}" for part in "abc"]
    return names


class ResNet50Space(SearchSpace):
    """Arch string: one 'k{kernel}c{channels}' token per conv, stem first, joined by '-'."""

    def format(self, values: tuple[Scalar, ...]) -> str:
        return "-".join(f"k{values[2 * i]}c{values[2 * i + 1]}" for i in range(len(values) // 2))

    def parse(self, text: str) -> Arch:
        tokens = text.strip().split("-")
        if len(tokens) != NUM_CONVS:
            raise SupernasError(
                f"arch string of {len(tokens)} tokens; resnet50 needs {NUM_CONVS} "
                f"'k<kernel>c<channels>' tokens (stem first) joined by '-'"
            )
        values: list[Scalar] = []
        for i, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m:
                raise SupernasError(f"conv {i} token {tok!r} is not 'k<kernel>c<channels>'")
            values.append(self.choices[2 * i].from_text(m.group(1)))
            values.append(self.choices[2 * i + 1].from_text(m.group(2)))
        return Arch(self.name, tuple(values))


@register_space("resnet50")
def resnet50(in_channels: int = 3, num_classes: int = 10, max_channels: int = 1024) -> SearchSpace:
    """ResNet-50 depth, every conv: kernel {3,5,7} x channels {16..1024}: 21^49 networks.

    `max_channels` caps the widths (16, 32, ... up to it) for small data or quick tests.
    """
    check_network_options(
        "resnet50", in_channels=in_channels, num_classes=num_classes, max_channels=max_channels
    )
    widths = tuple(c for c in CHANNELS if c <= max_channels)
    if len(widths) < 2 or max_channels not in CHANNELS:
        raise SupernasError(
            f"resnet50: max_channels must be one of {', '.join(map(str, CHANNELS[1:]))}, "
            f"got {max_channels}"
        )
    choices = []
    for name in conv_names():
        choices.append(Choice(f"{name}.kernel", KERNELS))
        choices.append(Choice(f"{name}.channels", widths))
    return ResNet50Space(
        "resnet50",
        choices,
        description="ResNet-50's stem and 16 bottlenecks (3,4,6,3), every conv choosing kernel "
        "{3,5,7} x output channels {16,...,1024}",
        options={
            "in_channels": in_channels,
            "num_classes": num_classes,
            "max_channels": max_channels,
        },
    )
