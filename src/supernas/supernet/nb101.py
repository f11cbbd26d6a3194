"""NAS-Bench-101 supernet: NB101's skeleton, every op at every node, NB101's channel split.

Layers follow NB101's model_builder (Ying et al. 2019): stem conv3x3-bn-relu (C), 3 stacks
of `num_cells` cells with a 2x2 max pool and channel doubling between stacks, global
average pool, linear. In a cell of C_out channels the output concatenates the nodes that
feed it, so their widths split C_out (`vertex_channels`, as NB101's
`compute_vertex_channels`); a node's input is the sum of its intermediate parents,
truncated to its width, and of a conv1x1-bn-relu projection of the cell input; an
input->output edge adds a projection to C_out.

Weight sharing (NAS-Bench-1Shot1 style, single path): per cell and node position, one
projection and all three ops at full width C_out; an arch uses the leading c x c block of
each conv and the leading c entries of each BN, so `extract` stays a slice copy. Node
positions are those of the canonical arch (`space.nb101`), which is why isomorphic cells
share weights. A 1Shot1 space runs the nb101 cell its encoding maps to.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernas.space import Arch, SearchSpace
from supernas.space.nb101 import EDGES, NODES, OPS
from supernas.supernet.base import Supernet, register_supernet
from supernas.supernet.resnet18 import SlicedBatchNorm2d

OUT = NODES - 1
#: (7 x 7 matrix, op per node or None when unused, width per node) of one cell.
Plan = tuple[tuple[tuple[int, ...], ...], tuple[str | None, ...], tuple[int, ...]]


class ConvBNReLU(nn.Module):
    """conv (no bias) - BN - ReLU that can run on the leading block of its weights."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bn = SlicedBatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor, cout: int | None = None) -> Tensor:
        w = self.conv.weight
        if cout is not None and (cout, x.shape[1]) != tuple(w.shape[:2]):
            w = w[:cout, : x.shape[1]]
        return self.relu(self.bn(F.conv2d(x, w, None, 1, self.conv.padding)))


def make_op(op: str, width: int) -> nn.Module:
    if op == "maxpool3x3":
        return nn.MaxPool2d(3, 1, 1)
    return ConvBNReLU(width, width, 3 if op.startswith("conv3x3") else 1)


def vertex_channels(matrix: Sequence[Sequence[int]], cout: int) -> list[int]:
    """NB101's compute_vertex_channels on a pruned n x n matrix (input width left 0)."""
    n = len(matrix)
    ch = [0] * n
    ch[-1] = cout
    if n == 2:
        return ch
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    base, extra = divmod(cout, len(feeding))
    for k, v in enumerate(feeding):
        ch[v] = base + (1 if k < extra else 0)
    for v in range(n - 3, 0, -1):
        if not matrix[v][n - 1]:
            ch[v] = max(ch[d] for d in range(v + 1, n - 1) if matrix[v][d])
    return ch


def cell_plan(space: SearchSpace, arch: Arch, cout: int) -> Plan:
    """The plan of `arch`'s cell at width cout, on the 7 node positions of nb101 archs."""
    nb = space.to_nb101(arch)  # type: ignore[attr-defined]
    matrix7 = [[0] * NODES for _ in range(NODES)]
    for (i, j), bit in zip(EDGES, nb.values[: len(EDGES)], strict=True):
        matrix7[i][j] = int(bit)
    ops7: list[str | None] = [None] * NODES
    used = [v for v in range(1, OUT) if any(matrix7[v]) or any(r[v] for r in matrix7)]
    for v in used:
        ops7[v] = str(nb.values[len(EDGES) + v - 1])
    nodes = [0, *used, OUT]
    pruned = [[matrix7[i][j] for j in nodes] for i in nodes]
    width = [0] * NODES
    for k, c in zip(nodes, vertex_channels(pruned, cout), strict=True):
        width[k] = c
    return tuple(map(tuple, matrix7)), tuple(ops7), tuple(width)


