"""The NAS-Bench-101 cell (Ying et al. 2019): a DAG of up to 7 nodes and 9 edges.

An arch holds 21 edge bits (the upper triangle of a 7 x 7 matrix, node 0 the input, node
6 the output) and one op per intermediate node 1..5. `arch()`/`validate` canonicalise, as
NB101 does before it hashes: nodes off every input->output path are pruned, then the cell
is relabelled to the smallest (matrix, ops) over all orders of its intermediate nodes (an
exact isomorphism canonical form). The pruned cell sits at nodes 0..n-2 and 6; unused
nodes have no edges and op OPS[0]. So isomorphic cells are one Arch: equal and hash-equal.

String form: the pruned matrix rows and the intermediate ops, e.g.
'0110,0001,0001,0000|conv3x3-bn-relu,maxpool3x3'. `parse` accepts any valid matrix of 2..7
nodes (pruned or not) and canonicalises it.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterator, Sequence

import numpy as np

from supernas.errors import SupernasError
from supernas.space.core import (
    Arch,
    Choice,
    RngLike,
    Scalar,
    SearchSpace,
    as_rng,
    check_network_options,
)
from supernas.space.registry import register_space

OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
NODES = 7
MAX_EDGES = 9
#: (from, to) of the 21 upper-triangular edges, row-major: the first 21 arch values.
EDGES = tuple((i, j) for i in range(NODES) for j in range(i + 1, NODES))
#: Unique valid cells in NB101 (Ying et al. 2019, table 1): published, not computed here.
NB101_CELLS = 423_624

Matrix = tuple[tuple[int, ...], ...]
Cell = tuple[Matrix, tuple[str, ...]]  # (n x n matrix, n-2 intermediate ops)


def prune(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> Cell | None:
    """Keep the nodes on an input->output path (NB101's ModelSpec._prune); None if none."""
    n = len(matrix)
    fwd = {0}
    for j in range(1, n):
        if any(matrix[i][j] and i in fwd for i in range(j)):
            fwd.add(j)
    bwd = {n - 1}
    for i in range(n - 2, -1, -1):
        if any(matrix[i][j] and j in bwd for j in range(i + 1, n)):
            bwd.add(i)
    keep = sorted(fwd & bwd)
    if n - 1 not in fwd:
        return None
    m = tuple(tuple(int(bool(matrix[i][j])) for j in keep) for i in keep)
    return m, tuple(ops[k - 1] for k in keep[1:-1])


@functools.lru_cache(maxsize=200_000)
def canonical(matrix: Matrix, ops: tuple[str, ...]) -> Cell:
    """The smallest (matrix bits, op indices) over every topological relabelling.

    Why exhaustive: at most 5! = 120 orders of the intermediate nodes, and it is exact
    (NB101's own hash is an invariant, not a canonical form).
    """
    n = len(matrix)
    edges = [(i, j) for i in range(n) for j in range(n) if matrix[i][j]]
    best: tuple | None = None
    for perm in itertools.permutations(range(1, n - 1)):
        pos = {0: 0, n - 1: n - 1} | {old: new for new, old in enumerate(perm, 1)}
        if any(pos[i] >= pos[j] for i, j in edges):
            continue
        bits = [[0] * n for _ in range(n)]
        for i, j in edges:
            bits[pos[i]][pos[j]] = 1
        new_ops = [""] * (n - 2)
        for old in range(1, n - 1):
            new_ops[pos[old] - 1] = ops[old - 1]
        key = (tuple(map(tuple, bits)), tuple(OPS.index(o) for o in new_ops))
        if best is None or key < best:
            best = key
    assert best is not None  # the identity order is always topological
    return best[0], tuple(OPS[i] for i in best[1])


def hash_module(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> str:
    """NB101's graph hash (nasbench/lib/graph_util.py): iterated md5 of degree + op labels.

    `ops` are the intermediate ops of a pruned cell; equal for isomorphic cells, and the
    key of the official data set's records.
    """
    m = np.asarray(matrix, dtype=np.int64)
    n = len(m)
    labels = [-1, *(OPS.index(o) for o in ops), -2]
    ins, outs = m.sum(0).tolist(), m.sum(1).tolist()
    hashes = [hashlib.md5(str(h).encode()).hexdigest() for h in zip(outs, ins, labels, strict=True)]
    for _ in range(n):
        hashes = [
            hashlib.md5(
                (
                    "".join(sorted(hashes[w] for w in range(n) if m[w, v]))
                    + "|"
                    + "".join(sorted(hashes[w] for w in range(n) if m[v, w]))
                    + "|"
                    + hashes[v]
                ).encode()
            ).hexdigest()
            for v in range(n)
        ]
    return hashlib.md5(str(sorted(hashes)).encode()).hexdigest()


def cell_of(values: Sequence[Scalar]) -> Cell | None:
    """The pruned, canonical cell of 26 raw values; None when input and output are apart."""
    m = [[0] * NODES for _ in range(NODES)]
    for (i, j), bit in zip(EDGES, values[: len(EDGES)], strict=True):
        m[i][j] = int(bit)
    pruned = prune(m, [str(v) for v in values[len(EDGES) :]])
    return None if pruned is None else canonical(*pruned)


def embed(cell: Cell) -> tuple[Scalar, ...]:
    """A cell's 26 values: nodes 0..n-2 stay, the output moves to node 6, the rest unused."""
    matrix, ops = cell
    n = len(matrix)
    where = [*range(n - 1), NODES - 1]
    bits = {(where[i], where[j]) for i in range(n) for j in range(n) if matrix[i][j]}
    return (
        *(int((i, j) in bits) for i, j in EDGES),
        *ops,
        *(OPS[0] for _ in range(NODES - 2 - len(ops))),
    )


class NB101Space(SearchSpace):
    """NB101 cells as canonical archs; see the module docstring."""

    @property
    def size(self) -> int:
        """NB101's published count of unique valid cells (not enumerated: too slow)."""
        return NB101_CELLS

    def cell(self, arch: Arch) -> Cell:
        """The pruned (matrix, intermediate ops) of `arch`."""
        cell = cell_of(self.validate(arch).values)
        assert cell is not None
        return cell

    def to_nb101(self, arch: Arch) -> Arch:
        return self.validate(arch)

    def from_spec(self, matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> Arch:
        """An arch from an NB101 ModelSpec-like (matrix, ops with 'input'/'output' ends)."""
        m = np.asarray(matrix)
        n = len(m)
        if m.shape != (n, n) or not 2 <= n <= NODES:
            raise SupernasError(f"nb101: the matrix must be square with 2..7 rows, got {m.shape}")
        if len(ops) != n:
            raise SupernasError(f"nb101: {n} nodes need {n} ops, got {len(ops)}")
        if ops[0] != "input" or ops[-1] != "output":
            raise SupernasError(f"nb101: ops must start with 'input' and end with 'output': {ops}")
        return self._from_matrix(m, list(ops[1:-1]))

    def module_hash(self, arch: Arch) -> str:
        """NB101's hash of the arch's cell: the key of the official data set."""
        return hash_module(*self.cell(arch))

    def _from_matrix(self, m: np.ndarray, ops: Sequence[str]) -> Arch:
        n = len(m)
        if np.any(np.tril(m)):
            raise SupernasError("nb101: the adjacency matrix must be upper triangular")
        if not np.isin(m, (0, 1)).all():
            raise SupernasError("nb101: adjacency entries must be 0 or 1")
        if len(ops) != n - 2:
            raise SupernasError(f"nb101: {n} nodes need {n - 2} intermediate ops, got {len(ops)}")
        where = [*range(n - 1), NODES - 1]
        bits = {(where[i], where[j]) for i in range(n) for j in range(n) if m[i][j]}
        values = [int((i, j) in bits) for i, j in EDGES]
        return self.arch([*values, *ops, *(OPS[0] for _ in range(NODES - n))])

    def arch(self, values: Sequence[Scalar] | dict[str, Scalar]) -> Arch:
        """A validated, canonical Arch: pruned, relabelled; invalid graphs are refused."""
        raw = super().arch(values).values
        cell = cell_of(raw)
        if cell is None:
            raise SupernasError("nb101: invalid cell: no path from the input to the output")
        edges = sum(map(sum, cell[0]))
        if edges > MAX_EDGES:
            raise SupernasError(f"nb101: invalid cell: {edges} edges after pruning, at most 9")
        return Arch(self.name, embed(cell))

    def __contains__(self, arch: object) -> bool:
        if not super().__contains__(arch):
            return False
        try:
            return self.arch(arch.values) == arch  # type: ignore[union-attr]
        except SupernasError:
            return False

    def format(self, values: tuple[Scalar, ...]) -> str:
        cell = cell_of(values) if len(values) == len(self.choices) else None
        if cell is None:  # not a valid cell: the raw values, so the error shows them
            return "-".join(str(v) for v in values)
        matrix, ops = cell
        return ",".join("".join(map(str, row)) for row in matrix) + "|" + ",".join(ops)

    def parse(self, text: str) -> Arch:
        text = text.strip()
        rows, sep, ops = text.partition("|")
        hint = f"nb101 form 'rows|ops', e.g. {self.example()!r}"
        if not sep or "|" in ops:
            raise SupernasError(f"arch string {text!r} is not in the {hint}")
        bits = rows.split(",")
        if any(len(r) != len(bits) or set(r) - {"0", "1"} for r in bits):
            raise SupernasError(
                f"arch string {text!r}: the matrix must be {len(bits)} rows of {len(bits)} 0/1"
            )
        names = [o for o in ops.split(",") if o]
        for o in names:
            if o not in OPS:
                raise SupernasError(f"arch string {text!r}: unknown op {o!r}; ops: {OPS}")
        if not 2 <= len(bits) <= NODES:
            raise SupernasError(f"arch string {text!r}: a cell has 2..7 nodes")
        return self._from_matrix(np.array([[int(c) for c in r] for r in bits]), names)

    def example(self) -> str:
        return "0110,0001,0001,0000|conv3x3-bn-relu,maxpool3x3"

    def sample(self, seed_or_rng: RngLike) -> Arch:
        """NB101's random cell: uniform bits and ops, redrawn until the cell is valid."""
        rng = as_rng(seed_or_rng)
        while True:
            raw = [c.options[int(rng.integers(len(c.options)))] for c in self.choices]
            try:
                return self.arch(raw)
            except SupernasError:
                continue

    def mutate(self, arch: Arch, seed_or_rng: RngLike) -> Arch:
        """A uniformly drawn neighbour (so a move always exists and is always valid)."""
        rng = as_rng(seed_or_rng)
        nbrs = self.neighbors(arch)
        return nbrs[int(rng.integers(len(nbrs)))]

    def neighbors(self, arch: Arch) -> list[Arch]:
        """The distinct valid cells one edge bit or op away (canonicalised).

        Only the bare cell input->output has none (a new node needs two edges); its
        neighbours are then the cells with one new node (two edges and its op).
        """
        arch = self.validate(arch)
        out: dict[Arch, None] = {}
        for k, c in enumerate(self.choices):
            for o in c.options:
                if o != arch.values[k]:
                    self._add_move(out, arch, [*arch.values[:k], o, *arch.values[k + 1 :]])
        if not out:
            for k1, k2 in itertools.combinations(range(len(self.choices)), 2):
                for o1 in self.choices[k1].options:
                    for o2 in self.choices[k2].options:
                        for op in OPS:  # ... and the new node's op
                            raw = [*arch.values[: len(EDGES)], *[op] * (NODES - 2)]
                            raw[k1], raw[k2] = o1, o2
                            self._add_move(out, arch, raw)
        return list(out)

    def _add_move(self, out: dict[Arch, None], arch: Arch, raw: list[Scalar]) -> None:
        try:
            new = self.arch(raw)
        except SupernasError:
            return
        if new != arch:
            out[new] = None

    def enumerate(self, limit: int | None = None) -> Iterator[Arch]:
        raise SupernasError(
            f"space {self.name!r}: enumerating its {NB101_CELLS:,} cells needs a graph "
            "enumeration supernas does not do; use sampling or a search strategy instead"
        )


@register_space("nb101")
def nb101(
    C: int = 16, num_cells: int = 3, num_classes: int = 10, in_channels: int = 3
) -> SearchSpace:
    """NAS-Bench-101 cell: <= 7 nodes, <= 9 edges, ops conv3x3/conv1x1/maxpool3x3."""
    check_network_options(
        "nb101", C=C, num_cells=num_cells, num_classes=num_classes, in_channels=in_channels
    )
    if C < NODES - 2:
        raise SupernasError("nb101: C must be at least 5 (the output splits C over <= 5 nodes)")
    choices = [Choice(f"{i}->{j}", (0, 1)) for i, j in EDGES]
    choices += [Choice(f"op{t}", OPS) for t in range(1, NODES - 1)]
    return NB101Space(
        "nb101",
        choices,
        description="NAS-Bench-101 cell (<= 7 nodes, <= 9 edges, 3 ops), 423,624 unique cells",
        options={
            "C": C,
            "num_cells": num_cells,
            "num_classes": num_classes,
            "in_channels": in_channels,
        },
    )


def get_nb101(options: dict[str, object]) -> NB101Space:
    """The nb101 space with the network options of another (a 1Shot1 space's), cached."""
    return _nb101_of(tuple(sorted(options.items())))


@functools.lru_cache(maxsize=64)
def _nb101_of(options: tuple[tuple[str, object], ...]) -> NB101Space:
    space = nb101(**dict(options))  # type: ignore[arg-type]
    assert isinstance(space, NB101Space)
    return space
