"""A small vision transformer on patches of small images: per layer heads, qkv width, MLP ratio.

The search follows AutoFormer (Chen et al. 2021), simplified: the embedding width is fixed
by the `embed_dim` option, and each of the `depth` layers picks its number of attention
heads, its q/k/v width (a ratio of `embed_dim`) and its MLP ratio.
"""

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

HEADS = (1, 2, 4)
#: q/k/v width of a layer as a fraction of embed_dim (split evenly over its heads).
QKV_RATIOS = (0.5, 1.0)
MLP_RATIOS = (1.0, 2.0, 4.0)
STEMS = ("conv", "patch")

_TOKEN = re.compile(r"^h(\d+)q([0-9.]+)m([0-9.]+)$")


class ViTSpace(SearchSpace):
    """Arch string: one 'h{heads}q{qkv ratio}m{mlp ratio}' token per layer joined by '-'.

    E.g. 'h2q0.5m4-h4q1m2-h1q1m1-h4q0.5m4' for depth 4.
    """

    def format(self, values: tuple[Scalar, ...]) -> str:
        return "-".join(
            f"h{format_option(values[3 * i])}q{format_option(values[3 * i + 1])}"
            f"m{format_option(values[3 * i + 2])}"
            for i in range(len(values) // 3)
        )

    def parse(self, text: str) -> Arch:
        tokens = text.strip().split("-")
        depth = len(self.choices) // 3
        if len(tokens) != depth:
            raise SupernasError(
                f"arch string {text!r} has {len(tokens)} layers; this vit space has depth "
                f"{depth}: 'h<heads>q<qkv ratio>m<mlp ratio>' tokens joined by '-', "
                f"e.g. {self.example()!r}"
            )
        values: list[Scalar] = []
        for i, tok in enumerate(tokens):
            m = _TOKEN.match(tok)
            if not m:
                raise SupernasError(
                    f"arch string {text!r}: layer {i} token {tok!r} is not "
                    "'h<heads>q<qkv ratio>m<mlp ratio>'"
                )
            for j in range(3):
                values.append(self.choices[3 * i + j].from_text(m.group(j + 1)))
        return Arch(self.name, tuple(values))


@register_space("vit")
def vit(
    embed_dim: int = 32,
    depth: int = 4,
    patch_size: int = 4,
    image_size: int = 32,
    in_channels: int = 3,
    num_classes: int = 10,
    stem: str = "conv",
) -> SearchSpace:
    """`depth` transformer layers x heads {1,2,4} x qkv {x0.5,x1} x MLP {x1,x2,x4}: 18^depth.

    `embed_dim` is the width option (a multiple of 8, so that every qkv width splits evenly
    over every head count). Position embeddings are learned for an `image_size` input cut
    into `patch_size` patches and interpolated for other sizes; inputs need at least one
    patch (8x8 digits with the default patch 4 give 4 tokens). Unlike resnet18's options,
    `depth` sets how many choices the space has, so archs of one depth are not valid in
    another (validation says so). `stem` "conv" puts a conv3x3-BN-ReLU (embed_dim/2
    channels) before the patchify conv, which helps on small images; "patch" is plain ViT.
    """
    check_network_options(
        "vit",
        embed_dim=embed_dim,
        depth=depth,
        patch_size=patch_size,
        image_size=image_size,
        in_channels=in_channels,
        num_classes=num_classes,
    )
    if embed_dim % 8:
        raise SupernasError(
            f"vit: embed_dim must be a multiple of 8 (qkv widths x0.5 split over up to 4 "
            f"heads), got {embed_dim}"
        )
    if stem not in STEMS:
        raise SupernasError(f"vit: unknown stem {stem!r}; valid: {', '.join(STEMS)}")
    if image_size % patch_size:
        raise SupernasError(
            f"vit: image_size {image_size} is not a multiple of patch_size {patch_size}"
        )
    choices = []
    for i in range(depth):
        choices.append(Choice(f"l{i}.heads", HEADS))
        choices.append(Choice(f"l{i}.qkv", QKV_RATIOS))
        choices.append(Choice(f"l{i}.mlp", MLP_RATIOS))
    return ViTSpace(
        "vit",
        choices,
        description=f"ViT of {depth} layers on {patch_size}x{patch_size} patches, each with "
        "heads {1,2,4} x qkv width {x0.5,x1} x MLP ratio {1,2,4} of embed_dim",
        options={
            "embed_dim": embed_dim,
            "depth": depth,
            "patch_size": patch_size,
            "image_size": image_size,
            "in_channels": in_channels,
            "num_classes": num_classes,
            "stem": stem,
        },
    )
