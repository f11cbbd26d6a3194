"""SMASH (Brock et al., ICLR 2018): one generator maps (arch code, layer, chunk) to weights.

Design: the arch code is one one-hot per choice (`arch_code`). Every parameter tensor of the
sampled network is cut into fixed-size chunks; each chunk is generated from the arch code,
an embedding of its layer (the parameter's name hashed into a table, plus its shape and
role) and its position inside the tensor. So the hypernet's size does not grow with the
largest layer, and any arch of the space (any set of layers) can be generated.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from supernas.hyper.base import HyperSupernet
from supernas.hyper.params import ParamSpec, scale
from supernas.space import Arch, SearchSpace

ROLES = ("weight", "norm", "bias", "other")


def arch_code(space: SearchSpace, arch: Arch) -> Tensor:
    """One one-hot vector per choice, concatenated (sum of option counts entries)."""
    parts = []
    for choice, value in zip(space.choices, arch.values, strict=True):
        onehot = torch.zeros(len(choice.options))
        onehot[choice.index(value)] = 1.0
        parts.append(onehot)
    return torch.cat(parts)


def name_bucket(name: str, buckets: int) -> int:
    """A stable hash (same in every process, unlike hash()) of a parameter name."""
    return zlib.crc32(name.encode()) % buckets


def shape_features(spec: ParamSpec) -> list[float]:
    """log2 of the (up to 4) dims plus the role one-hot: what a layer looks like."""
    dims = [math.log2(d + 1) for d in spec.shape[:4]] + [0.0] * (4 - len(spec.shape[:4]))
    return dims + [float(spec.role == r) for r in ROLES]


def position_features(n: int, k: int = 8) -> Tensor:
    """Sinusoidal features of chunk positions 0..n-1 (any tensor length, no table)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(1e4) * torch.arange(k // 2) / (k // 2))[None]
    return torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], 1)


class SMASH(HyperSupernet):
    """Chunked MLP hypernet conditioned on the one-hot arch code."""

    name = "smash"
    defaults: ClassVar[dict[str, Any]] = {"hidden": 64, "chunk": 1024, "buckets": 512}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        h, chunk, buckets = self.options["hidden"], self.options["chunk"], self.options["buckets"]
        code_dim = sum(len(c.options) for c in space.choices)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.code = nn.Sequential(nn.Linear(code_dim, h), nn.ReLU(), nn.Linear(h, h))
            self.layer = nn.Embedding(buckets, h)
            self.shape = nn.Linear(4 + len(ROLES), h)
            self.pos = nn.Linear(8, h)
            self.body = nn.Sequential(nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.LayerNorm(h))
            self.head = nn.Linear(h, chunk)
            nn.init.normal_(self.head.weight, std=1.0 / math.sqrt(h))
            nn.init.zeros_(self.head.bias)

    def _plan(self, space: SearchSpace, arch: Arch) -> dict[str, Any]:
        """Per-arch inputs of the generator, computed once: one row per chunk."""
        specs = self.specs(arch)
        chunk, buckets = self.options["chunk"], self.options["buckets"]
        counts = [-(-s.numel // chunk) for s in specs]
        rows = torch.tensor(counts)
        buckets_of = torch.tensor([name_bucket(s.name, buckets) for s in specs])
        shapes = torch.tensor([shape_features(s) for s in specs])
        return {
            "specs": specs,
            "counts": counts,
            "code": arch_code(space, arch),
            "bucket": torch.repeat_interleave(buckets_of, rows),
            "shape": torch.repeat_interleave(shapes, rows, 0),
            "pos": torch.cat([position_features(c) for c in counts]),
        }

    def generate(self, arch: Arch) -> dict[str, Tensor]:
        plan = self.cached("plan", arch, self._plan)
        dev = self.device
        code = self.code(plan["code"].to(dev))
        z = (
            code[None]
            + self.layer(plan["bucket"].to(dev))
            + self.shape(plan["shape"].to(dev))
            + self.pos(plan["pos"].to(dev))
        )
        flat = self.head(self.body(z)).reshape(-1)
        out, start = {}, 0
        chunk = self.options["chunk"]
        for spec, n in zip(plan["specs"], plan["counts"], strict=True):
            raw = flat[start : start + spec.numel].reshape(spec.shape)
            out[spec.name] = scale(raw, spec)
            start += n * chunk
        return out
