"""Per-op latency lookup table: predict an arch's latency as the sum of its ops' latencies.

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

What the ops miss (functional glue such as residual and cell additions, global pooling,
per-call dispatch counted once per op) is the same for every arch of a space, because the
positions are fixed; one constant `overhead_ms`, the median of (measured - sum of ops) over
a few calibration archs, absorbs it. It may be negative (e.g. ONNX Runtime runs a whole
graph with less per-op overhead than separate sessions).
"""

from __future__ import annotations

import hashlib
import itertools
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.hardware.latency import check_backend, make_runner, measure_interleaved
from supernas.io import read_json, write_json
from supernas.space import Arch, SearchSpace, as_rng, get_space
from supernas.supernet import build_network
from supernas.supernet.nb201 import Cell

FORMAT = "supernas-latency-lut/1"
#: Modules whose own cost is negligible: the LUT looks through them at their children.
TRANSPARENT: tuple[type[nn.Module], ...] = (nn.ModuleList, nn.ModuleDict, Cell)
#: A position may depend on choices with at most this many option combinations.
MAX_COMBOS = 4096
Progress = Callable[[str, int, int], None]


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


class _Bound(nn.Module):
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


class _Explorer:
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

    def positions(self) -> list[Position]:
        base = self.keys(self.base)
        deps: list[set[int]] = [set() for _ in base]
        for i, choice in enumerate(self.space.choices):
            for j in range(1, len(choice.options)):
                got = self.keys(self.with_values([i], [j]))
                if len(got) != len(base):
                    raise SupernasError(
                        f"space {self.space.name!r}: the number of ops changes with choice "
                        f"{choice.name!r}; a per-op LUT needs a fixed op sequence"
                    )
                for p, (a, b) in enumerate(zip(base, got, strict=True)):
                    if a != b:
                        deps[p].add(i)
        out = []
        for p, dep in enumerate(deps):
            d = tuple(sorted(dep))
            sizes = [len(self.space.choices[i].options) for i in d]
            if int(np.prod(sizes)) > MAX_COMBOS:
                raise SupernasError(f"op {p} depends on too many choices ({len(d)}) for a LUT")
            table = {
                combo: self.keys(self.with_values(d, combo))[p]
                for combo in itertools.product(*map(range, sizes))
            }
            out.append(Position(d, table))
        return out


