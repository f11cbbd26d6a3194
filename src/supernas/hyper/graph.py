"""The computational graph of any standalone network, found by running it once.

Why trace instead of describing each space: a GHN must see every arch of every registered
space as a graph, and the network's own forward is the one place that knows the wiring.
Nodes are the network's leaf modules (and any module holding parameters of its own) in the
order they run, plus an input node; an edge u -> v means v's input was computed from u's
output, through any functional ops between them (sums, concatenations, reshapes). Tensors
are tagged with the nodes they come from by a `TorchFunctionMode`, so no space needs to be
fx-traceable. The trace runs on a batch of two small zero images.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten


@dataclass
class Node:
    """One op: its module name ('' for the input), type text and its parameters' names."""

    module: str
    type: str
    params: list[str] = field(default_factory=list)
    preds: set[int] = field(default_factory=set)


def op_type(mod: nn.Module) -> str:
    """A module's type, with the kernel size for convs (a 3x3 and a 5x5 conv differ)."""
    name = type(mod).__name__
    k = getattr(mod, "kernel_size", None)
    if isinstance(k, tuple):
        name += "x".join(map(str, k))
    if getattr(mod, "groups", 1) > 1:
        name += "dw"
    return name


class _Provenance(TorchFunctionMode):
    """Tags every tensor a torch function returns with the nodes its inputs came from."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[int, set[int]] = {}
        self.alive: list[Tensor] = []  # keeps tagged tensors alive, so ids are not reused

    def sources(self, obj: Any) -> set[int]:
        out: set[int] = set()
        for t in tree_flatten(obj)[0]:
            if isinstance(t, Tensor):
                out |= self.tags.get(id(t), set())
        return out

    def tag(self, obj: Any, nodes: set[int]) -> None:
        for t in tree_flatten(obj)[0]:
            if isinstance(t, Tensor):
                self.tags[id(t)] = set(nodes)
                self.alive.append(t)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        src = self.sources((args, kwargs))
        if src:
            self.tag(out, src)
        return out


def trace_graph(net: nn.Module, input_shape: tuple[int, ...]) -> list[Node]:
    """Nodes (input first, then leaf modules in run order) with their predecessors.

    Modules whose parameters the forward never used come last, without edges, so every
    parameter still belongs to a node.
    """
    nodes = [Node("", "input")]
    mode = _Provenance()
    hooks = []

    def pre(name: str, mod: nn.Module):
        def hook(m: nn.Module, args: tuple) -> None:
            params = [f"{name}.{p}" for p, _ in m.named_parameters(recurse=False)]
            nodes.append(Node(name, op_type(m), params, mode.sources(args)))

        return hook

    def post(m: nn.Module, args: tuple, out: Any) -> None:
        mode.tag(out, {len(nodes) - 1})

    for name, mod in net.named_modules():
        leaf = not any(True for _ in mod.children())
        if name and (leaf or any(True for _ in mod.parameters(recurse=False))):
            hooks.append(mod.register_forward_pre_hook(pre(name, mod)))
            hooks.append(mod.register_forward_hook(post))
    was_training = net.training
    try:
        net.eval()
        x = torch.zeros(2, *input_shape, device=next(net.parameters()).device)
        with mode:
            mode.tag(x, {0})
            net(x)
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    seen = {n.module for n in nodes}
    for name, mod in net.named_modules():  # parameters the forward never used: lone nodes
        params = [f"{name}.{p}" for p, _ in mod.named_parameters(recurse=False)]
        if params and name not in seen:
            nodes.append(Node(name, op_type(mod), params))
    return nodes


def shortest_paths(preds: list[set[int]], limit: int) -> dict[tuple[int, int], int]:
    """(u, v) -> hops along edges from u to v, for 2 <= hops <= limit: GHN-2's virtual edges.

    Why: messages along real edges need many steps to cross a deep network; a virtual edge
    lets nodes a few hops apart exchange information directly (Knyazev et al. 2021).
    """
    succs: list[list[int]] = [[] for _ in preds]
    for v, ps in enumerate(preds):
        for u in ps:
            succs[u].append(v)
    out = {}
    for u in range(len(preds)):
        seen, queue = {u: 0}, deque([u])
        while queue:
            a = queue.popleft()
            if seen[a] == limit:
                continue
            for b in succs[a]:
                if b not in seen:
                    seen[b] = seen[a] + 1
                    queue.append(b)
        out.update({(u, v): d for v, d in seen.items() if d >= 2})
    return out


def levels(preds: list[set[int]]) -> list[int]:
    """Longest-path depth of every node (nodes are in run order, so preds come first)."""
    depth = [0] * len(preds)
    for v, ps in enumerate(preds):
        depth[v] = max((depth[u] + 1 for u in ps), default=0)
    return depth
