"""Mixed-precision quantization space (SPOS, Guo et al. 2020, section 4.3): a fixed ResNet-18
backbone whose 8 basic blocks each choose a weight and an activation bit width.

Why a fixed backbone: the search is then about precision alone, so the all-32-bit arch is
the float network and every other arch is that network quantized, which is the comparison
mixed-precision search is judged by. 32 bits means float: no quantization at all.
"""

from __future__ import annotations

import re

from supernas.errors import SupernasError
from supernas.space.core import Arch, Choice, Scalar, SearchSpace, check_network_options
from supernas.space.registry import register_space
from supernas.space.resnet18 import BLOCK_MULTIPLIERS, STEMS

#: Bit widths of a block's conv weights and of its convs' input activations; 32 = float.
BITS = (2, 4, 8, 32)
FLOAT_BITS = 32
QUANT_SPACE = "resnet18_quant"

_TOKEN = re.compile(r"^w(\d+)a(\d+)$")


class QuantSpace(SearchSpace):
    """Arch string: one 'w{weight bits}a{activation bits}' token per block joined by '-'."""

    def format(self, values: tuple[Scalar, ...]) -> str:
        return "-".join(f"w{values[2 * b]}a{values[2 * b + 1]}" for b in range(len(values) // 2))

    def parse(self, text: str) -> Arch:
        tokens = text.strip().split("-")
        nblocks = len(self.choices) // 2
        if len(tokens) != nblocks:
            raise SupernasError(
                f"arch string {text!r} has {len(tokens)} blocks; {self.name} needs {nblocks} "
                f"'w<bits>a<bits>' tokens joined by '-', e.g. {self.example()!r}"
            )
        values: list[Scalar] = []
        for b, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m:
                raise SupernasError(
                    f"arch string {text!r}: block {b} token {tok!r} is not 'w<bits>a<bits>'"
                )
            values.append(self.choices[2 * b].from_text(m.group(1)))
            values.append(self.choices[2 * b + 1].from_text(m.group(2)))
        return Arch(self.name, tuple(values))


@register_space(QUANT_SPACE)
def resnet18_quant(
    base_width: int = 64, in_channels: int = 3, num_classes: int = 10, stem: str = "small"
) -> SearchSpace:
    """ResNet-18 (3x3 blocks) x per-block weight bits x activation bits in {2,4,8,32}: 4^16.

    The stem conv and the classifier stay float, as usual in quantization work (PACT, SPOS).
    """
    check_network_options(
        QUANT_SPACE, base_width=base_width, in_channels=in_channels, num_classes=num_classes
    )
    if stem not in STEMS:
        raise SupernasError(f"{QUANT_SPACE}: unknown stem {stem!r}; valid: {', '.join(STEMS)}")
    choices = []
    for b in range(len(BLOCK_MULTIPLIERS)):
        choices.append(Choice(f"b{b}.w_bits", BITS))
        choices.append(Choice(f"b{b}.a_bits", BITS))
    return QuantSpace(
        QUANT_SPACE,
        choices,
        description="ResNet-18's 8 basic blocks (3x3), each with weight bits x activation "
        "bits in {2,4,8,32} (32 = float): mixed-precision quantization",
        options={
            "base_width": base_width,
            "in_channels": in_channels,
            "num_classes": num_classes,
            "stem": stem,
        },
    )