@dataclass
class LatencyLUT:
    """Measured op latencies (ms) of one space at one input shape, backend and thread count."""

    space: str
    space_options: dict[str, Any]
    input_shape: tuple[int, ...]
    backend: str
    threads: int
    entries: dict[str, dict[str, Any]]
    positions: list[Position]
    overhead_ms: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._space: SearchSpace | None = None

    def get_space(self) -> SearchSpace:
        if self._space is None:
            self._space = get_space(self.space, **self.space_options)
        return self._space

    def check_space(self, space: SearchSpace, input_shape: Sequence[int] | None = None) -> None:
        """Raise unless this LUT was built for `space` (and `input_shape`, if given)."""
        if space.name != self.space or dict(space.options) != dict(self.space_options):
            raise SupernasError(
                f"latency LUT is for {self.space} {self.space_options}, not "
                f"{space.name} {space.options}"
            )
        if input_shape is not None and tuple(int(d) for d in input_shape) != self.input_shape:
            raise SupernasError(
                f"latency LUT is for input shape {self.input_shape}, not {tuple(input_shape)}"
            )

    def keys(self, arch: Arch | str) -> list[str]:
        """The op keys of `arch`, in call order."""
        idx = self.get_space().encode(self.get_space().validate(arch))
        return [pos.keys[tuple(idx[d] for d in pos.deps)] for pos in self.positions]

    def op_sum(self, arch: Arch | str) -> float:
        keys = self.keys(arch)
        missing = sorted({k for k in keys if k not in self.entries})
        if missing:
            raise SupernasError(f"latency LUT lacks {len(missing)} op(s) of {arch}: {missing[:3]}")
        return float(sum(self.entries[k]["median_ms"] for k in keys))

    def predict(self, arch: Arch | str) -> float:
        """Predicted batch-1 latency in ms: sum of the arch's op latencies + overhead_ms."""
        return self.op_sum(arch) + self.overhead_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "space": self.space,
            "space_options": self.space_options,
            "input_shape": list(self.input_shape),
            "backend": self.backend,
            "threads": self.threads,
            "overhead_ms": self.overhead_ms,
            "entries": self.entries,
            "positions": [p.to_json() for p in self.positions],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, obj: Any) -> LatencyLUT:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise SupernasError(f"not a latency LUT (expected format {FORMAT!r})")
        try:
            return cls(
                space=str(obj["space"]),
                space_options=dict(obj["space_options"]),
                input_shape=tuple(int(d) for d in obj["input_shape"]),
                backend=check_backend(obj["backend"]),
                threads=int(obj["threads"]),
                entries={str(k): dict(v) for k, v in obj["entries"].items()},
                positions=[Position.from_json(p) for p in obj["positions"]],
                overhead_ms=float(obj["overhead_ms"]),
                meta=dict(obj.get("meta", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SupernasError(f"corrupt latency LUT: {exc!r}") from None

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> LatencyLUT:
        return cls.from_json(read_json(path))


def _network_runner(space: SearchSpace, arch: Arch, shape: tuple[int, ...], backend: str,
                    threads: int) -> Callable[[], Any]:
    torch.manual_seed(0)
    return make_runner(build_network(space, arch), shape, backend, threads)


def measure_archs(
    space: SearchSpace,
    archs: Sequence[Arch],
    input_shape: Sequence[int],
    *,
    backend: str = "eager",
    warmup: int = 5,
    repeats: int = 30,
    rounds: int = 5,
    threads: int = 1,
    progress: Progress | None = None,
) -> list[float]:
    """Median end-to-end batch-1 latency (ms) of each arch, measured interleaved."""
    shape = tuple(int(d) for d in input_shape)
    runners = []
    for i, a in enumerate(archs):
        runners.append(_network_runner(space, a, shape, backend, threads))
        if progress:
            progress("prepare archs", i + 1, len(archs))
    res = measure_interleaved(
        runners, warmup=warmup, repeats=repeats, rounds=rounds, threads=threads,
        progress=(lambda i: progress("measure archs", i + 1, len(archs))) if progress else None,
    )
    return [r.median_ms for r in res]


def build_lut(
    space: SearchSpace,
    input_shape: Sequence[int],
    *,
    backend: str = "eager",
    archs: Sequence[Arch] | None = None,
    warmup: int = 5,
    repeats: int = 30,
    rounds: int = 5,
    threads: int = 1,
    calibration: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
) -> LatencyLUT:
    """Measure every distinct op of the space (or only those of `archs`) once, interleaved.

    `calibration` archs (sampled with `seed`) are also measured end to end to fit
    `overhead_ms`; with 0 the overhead stays 0 and `predict` is the plain sum of ops.
    """
    check_backend(backend)
    shape = tuple(int(d) for d in input_shape)
    explorer = _Explorer(space, shape)
    positions = explorer.positions()
    lut = LatencyLUT(space.name, dict(space.options), shape, backend, threads, {}, positions)
    wanted = sorted({k for p in positions for k in p.keys.values()})
    if archs is not None:
        wanted = sorted({k for a in archs for k in lut.keys(a)})
    runners = []
    for i, key in enumerate(wanted):
        op = explorer.ops[key]
        runners.append(make_runner(_Bound(op), op.input_shape, backend, threads))
        if progress:
            progress("prepare ops", i + 1, len(wanted))
    results = measure_interleaved(
        runners, warmup=warmup, repeats=repeats, rounds=rounds, threads=threads,
        progress=(lambda i: progress("measure ops", i + 1, len(wanted))) if progress else None,
    )
    for key, res in zip(wanted, results, strict=True):
        op = explorer.ops[key]
        lut.entries[key] = {
            "module": op.desc, "input_shape": list(op.input_shape), **res.to_dict()
        }
    if calibration > 0:
        rng = as_rng(seed)
        calib = [space.sample(rng) for _ in range(calibration)]
        for a in calib:  # the structure found above must explain real networks
            got = [c.key for c in decompose(build_network(space, a), shape)]
            if got != lut.keys(a):
                raise SupernasError(f"LUT structure does not match the network of {a}")
        measured = measure_archs(space, calib, shape, backend=backend, warmup=warmup,
                                 repeats=repeats, rounds=rounds, threads=threads,
                                 progress=progress)
        sums = [lut.op_sum(a) for a in calib]
        lut.overhead_ms = float(np.median(np.subtract(measured, sums)))
    lut.meta = {
        "warmup": warmup, "repeats": repeats, "rounds": rounds, "calibration": calibration,
        "seed": seed, "torch": torch.__version__, "machine": platform.machine(),
        "processor": platform.processor(), "ops": len(lut.entries),
    }
    return lut


def validate_lut(
    lut: LatencyLUT,
    space: SearchSpace,
    archs: Sequence[Arch],
    *,
    warmup: int = 5,
    repeats: int = 30,
    rounds: int = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Spearman rho and MAPE (%) of LUT predictions against measured end-to-end latency."""
    lut.check_space(space)
    if len(archs) < 2:
        raise SupernasError("validating a latency LUT needs at least 2 archs")
    pred = [lut.predict(a) for a in archs]
    meas = measure_archs(space, archs, lut.input_shape, backend=lut.backend, warmup=warmup,
                         repeats=repeats, rounds=rounds, threads=lut.threads,
                         progress=progress)
    m, p = np.asarray(meas), np.asarray(pred)
    return {
        "spearman": float(stats.spearmanr(p, m).statistic),
        "mape": float(np.mean(np.abs(p - m) / m) * 100),
        "n": len(archs),
        "measured_ms": meas,
        "predicted_ms": pred,
    }
