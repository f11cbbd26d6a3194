"""NAS-Bench-1Shot1's search spaces 1, 2, 3 (Zela et al. 2020): restrictions of nb101.

The one-shot encoding, as 1Shot1's ConfigSpace: per intermediate node ("choice block") an
op and a set of parents of fixed size among the earlier nodes, and a parent set of the
output. Every encoding is a valid NB101 cell (each node has a parent, <= 9 edges), and
`to_nb101` maps it there (pruned and canonical): several encodings can be one cell.

| space | parents of nodes 1..k | output | encodings | size (1Shot1's count) |
|---|---|---|---|---|
| nb101_s1 | 1, 2, 2, 2    | 2 | 180 x 3^4 = 14,580     | 6,240 |
| nb101_s2 | 1, 1, 2, 2    | 3 | 360 x 3^4 = 29,160     | 16,632 (paper: 29,160) |
| nb101_s3 | 1, 1, 1, 2, 2 | 2 | 5,400 x 3^5 = 1,312,200 | 363,648 |

`size` is 1Shot1's count: per parent configuration, 3^(intermediate nodes that have an
outgoing edge), i.e. a node that feeds nothing has no op to choose. It reproduces the
paper's 6,240 and 363,648; for space 2 it gives 16,632, while the paper's 29,160 is that
space's number of encodings (see docs/nb101.md).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator

from supernas.errors import SupernasError
from supernas.space.core import Arch, Choice, SearchSpace, check_network_options
from supernas.space.nb101 import NODES, OPS, get_nb101
from supernas.space.registry import register_space

#: Parent counts of nodes 1..k and then of the output, per 1Shot1 search space.
PARENTS: dict[int, tuple[int, ...]] = {
    1: (1, 2, 2, 2, 2),
    2: (1, 1, 2, 2, 3),
    3: (1, 1, 1, 2, 2, 2),
}


def parent_sets(node: int, k: int) -> tuple[str, ...]:
    """Options of a node's parents, as text: '0', '0+1', ... (combinations of earlier nodes)."""
    return tuple("+".join(map(str, c)) for c in itertools.combinations(range(node), k))


@functools.cache
def oneshot_count(parents: tuple[int, ...]) -> int:
    """1Shot1's count: sum over parent configurations of 3^(inner nodes with an out-edge)."""
    n = len(parents) + 1
    options = [list(itertools.combinations(range(v), k)) for v, k in enumerate(parents, 1)]
    total = 0
    for config in itertools.product(*options):
        feeding = {p for ps in config for p in ps if p}
        total += len(OPS) ** len(feeding & set(range(1, n - 1)))
    return total


class OneShotSpace(SearchSpace):
    """A 1Shot1 space: per node '<node>_in' (parent set) and '<node>_op'; output 'out_in'."""

    def __init__(self, number: int, **kwargs: object) -> None:
        self.parents = PARENTS[number]
        self.inner = len(self.parents) - 1
        choices = []
        for v, k in enumerate(self.parents[:-1], 1):
            choices += [Choice(f"n{v}_in", parent_sets(v, k)), Choice(f"n{v}_op", OPS)]
        choices.append(Choice("out_in", parent_sets(self.inner + 1, self.parents[-1])))
        super().__init__(f"nb101_s{number}", choices, **kwargs)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        """1Shot1's count of the space (see the module docstring), not the encodings."""
        return oneshot_count(self.parents)

    @property
    def n_encodings(self) -> int:
        """Distinct encodings (Arch values): what `enumerate` yields."""
        return math.prod(len(c.options) for c in self.choices)

    def enumerate(self, limit: int | None = None) -> Iterator[Arch]:
        """Every encoding; the limit applies to their number, which `size` does not give."""
        limit = self.max_enumerate if limit is None else limit
        if self.n_encodings > limit:
            raise SupernasError(
                f"space {self.name!r} has {self.n_encodings:,} encodings, above the "
                f"enumeration limit {limit:,}; use sampling or a search strategy instead"
            )
        return super().enumerate(self.n_encodings)

    def to_nb101(self, arch: Arch) -> Arch:
        """The NB101 cell of an encoding: intermediate node v at v, the output at node 6."""
        d = self.as_dict(self.validate(arch))
        matrix = [[0] * NODES for _ in range(NODES)]
        ops = [OPS[0]] * (NODES - 2)
        for v in range(1, self.inner + 1):
            for p in str(d[f"n{v}_in"]).split("+"):
                matrix[int(p)][v] = 1
            ops[v - 1] = str(d[f"n{v}_op"])
        for p in str(d["out_in"]).split("+"):
            matrix[int(p)][NODES - 1] = 1
        nb = get_nb101(self.options)
        return nb.from_spec(matrix, ["input", *ops, "output"])


def _factory(number: int) -> None:
    name = f"nb101_s{number}"

    @register_space(name)
    def make(
        C: int = 16, num_cells: int = 3, num_classes: int = 10, in_channels: int = 3
    ) -> SearchSpace:
        check_network_options(
            name, C=C, num_cells=num_cells, num_classes=num_classes, in_channels=in_channels
        )
        get_nb101({"C": C})  # the same checks as nb101's (C >= 5)
        return OneShotSpace(
            number,
            description=f"NAS-Bench-1Shot1 search space {number} (one-shot encoding of nb101)",
            options={
                "C": C,
                "num_cells": num_cells,
                "num_classes": num_classes,
                "in_channels": in_channels,
            },
        )

    make.__doc__ = f"NAS-Bench-1Shot1 search space {number}: parents per node {PARENTS[number]}."


for _number in PARENTS:
    _factory(_number)
