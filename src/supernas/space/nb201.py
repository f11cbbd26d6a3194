"""The NAS-Bench-201 cell: 4 nodes, 6 edges, 5 ops per edge (15,625 cells).

Arch strings are exactly NB201's: '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', edge into node i
from node j written 'op~j', nodes separated by '+'.
"""

from __future__ import annotations

from supernas.errors import SupernasError
from supernas.space.core import Arch, Choice, Scalar, SearchSpace, check_network_options
from supernas.space.registry import register_space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to_node, from_node) for the 6 edges, in NB201 string order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class NB201Space(SearchSpace):
    def format(self, values: tuple[Scalar, ...]) -> str:
        nodes: list[list[str]] = [[] for _ in range(3)]
        for (to, frm), op in zip(EDGES, values, strict=True):
            nodes[to - 1].append(f"{op}~{frm}")
        return "+".join("|" + "|".join(n) + "|" for n in nodes)

    def parse(self, text: str) -> Arch:
        text = text.strip()
        hint = f"NB201 format, e.g. {self.example()!r}"
        nodes = text.split("+")
        if len(nodes) != 3:
            raise SupernasError(f"arch string {text!r} is not in the {hint}")
        values: list[Scalar] = []
        for i, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise SupernasError(f"arch string {text!r}: node {i} {node!r} must be '|...|'")
            edges = node[1:-1].split("|")
            if len(edges) != i:
                raise SupernasError(
                    f"arch string {text!r}: node {i} needs {i} edges, got {len(edges)}"
                )
            for j, edge in enumerate(edges):
                op, sep, frm = edge.partition("~")
                if not sep or frm != str(j):
                    raise SupernasError(
                        f"arch string {text!r}: edge {edge!r} into node {i} must be 'op~{j}'"
                    )
                values.append(self.choices[len(values)].from_text(op))
        return Arch(self.name, tuple(values))


@register_space("nb201")
def nb201(C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3) -> SearchSpace:
    """NAS-Bench-201 cell: 6 edges x {none, skip, conv1x1, conv3x3, avgpool3x3}."""
    check_network_options("nb201", C=C, N=N, num_classes=num_classes, in_channels=in_channels)
    choices = [Choice(f"{to}<-{frm}", OPS) for to, frm in EDGES]
    return NB201Space(
        "nb201",
        choices,
        description="NAS-Bench-201 cell (4 nodes, 6 edges, 5 ops) in the NB201 macro skeleton",
        options={"C": C, "N": N, "num_classes": num_classes, "in_channels": in_channels},
    )
