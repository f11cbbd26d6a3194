"""GHN (Zhang et al., ICLR 2019) with GHN-2's ideas (Knyazev et al., NeurIPS 2021).

An arch is turned into its computational graph (`graph.trace_graph`); a gated graph network
passes messages over it (GRU cell, a forward traversal in run order, then a backward one,
plus GHN-2's virtual edges between nodes a few hops apart); a decoder turns each node's
state into that node's parameters. The decoder emits one fixed-size block per node, factorised
(out x rank, in x rank, rank x 7 x 7), tiled over channels and centre-cropped to the kernel,
then normalised to the init scale (GHN-2's normalised decoding). So one hypernet of fixed
size serves every arch of every space, whatever its widths and depth.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from supernas.hyper.base import HyperSupernet
from supernas.hyper.graph import levels, shortest_paths, trace_graph
from supernas.hyper.params import ParamSpec, scale
from supernas.space import Arch, SearchSpace

KERNEL = 7  # the largest kernel a block holds; smaller kernels are its centre
TRACE_SIZE = 16  # image side of the graph trace (the wiring does not depend on it)


def mlp(h: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h))


def tile(block: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Repeat `block` (a, b, K, K) over channels and crop it to `shape` (GHN's tiling)."""
    if len(shape) == 4:
        o, i, kh, kw = shape
        top, left = (KERNEL - kh) // 2, (KERNEL - kw) // 2
        if kh > KERNEL or kw > KERNEL:
            block = block.repeat(1, 1, -(-kh // KERNEL), -(-kw // KERNEL))
            top = left = 0
        sub = block[:, :, top : top + kh, left : left + kw]
    else:  # a matrix (linear) or anything else flattened to one: the kernel's centre
        o, i = shape[0], math.prod(shape[1:])
        sub = block[:, :, KERNEL // 2, KERNEL // 2]
    a, b = sub.shape[:2]
    full = sub.repeat(-(-o // a), -(-i // b), *([1] * (sub.dim() - 2)))[:o, :i]
    return full.reshape(shape)


def vector(v: Tensor, n: int) -> Tensor:
    return v.repeat(-(-n // len(v)))[:n]


def standardise(t: Tensor) -> Tensor:
    """Zero mean, unit std: `scale` then sets the layer's init scale (normalised decoding)."""
    if t.numel() < 2:
        return t
    return (t - t.mean()) / (t.std() + 1e-5)


class GHN(HyperSupernet):
    """Gated graph hypernet: graph of the arch -> node states -> each node's parameters."""

    name = "ghn"
    defaults: ClassVar[dict[str, Any]] = {
        "hidden": 32,
        "block": 32,
        "rank": 8,
        "virtual": 3,
        "buckets": 256,
    }

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space, seed, **options)
        o = self.options
        h, a, r = o["hidden"], o["block"], o["rank"]
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.type_embed = nn.Embedding(o["buckets"], h)
            self.shape_embed = nn.Linear(4, h)
            self.message = mlp(h)
            self.virtual_message = mlp(h)
            self.gru = nn.GRUCell(h, h)
            self.decode = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, h), nn.ReLU())
            self.out_factor = nn.Linear(h, a * r)
            self.in_factor = nn.Linear(h, a * r)
            self.kernel = nn.Linear(h, r * KERNEL * KERNEL)
            self.vectors = nn.Linear(h, 2 * a)  # [norm scales | biases]

    # -- the graph of an arch ------------------------------------------------------------
    def _graph(self, space: SearchSpace, arch: Arch) -> dict[str, Any]:
        net = self.template(arch)
        size = int(space.options.get("image_size", TRACE_SIZE))
        nodes = trace_graph(net, (int(space.options.get("in_channels", 3)), size, size))
        preds = [n.preds for n in nodes]
        n = len(nodes)
        adj = torch.zeros(n, n)
        for v, ps in enumerate(preds):
            adj[v, list(ps)] = 1.0
        virt = torch.zeros(n, n)
        for (u, v), d in shortest_paths(preds, self.options["virtual"]).items():
            virt[v, u] = 1.0 / d
        succs: list[set[int]] = [set() for _ in nodes]
        for v, ps in enumerate(preds):
            for u in ps:
                succs[u].add(n - 1 - v)  # reversed numbering keeps preds first
        depth, height = levels(preds), levels(succs[::-1])[::-1]
        specs = {s.name: s for s in self.specs(arch)}
        owners = [(i, specs[p]) for i, node in enumerate(nodes) for p in node.params]
        buckets = self.options["buckets"]
        return {
            "types": torch.tensor([zlib.crc32(x.type.encode()) % buckets for x in nodes]),
            "shapes": torch.tensor([_shape_features(nodes[i].params, specs) for i in range(n)]),
            "adj": adj,
            "virt": virt,
            "forward": _groups(depth),
            "backward": _groups(height),
            "owners": owners,
        }

    def node_states(self, g: dict[str, Any]) -> Tensor:
        """Gated message passing: forward in run order, then backward."""
        dev = self.device
        h = self.type_embed(g["types"].to(dev)) + self.shape_embed(g["shapes"].to(dev))
        adj, virt = g["adj"].to(dev), g["virt"].to(dev)
        for a, v, order in ((adj, virt, g["forward"]), (adj.T, virt.T, g["backward"])):
            for idx in order:
                idx = idx.to(dev)
                m = a[idx] @ self.message(h) + v[idx] @ self.virtual_message(h)
                h = h.index_copy(0, idx, self.gru(m, h[idx]))
        return h

    def generate(self, arch: Arch) -> dict[str, Tensor]:
        g = self.cached("graph", arch, self._graph)
        h = self.decode(self.node_states(g))
        a, r = self.options["block"], self.options["rank"]
        rows = torch.tensor([i for i, _ in g["owners"]], device=h.device)
        hp = h[rows]
        u = self.out_factor(hp).view(-1, a, r)
        w = self.in_factor(hp).view(-1, a, r)
        k = self.kernel(hp).view(-1, r, KERNEL * KERNEL)
        vec = self.vectors(hp)
        out = {}
        for j, (_, spec) in enumerate(g["owners"]):
            out[spec.name] = scale(self._decode(spec, u[j], w[j], k[j], vec[j]), spec)
        return out

    def _decode(self, spec: ParamSpec, u: Tensor, w: Tensor, k: Tensor, vec: Tensor) -> Tensor:
        a = self.options["block"]
        if len(spec.shape) >= 2:
            block = torch.einsum("ar,br,rk->abk", u, w, k).view(a, a, KERNEL, KERNEL)
            return standardise(tile(block, spec.shape))
        if len(spec.shape) == 1:
            v = vec[a:] if spec.role == "bias" else vec[:a]
            return vector(v, spec.shape[0])
        return vec[0].reshape(spec.shape)


def _shape_features(params: list[str], specs: dict[str, ParamSpec]) -> list[float]:
    """log2 of the node's first parameter's (up to 4) dims; zeros for parameter-free ops."""
    if not params:
        return [0.0] * 4
    shape = specs[params[0]].shape[:4]
    return [math.log2(d + 1) for d in shape] + [0.0] * (4 - len(shape))


def _groups(depth: list[int]) -> list[Tensor]:
    """Node indices grouped by depth, shallow first: a group's inputs are all updated."""
    out: dict[int, list[int]] = {}
    for v, d in enumerate(depth):
        out.setdefault(d, []).append(v)
    return [torch.tensor(out[d]) for d in sorted(out)]
