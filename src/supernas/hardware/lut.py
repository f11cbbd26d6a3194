"""Per-op latency lookup table: predict an arch's latency as the sum of its ops' latencies.

The ops and their positions come from `supernas.hardware.ops`.

What the ops miss (functional glue such as residual and cell additions, global pooling,
per-call dispatch counted once per op) is the same for every arch of a space, because the
positions are fixed; one constant `overhead_ms`, the median of (measured - sum of ops) over
a few calibration archs, absorbs it. It may be negative (e.g. ONNX Runtime runs a whole
graph with less per-op overhead than separate sessions).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernas.errors import SupernasError
from supernas.hardware.latency import (
    check_backend,
    make_runner,
    measure_interleaved,
    resolve_clock,
)
from supernas.hardware.ops import Bound, Explorer, Position, decompose
from supernas.io import read_json, write_json
from supernas.space import Arch, SearchSpace, as_rng, get_space
from supernas.supernet import build_network

FORMAT = "supernas-latency-lut/1"
Progress = Callable[[str, int, int], None]


@dataclass
class LatencyLUT:
    """Measured op latencies (ms) of one space at one input shape, backend and thread count."""

    space: str
    space_options: dict[str, Any]
    input_shape: tuple[int, ...]
    backend: str
    threads: int
    clock: str
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
            "clock": self.clock,
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
                clock=resolve_clock(obj["clock"], int(obj["threads"])),
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


def _network_runner(
    space: SearchSpace, arch: Arch, shape: tuple[int, ...], backend: str, threads: int
) -> Callable[[], Any]:
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
    clock: str = "auto",
    progress: Progress | None = None,
) -> list[float]:
    """Median end-to-end batch-1 latency (ms) of each arch, measured interleaved."""
    shape = tuple(int(d) for d in input_shape)
    res = _measure_all(
        [lambda a=a: _network_runner(space, a, shape, backend, threads) for a in archs],
        "archs",
        progress,
        warmup=warmup,
        repeats=repeats,
        rounds=rounds,
        threads=threads,
        clock=clock,
    )
    return [r.median_ms for r in res]


def _measure_all(
    makers: Sequence[Callable[[], Callable[[], Any]]],
    what: str,
    progress: Progress | None,
    **timing: Any,
) -> list[Any]:
    """Build each runner (a 'prepare' stage), then time them all interleaved ('measure')."""
    runners = []
    for i, make in enumerate(makers):
        runners.append(make())
        if progress:
            progress(f"prepare {what}", i + 1, len(makers))
    return measure_interleaved(
        runners,
        progress=(lambda i: progress(f"measure {what}", i + 1, len(makers))) if progress else None,
        **timing,
    )


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
    clock: str = "auto",
    calibration: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
) -> LatencyLUT:
    """Measure every distinct op of the space (or only those of `archs`) once, interleaved.

    `calibration` archs (sampled with `seed`) are also measured end to end to fit
    `overhead_ms`; with 0 the overhead stays 0 and `predict` is the plain sum of ops.
    `clock` (see latency.py): 'auto' times thread CPU time with one thread, else wall time.
    """
    check_backend(backend)
    clock = resolve_clock(clock, threads)
    shape = tuple(int(d) for d in input_shape)
    explorer = Explorer(space, shape)
    positions = explorer.positions()
    lut = LatencyLUT(space.name, dict(space.options), shape, backend, threads, clock, {}, positions)
    wanted = sorted({k for p in positions for k in p.keys.values()})
    if archs is not None:
        wanted = sorted({k for a in archs for k in lut.keys(a)})
    ops = [explorer.ops[key] for key in wanted]
    results = _measure_all(
        [lambda op=op: make_runner(Bound(op), op.input_shape, backend, threads) for op in ops],
        "ops",
        progress,
        warmup=warmup,
        repeats=repeats,
        rounds=rounds,
        threads=threads,
        clock=clock,
    )
    for key, res in zip(wanted, results, strict=True):
        op = explorer.ops[key]
        lut.entries[key] = {"module": op.desc, "input_shape": list(op.input_shape), **res.to_dict()}
    if calibration > 0:
        rng = as_rng(seed)
        calib = [space.sample(rng) for _ in range(calibration)]
        for a in calib:  # the structure found above must explain real networks
            got = [c.key for c in decompose(build_network(space, a), shape)]
            if got != lut.keys(a):
                raise SupernasError(f"LUT structure does not match the network of {a}")
        measured = measure_archs(
            space,
            calib,
            shape,
            backend=backend,
            warmup=warmup,
            repeats=repeats,
            rounds=rounds,
            threads=threads,
            clock=clock,
            progress=progress,
        )
        sums = [lut.op_sum(a) for a in calib]
        lut.overhead_ms = float(np.median(np.subtract(measured, sums)))
    lut.meta = {
        "warmup": warmup,
        "repeats": repeats,
        "rounds": rounds,
        "calibration": calibration,
        "seed": seed,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "ops": len(lut.entries),
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
    from scipy import stats

    lut.check_space(space)
    if len(archs) < 2:
        raise SupernasError("validating a latency LUT needs at least 2 archs")
    pred = [lut.predict(a) for a in archs]
    meas = measure_archs(
        space,
        archs,
        lut.input_shape,
        backend=lut.backend,
        warmup=warmup,
        repeats=repeats,
        rounds=rounds,
        threads=lut.threads,
        clock=lut.clock,
        progress=progress,
    )
    m, p = np.asarray(meas), np.asarray(pred)
    return {
        "spearman": float(stats.spearmanr(p, m).statistic),
        "mape": float(np.mean(np.abs(p - m) / m) * 100),
        "n": len(archs),
        "measured_ms": meas,
        "predicted_ms": pred,
    }