class Cell(nn.Module):
    """One NB101 cell. `plan` None: the supernet cell (all ops, full widths)."""

    def __init__(self, cin: int, cout: int, plan: Plan | None) -> None:
        super().__init__()
        self.cout = cout
        proj, ops = {}, {}
        for v in range(1, NODES):
            if plan is None or plan[0][0][v]:
                width = cout if plan is None or v == OUT else plan[2][v]
                proj[str(v)] = ConvBNReLU(cin, width, 1)
            if v < OUT and (plan is None or plan[1][v] is not None):
                names = OPS if plan is None else (plan[1][v],)
                width = cout if plan is None else plan[2][v]
                ops[str(v)] = nn.ModuleDict({o: make_op(o, width) for o in names})
        self.proj = nn.ModuleDict(proj)
        self.ops = nn.ModuleDict(ops)

    def forward(self, x: Tensor, plan: Plan) -> Tensor:
        matrix, op_of, width = plan
        nodes: dict[int, Tensor] = {}
        concat = []
        for v in range(1, OUT):
            op = op_of[v]
            if op is None:
                continue
            parts = [nodes[s][:, : width[v]] for s in range(1, v) if matrix[s][v]]
            if matrix[0][v]:
                parts.append(self.proj[str(v)](x, width[v]))
            h = parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
            module = self.ops[str(v)][op]
            nodes[v] = module(h, width[v]) if isinstance(module, ConvBNReLU) else module(h)
            if matrix[v][OUT]:
                concat.append(nodes[v])
        out = torch.cat(concat, 1) if concat else None
        if matrix[0][OUT]:
            p = self.proj[str(OUT)](x, self.cout)
            out = p if out is None else out + p
        assert out is not None  # a valid cell reaches the output
        return out


def _build(net: nn.Module, space: SearchSpace, arch: Arch | None) -> None:
    """Stem, 3 stacks of num_cells cells (widths C, 2C, 4C), classifier."""
    C, n = int(space.options["C"]), int(space.options["num_cells"])
    net.stem = ConvBNReLU(int(space.options["in_channels"]), C, 3)
    cells, cin = [], C
    for stack in range(3):
        cout = C * 2**stack
        for _ in range(n):
            plan = None if arch is None else cell_plan(space, arch, cout)
            cells.append(Cell(cin, cout, plan))
            cin = cout
    net.cells = nn.ModuleList(cells)
    net.classifier = nn.Linear(4 * C, int(space.options["num_classes"]))


def plans(space: SearchSpace, arch: Arch) -> tuple[Plan, ...]:
    """One plan per cell (widths differ per stack)."""
    return tuple(cell_plan(space, arch, cell_width(space, i)) for i in range(n_cells(space)))


def n_cells(space: SearchSpace) -> int:
    return 3 * int(space.options["num_cells"])


def cell_width(space: SearchSpace, i: int) -> int:
    return int(space.options["C"]) * 2 ** (i // int(space.options["num_cells"]))


def _forward(net: nn.Module, x: Tensor, cell_plans: Sequence[Plan]) -> Tensor:
    x = net.stem(x)
    n = len(net.cells) // 3
    for i, (cell, plan) in enumerate(zip(net.cells, cell_plans, strict=True)):
        if i and i % n == 0:
            x = F.max_pool2d(x, 2, 2)
        x = cell(x, plan)
    return net.classifier(x.mean((2, 3)))


class NB101Network(nn.Module):
    """One NB101 cell in the skeleton: `forward(x)` runs the fixed arch it was built for."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        self.arch = space.validate(arch)
        _build(self, space, self.arch)
        self.plans = plans(space, self.arch)

    def forward(self, x: Tensor) -> Tensor:
        return _forward(self, x, self.plans)


class NB101Supernet(Supernet):
    """Every op and projection at every node position of every cell; cells share nothing."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space)
        _build(self, space, None)

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        return _forward(self, x, self.cached_config(arch, plans))

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        return NB101Network(space, arch)


for _name in ("nb101", "nb101_s1", "nb101_s2", "nb101_s3"):
    register_supernet(_name)(NB101Supernet)
