"""Cut a network into timeable ops, and find which choices decide the op at each position.

How a network is cut into ops, generically: walk the module tree from the root and take
the outermost modules that are not containers (`TRANSPARENT`: ModuleList, ModuleDict and
NB201's Cell, whose own work is only additions). Forward pre-hooks on those modules record
each call's input shape and non-tensor arguments. An op's key is (module type, input
shape, hash of its config = its repr plus those arguments), so equal ops at different
places share one entry. ResNet-18 becomes stem, 8 basic blocks (kernel, inner width,
in/out channels, stride, resolution), fc; NB201 becomes stem, each cell edge's op (op, C,
resolution), the 2 reduction blocks, last BN-ReLU, classifier.

How every arch is covered without sampling: the i-th op called ("position i") is a
function of a few choices. Changing one choice at a time from a base arch shows which;
enumerating those choices' options gives every op any arch can have at that position.
Archs map to keys by pure lookups, so `predict` costs microseconds.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.space import SearchSpace
from supernas.supernet import build_network
from supernas.supernet.nb201 import Cell

#: Modules whose own cost is negligible: the LUT looks through them at their children.
TRANSPARENT: tuple[type[nn.Module], ...] = (nn.ModuleList, nn.ModuleDict, Cell)
#: A position may depend on choices with at most this many option combinations.
MAX_COMBOS = 4096


@dataclass
class OpCall:
    """One call of an op module inside a network's forward."""

    key: str
    name: str
    module: nn.Module
    input_shape: tuple[int, ...]
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    desc: str


class Bound(nn.Module):
    """An op with its non-tensor arguments fixed, so it runs (and exports) as `forward(x)`."""

    def __init__(self, op: OpCall) -> None:
        super().__init__()
        self.op = op.module
        self.args = op.args
        self.kwargs = dict(op.kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x, *self.args, **self.kwargs)


def op_modules(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The outermost non-container modules of `net` (qualified name, module)."""
    out: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            qual = f"{prefix}.{name}" if prefix else name
            if isinstance(child, TRANSPARENT):
                visit(qual, child)
            else:
                out.append((qual, child))

    visit("", net)
    return out


def _describe(module: nn.Module, args: tuple, kwargs: tuple) -> str:
    text = " ".join(repr(module).split())
    extra = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs)])
    return f"{text} ({extra})" if extra else text


def decompose(net: nn.Module, input_shape: Sequence[int]) -> list[OpCall]:
    """The op calls of one batch-1 forward of `net`, in call order."""
    calls: list[OpCall] = []

    def hook(name: str) -> Callable[..., None]:
        def record(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if not args or not isinstance(args[0], Tensor) or args[0].shape[0] != 1:
                raise SupernasError(f"op {name}: first argument must be a batch-1 tensor")
            rest = args[1:]
            kw = tuple(sorted(kwargs.items()))
            if any(isinstance(a, Tensor) for a in [*rest, *dict(kw).values()]):
                raise SupernasError(f"op {name} takes several tensors; the LUT needs one")
            shape = tuple(int(d) for d in args[0].shape[1:])
            desc = _describe(module, rest, kw)
            digest = hashlib.sha1(desc.encode()).hexdigest()[:10]
            key = f"{type(module).__name__}[{'x'.join(map(str, shape))}]#{digest}"
            calls.append(OpCall(key, name, module, shape, rest, kw, desc))

        return record

    mods = op_modules(net)
    if not mods:
        raise SupernasError(f"{type(net).__name__} has no op modules to time")
    handles = [m.register_forward_pre_hook(hook(n), with_kwargs=True) for n, m in mods]
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            net(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return calls


@dataclass
class Position:
    """The op at one call position: a table from the option indices of `deps` to op keys."""

    deps: tuple[int, ...]
    keys: dict[tuple[int, ...], str]

    def to_json(self) -> dict[str, Any]:
        return {"deps": list(self.deps), "keys": [[list(c), k] for c, k in self.keys.items()]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Position:
        return cls(tuple(obj["deps"]), {tuple(c): k for c, k in obj["keys"]})


class Explorer:
    """Builds archs by option indices and caches their op keys (not their networks)."""

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...]) -> None:
        self.space = space
        self.input_shape = input_shape
        self.base = (0,) * len(space.choices)
        self.cache: dict[tuple[int, ...], list[str]] = {}
        self.ops: dict[str, OpCall] = {}  # first call seen of each distinct key

    def keys(self, indices: tuple[int, ...]) -> list[str]:
        got = self.cache.get(indices)
        if got is None:
            net = build_network(self.space, self.space.decode(indices))
            calls = decompose(net, self.input_shape)
            for c in calls:
                self.ops.setdefault(c.key, c)
            got = self.cache[indices] = [c.key for c in calls]
        return got

    def with_values(self, deps: Sequence[int], combo: Sequence[int]) -> tuple[int, ...]:
        idx = list(self.base)
        for d, v in zip(deps, combo, strict=True):
            idx[d] = v
        return tuple(idx)

    def fixed_keys(self, indices: tuple[int, ...]) -> list[str]:
        """keys(indices), refusing archs whose number of ops differs from the base arch's."""
        got, base = self.keys(indices), self.keys(self.base)
        if len(got) != len(base):
            raise SupernasError(
                f"space {self.space.name!r}: the number of ops changes with the arch "
                f"({len(base)} vs {len(got)}); a per-op LUT needs a fixed op sequence"
            )
        return got

    def positions(self) -> list[Position]:
        base = self.keys(self.base)
        deps: list[set[int]] = [set() for _ in base]
        for i, choice in enumerate(self.space.choices):
            for j in range(1, len(choice.options)):
                got = self.fixed_keys(self.with_values([i], [j]))
                for p, (a, b) in enumerate(zip(base, got, strict=True)):
                    if a != b:
                        deps[p].add(i)
        out = []
        for p, dep in enumerate(deps):
            d = tuple(sorted(dep))
            sizes = [len(self.space.choices[i].options) for i in d]
            if math.prod(sizes) > MAX_COMBOS:
                raise SupernasError(f"op {p} depends on too many choices ({len(d)}) for a LUT")
            table = {
                combo: self.fixed_keys(self.with_values(d, combo))[p]
                for combo in itertools.product(*map(range, sizes))
            }
            out.append(Position(d, table))
        return out
