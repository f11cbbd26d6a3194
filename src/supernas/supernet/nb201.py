"""NAS-Bench-201 supernet: the NB201 macro skeleton with a 6-edge cell, 5 candidate ops per edge.

Layers follow the NB201 reference code (Dong & Yang 2020, xautodl `TinyNetwork`,
`InferCell`, `ResNetBasicblock`), so the all-conv3x3 network has NB201's 1,531,546
parameters. In the supernet each edge is a ModuleDict of all ops, keyed by op name; a
standalone network's edge holds only its chosen op.

`forward_mixed` also runs PC-DARTS' cell (Xu et al. 2020): with `partial=K` only the first
C/K channels of an edge's input go through its ops (the conv ops use the leading C/K x C/K
block of their weights and the leading C/K entries of their BN, as sliced widths share
weights elsewhere in supernas), the rest bypass them, and a channel shuffle mixes the two
groups before the next edge; `edge_weights` scale each edge's output (edge normalization).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace
from supernas.space.nb201 import EDGES, OPS
from supernas.supernet.base import Supernet, mix, register_supernet


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

    def forward_narrow(self, x: Tensor) -> Tensor:
        """The op on an input of c <= C channels, with the leading c x c block of its weights.

        Why: PC-DARTS runs each edge's ops on C/K channels only; slicing the full op (rather
        than owning C/K-wide copies) keeps one set of weights, so the supernet stays the
        same module for every trainer and `extract` still copies whole tensors.
        """
        relu, conv, bn = self.op
        c = x.shape[1]
        if c == conv.in_channels:
            return self.op(x)
        h = F.conv2d(relu(x), conv.weight[:c, :c], None, conv.stride, conv.padding)
        return _narrow_bn(bn, h)


def _narrow_bn(bn: nn.BatchNorm2d, x: Tensor) -> Tensor:
    """`bn` applied to c <= num_features channels, with (and updating) its first c entries.

    Mirrors nn.BatchNorm2d's forward: running stats update in place through the slices,
    momentum=None gives the cumulative average that BN recalibration uses.
    """
    c = x.shape[1]
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:
            factor = 1.0 / float(bn.num_batches_tracked)
    batch_stats = bn.training or bn.running_mean is None
    keep = not bn.training or bn.track_running_stats
    mean = bn.running_mean[:c] if keep and bn.running_mean is not None else None
    var = bn.running_var[:c] if keep and bn.running_var is not None else None
    weight = bn.weight[:c] if bn.weight is not None else None
    bias = bn.bias[:c] if bn.bias is not None else None
    return F.batch_norm(x, mean, var, weight, bias, batch_stats, factor, bn.eps)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave `groups` equal channel groups: output channel r * groups + g is input
    channel g * (C / groups) + r (ShuffleNet's shuffle, as PC-DARTS uses it).

    Why: after a partial edge, the C/K processed channels sit in front; the shuffle spreads
    them so the next edge's first C/K channels are a different sample of the node.
    """
    return x.unflatten(1, (groups, x.shape[1] // groups)).transpose(1, 2).flatten(1, 2)


def _run_op(op: nn.Module, x: Tensor) -> Tensor:
    """op(x) on x's channel count: a conv op slices its weights, the others need nothing."""
    return op.forward_narrow(x) if isinstance(op, ReLUConvBN) else op(x)


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

    def mixed_edge(
        self,
        e: int,
        h: Tensor,
        names: Sequence[str],
        weights: Tensor,
        zeros: Sequence[bool],
        partial: int = 1,
    ) -> Tensor | None:
        """Edge e's mixed op on its input node h: sum_j weights[j] * op_j(h).

        With partial=K > 1 (PC-DARTS), only h's first C/K channels go through the ops; the
        other channels bypass them unchanged, and the concatenation [mixed, bypass] is
        channel-shuffled in K groups. Returns None (or a 0-dim tensor) when no op ran and
        nothing bypasses, as `mix`.
        """
        edge = self.edges[EDGE_KEYS[e]]
        part = h if partial == 1 else h[:, : h.shape[1] // partial]
        run = edge_op_runner(edge, names, part, narrow=partial != 1)
        y = mix(weights, zeros, run)
        if partial == 1:
            return y
        if y is None or y.dim() == 0:  # no op ran: the processed channels are zeros
            zero = part.mul(0.0)
            y = zero if y is None else y + zero
        return channel_shuffle(torch.cat([y, h[:, part.shape[1] :]], 1), partial)

    def forward_mixed(
        self,
        x: Tensor,
        ops: Sequence[Sequence[str]],
        weights: Sequence[Tensor],
        zeros: Sequence[Sequence[bool]],
        *,
        partial: int = 1,
        edge_weights: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """As `forward`, each edge the weighted sum of its ops ('none' adds nothing).

        `partial` and `edge_weights` are PC-DARTS' (see `mixed_edge`); `edge_weights[e]`
        (a scalar) multiplies edge e's whole output, bypassed channels included.
        """
        nodes = [x]
        for to in range(1, 4):
            total: Tensor | None = None
            for e, (dst, frm) in enumerate(EDGES):
                if dst != to:
                    continue
                y = self.mixed_edge(e, nodes[frm], ops[e], weights[e], zeros[e], partial)
                if y is not None and edge_weights is not None:
                    y = edge_weights[e] * y
                if y is not None:
                    total = y if total is None else total + y
            if total is None or total.dim() == 0:  # no op ran: zeros, as the Zero op makes
                zero = nodes[0].mul(0.0)
                total = zero if total is None else total + zero
            nodes.append(total)
        return nodes[-1]


def edge_op_runner(
    edge: nn.ModuleDict, names: Sequence[str], h: Tensor, *, narrow: bool
) -> Callable[[int], Tensor | None]:
    """`compute(j)` for `mix`: op j of the edge on h ('none' is identically zero: None)."""

    def compute(j: int) -> Tensor | None:
        if names[j] == "none":
            return None
        op = edge[names[j]]
        return _run_op(op, h) if narrow else op(h)

    return compute


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

    def forward_mixed(
        self,
        x: Tensor,
        weights: Sequence[Tensor],
        *,
        partial: int = 1,
        edge_weights: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Per edge, sum_j weights[e][j] * op_j(node): the DARTS/GDAS cell of NB201.

        Every cell uses the same weights (NB201's search cells share one alpha, as
        xautodl's DARTS/GDAS). 'none' is identically zero, so it is never computed.
        PC-DARTS: `partial=K` sends only 1/K of each edge's channels through its ops (the
        rest bypass, then a channel shuffle); `edge_weights` (one scalar per edge, in
        choice order) multiply each edge's output. The defaults give the plain cell.
        """
        zeros = self.mixed_zeros(weights)
        C = int(self.space.options["C"])
        if not isinstance(partial, int) or partial < 1 or C % partial:
            raise SupernasError(
                f"forward_mixed: partial must be a positive integer dividing C={C} (every "
                f"cell's width is a multiple of C), got {partial!r}"
            )
        if edge_weights is not None:
            if len(edge_weights) != len(EDGES) or any(w.numel() != 1 for w in edge_weights):
                raise SupernasError(
                    f"forward_mixed: edge_weights needs {len(EDGES)} scalars (one per edge), "
                    f"got shapes {[tuple(w.shape) for w in edge_weights]}"
                )
            edge_weights = [w.reshape(()) for w in edge_weights]
        ops = [c.options for c in self.space.choices]
        x = self.stem(x)
        for cell in self.cells:
            if isinstance(cell, Cell):
                x = cell.forward_mixed(
                    x, ops, weights, zeros, partial=partial, edge_weights=edge_weights
                )
            else:
                x = cell(x)
        x = self.lastact(x)
        return self.classifier(x.mean((2, 3)))

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        return NB201Network(space, arch)
