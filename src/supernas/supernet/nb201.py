"""NAS-Bench-201 supernet: the NB201 macro skeleton with a 6-edge cell, 5 candidate ops per edge.

Layers follow the NB201 reference code (Dong & Yang 2020, xautodl `TinyNetwork`,
`InferCell`, `ResNetBasicblock`), so the all-conv3x3 network has NB201's 1,531,546
parameters. In the supernet each edge is a ModuleDict of all ops, keyed by op name; a
standalone network's edge holds only its chosen op.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from supernas.space import Arch, SearchSpace
from supernas.space.nb201 import EDGES, OPS
from supernas.supernet.base import Supernet, register_supernet


class ReLUConvBN(nn.Module):
    """ReLU - Conv (no bias) - BN(affine), as NB201's `ReLUConvBN` (same `op.*` state keys)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The 'none' op: zeros shaped, placed and typed like its input (x * 0, as NB201)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


OP_FACTORIES: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda C: Zero(),
    "skip_connect": lambda C: nn.Identity(),
    "nor_conv_1x1": lambda C: ReLUConvBN(C, C, 1, 1, 0),
    "nor_conv_3x3": lambda C: ReLUConvBN(C, C, 3, 1, 1),
    "avg_pool_3x3": lambda C: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
}
assert set(OP_FACTORIES) == set(OPS)

#: ModuleDict key of each edge, in space choice order: '1<-0', '2<-0', ...
EDGE_KEYS = tuple(f"{to}<-{frm}" for to, frm in EDGES)


class Cell(nn.Module):
    """node_i = sum_{j<i} op_{i<-j}(node_j); the output is node 3.

    `candidates[e]` lists the ops edge e holds: all of OPS in the supernet, one standalone.
    """

    def __init__(self, C: int, candidates: Sequence[Sequence[str]]) -> None:
        super().__init__()
        self.edges = nn.ModuleDict(
            {
                key: nn.ModuleDict({op: OP_FACTORIES[op](C) for op in ops})
                for key, ops in zip(EDGE_KEYS, candidates, strict=True)
            }
        )

    def forward(self, x: Tensor, ops: Sequence[str]) -> Tensor:
        nodes = [x]
        for to in range(1, 4):
            total: Tensor | None = None
            for e, (dst, frm) in enumerate(EDGES):
                if dst == to:
                    y = self.edges[EDGE_KEYS[e]][ops[e]](nodes[frm])
                    total = y if total is None else total + y
            assert total is not None
            nodes.append(total)
        return nodes[-1]


class ResNetBasicblock(nn.Module):
    """NB201's reduction block: downsample(x) + conv_b(conv_a(x)), stride 2."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2, 1)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(cin, cout, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def _build(net: nn.Module, space: SearchSpace, candidates: Sequence[Sequence[str]]) -> None:
    """Give `net` the NB201 skeleton: stem, 3 stages of N cells with 2 reductions, head."""
    C, N = space.options["C"], space.options["N"]
    net.stem = nn.Sequential(
        nn.Conv2d(space.options["in_channels"], C, 3, padding=1, bias=False), nn.BatchNorm2d(C)
    )
    cells: list[nn.Module] = []
    for stage, width in enumerate((C, 2 * C, 4 * C)):
        if stage:
            cells.append(ResNetBasicblock(width // 2, width))
        cells.extend(Cell(width, candidates) for _ in range(N))
    net.cells = nn.ModuleList(cells)
    net.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU(inplace=True))
    net.classifier = nn.Linear(4 * C, space.options["num_classes"])


def _forward(net: nn.Module, x: Tensor, ops: Sequence[str]) -> Tensor:
    x = net.stem(x)
    for cell in net.cells:
        x = cell(x, ops) if isinstance(cell, Cell) else cell(x)
    x = net.lastact(x)
    return net.classifier(x.mean((2, 3)))


class NB201Network(nn.Module):
    """One NB201 cell in the skeleton: `forward(x)` runs the fixed arch it was built for."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        self.arch = space.validate(arch)
        self.ops = tuple(str(op) for op in self.arch.values)
        _build(self, space, [[op] for op in self.ops])

    def forward(self, x: Tensor) -> Tensor:
        return _forward(self, x, self.ops)


@register_supernet("nb201")
class NB201Supernet(Supernet):
    """Every op on every edge of every cell; cells of one stage share nothing."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        _build(self, space, [c.options for c in space.choices])
        self._ops: dict[Arch, tuple[str, ...]] = {}

    def ops(self, arch: Arch) -> tuple[str, ...]:
        """The op of each edge, cached: validation stays off the training step."""
        ops = self._ops.get(arch) if isinstance(arch, Arch) else None
        if ops is None:
            arch = self.space.validate(arch)
            ops = tuple(str(op) for op in arch.values)
            if len(self._ops) >= 100_000:
                self._ops.clear()
            self._ops[arch] = ops
        return ops

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        return _forward(self, x, self.ops(arch))

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        return NB201Network(space, arch)
