"""ViT supernet: weight entanglement as in AutoFormer (Chen et al. 2021), simplified.

Every layer holds its q, k, v projections at the widest qkv width and its MLP at the
widest ratio; a smaller candidate uses their leading rows (and the output projections'
leading columns). The number of heads only reshapes the q/k/v width: head i of h uses
channels [i*d, (i+1)*d) with d = qkv/h, so it needs no weights of its own. A standalone
network is built from the same classes allocated at exactly its widths, so its tensors
are leading slices of the supernet's and the generic `Supernet.extract` applies.

Design: mean pooling over the patch tokens (no class token: with 4 to 64 tokens pooling
them all is simpler and needs no extra parameter), pre-norm layers, LayerNorm over the
fixed embed_dim (nothing to slice). The only BatchNorm is in the optional conv stem, which
every arch shares at full width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace
from supernas.supernet.base import Supernet, register_supernet

#: Per layer: (heads, qkv width, MLP hidden width).
LayerConfig = tuple[int, int, int]


class PatchEmbed(nn.Module):
    """Optional conv stem, non-overlapping patches (kernel = stride = patch), learned positions.

    The "conv" stem (conv3x3-BN-ReLU at full resolution before patchifying) gives the
    transformer the early convolutions that help it on small images and small data
    (Xiao et al. 2021; Hassani et al. 2021's CCT); "patch" is the plain ViT patchify.
    Positions are learned for the `grid` x `grid` patches of an `image_size` input and
    bilinearly interpolated for another grid (as DeiT does), so any input of at least one
    patch works while the parameter keeps a fixed shape.
    """

    def __init__(self, in_channels: int, dim: int, patch: int, grid: int, stem: str) -> None:
        super().__init__()
        self.stem: nn.Module = nn.Identity()
        if stem == "conv":
            mid = dim // 2
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, mid, 3, 1, 1, bias=False),
                nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True),
            )
            in_channels = mid
        self.proj = nn.Conv2d(in_channels, dim, patch, patch)
        self.grid = grid
        self.pos = nn.Parameter(torch.zeros(1, grid * grid, dim))

    def forward(self, x: Tensor) -> Tensor:
        p = self.proj.kernel_size[0]
        if x.shape[-1] < p or x.shape[-2] < p:
            raise SupernasError(
                f"vit: input {tuple(x.shape[-2:])} is smaller than one {p}x{p} patch; "
                "use a smaller patch_size"
            )
        y = self.proj(self.stem(x))
        h, w = y.shape[-2:]
        pos = self.pos
        if (h, w) != (self.grid, self.grid):
            grid = pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
            pos = grid.flatten(2).transpose(1, 2)
        return y.flatten(2).transpose(1, 2) + pos


class Layer(nn.Module):
    """Pre-norm transformer layer whose attention and MLP widths may be leading slices."""

    def __init__(self, dim: int, qkv: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, qkv)
        self.k = nn.Linear(dim, qkv)
        self.v = nn.Linear(dim, qkv)
        self.proj = nn.Linear(qkv, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # a module, so activation hooks can find it
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, heads: int, qkv: int, hidden: int) -> Tensor:
        h = self.norm1(x)
        if qkv == self.q.out_features:  # the full width: plain module calls, no slicing
            q, k, v = self.q(h), self.k(h), self.v(h)
        else:
            q, k, v = (_rows(lin, h, qkv) for lin in (self.q, self.k, self.v))
        b, n, _ = x.shape
        d = qkv // heads
        q, k, v = (t.reshape(b, n, heads, d).transpose(1, 2) for t in (q, k, v))
        att = ((q @ k.transpose(-2, -1)) * d**-0.5).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(b, n, qkv)
        x = x + (self.proj(o) if qkv == self.proj.in_features else _cols(self.proj, o, qkv))
        h = self.norm2(x)
        if hidden == self.fc1.out_features:
            return x + self.fc2(self.act(self.fc1(h)))
        return x + _cols(self.fc2, self.act(_rows(self.fc1, h, hidden)), hidden)


def _rows(lin: nn.Linear, x: Tensor, n: int) -> Tensor:
    """`lin` restricted to its first n outputs."""
    return F.linear(x, lin.weight[:n], None if lin.bias is None else lin.bias[:n])


def _cols(lin: nn.Linear, x: Tensor, n: int) -> Tensor:
    """`lin` restricted to its first n inputs (all outputs, full bias)."""
    return F.linear(x, lin.weight[:, :n], lin.bias)


def _build(net: nn.Module, space: SearchSpace, widths: Sequence[tuple[int, int]]) -> None:
    """Give `net` the layers both the supernet and a standalone network have."""
    o = space.options
    dim = o["embed_dim"]
    grid = o["image_size"] // o["patch_size"]
    net.embed = PatchEmbed(o["in_channels"], dim, o["patch_size"], grid, o["stem"])
    net.layers = nn.ModuleList(Layer(dim, qkv, hidden) for qkv, hidden in widths)
    net.norm = nn.LayerNorm(dim)
    net.head = nn.Linear(dim, o["num_classes"])
    nn.init.trunc_normal_(net.embed.pos, std=0.02)
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d) and m.bias is None:  # the stem conv, before a ReLU
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def _forward(net: nn.Module, x: Tensor, config: Sequence[LayerConfig]) -> Tensor:
    x = net.embed(x)
    for layer, (heads, qkv, hidden) in zip(net.layers, config, strict=True):
        x = layer(x, heads, qkv, hidden)
    return net.head(net.norm(x).mean(1))


def _config(space: SearchSpace, arch: Arch) -> tuple[LayerConfig, ...]:
    v, dim = arch.values, space.options["embed_dim"]
    return tuple(
        (int(v[3 * i]), round(float(v[3 * i + 1]) * dim), round(float(v[3 * i + 2]) * dim))
        for i in range(len(v) // 3)
    )


class ViTNetwork(nn.Module):
    """One ViT arch on its own: `forward(x)` runs the fixed arch it was built for."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        self.arch = space.validate(arch)
        self.config = _config(space, self.arch)
        _build(self, space, [(qkv, hidden) for _, qkv, hidden in self.config])

    def forward(self, x: Tensor) -> Tensor:
        return _forward(self, x, self.config)


@register_supernet("vit")
class ViTSupernet(Supernet):
    """Every layer at its widest qkv width and MLP ratio; candidates are leading slices."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        dim = space.options["embed_dim"]
        widths = [
            (
                max(round(float(r) * dim) for r in space.choices[3 * i + 1].options),
                max(round(float(r) * dim) for r in space.choices[3 * i + 2].options),
            )
            for i in range(len(space.choices) // 3)
        ]
        _build(self, space, widths)

    def config(self, arch: Arch) -> tuple[LayerConfig, ...]:
        """Per-layer (heads, qkv, hidden), cached: validation stays off the training step."""
        return self.cached_config(arch, _config)

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        return _forward(self, x, self.config(arch))

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        return ViTNetwork(space, arch)
