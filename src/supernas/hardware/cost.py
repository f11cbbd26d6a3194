"""Cost of one architecture: parameters, FLOPs and (with a LUT) latency, and constraints.

FLOPs are what `torch.utils.flop_counter.FlopCounterMode` counts: 2 x multiply-accumulates
of convolutions and matrix products (a Conv2d is 2*Cin/groups*Cout*k*k*Hout*Wout, a Linear
2*in*out), for one sample (batch size 1) in eval mode. BN, activations, pooling and
additions count zero, as in most NAS papers' FLOP tables (which usually quote MACs = half).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from supernas.errors import SupernasError
from supernas.hardware.lut import LatencyLUT
from supernas.space import Arch, SearchSpace
from supernas.supernet import build_network

METRICS = ("params", "flops", "latency_ms")
OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared ones once); works on meta-device models too."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (= 2 x MACs) of one forward of a single sample of shape `input_shape` (no batch dim).

    The input is zeros on the model's device and dtype, so a meta-device model is counted
    without allocating memory. The model's train/eval mode is restored afterwards.
    """
    ref = next(model.parameters(), None)
    if ref is None:
        ref = next(model.buffers(), torch.empty(0))
    x = torch.zeros((1, *input_shape), device=ref.device, dtype=ref.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


class ArchCost:
    """Cached params and FLOPs of archs of one space, measured on their standalone networks.

    Why meta: a network built on the meta device has shapes but no storage, so even huge
    widths cost almost nothing to count. If building or running on meta fails, the CPU is
    used instead; both give the same numbers. `latency_ms` needs a latency LUT (a
    LatencyLUT or the path of its JSON) built for the same space options and input shape:
    predicting from it is a few dict lookups, so constraints on latency stay cheap.
    """

    def __init__(
        self,
        space: SearchSpace,
        input_shape: tuple[int, ...],
        device: str = "meta",
        lut: LatencyLUT | str | Path | None = None,
    ) -> None:
        if device not in ("meta", "cpu"):
            raise SupernasError(f"ArchCost device must be 'meta' or 'cpu', got {device!r}")
        self.space = space
        self.input_shape = tuple(int(d) for d in input_shape)
        self.device = device
        # separate caches: counting params needs no forward pass, FLOPs do (and cost ~10x more)
        self._cache: dict[str, dict[Arch, int]] = {"params": {}, "flops": {}}
        if isinstance(lut, str | Path):
            lut = LatencyLUT.load(lut)
        if lut is not None:
            lut.check_space(space, self.input_shape)
        self.lut = lut

    def params(self, arch: Arch) -> int:
        return self._measure("params", arch)

    def flops(self, arch: Arch) -> int:
        return self._measure("flops", arch)

    def latency_ms(self, arch: Arch) -> float:
        """Predicted batch-1 latency (ms) from the LUT."""
        if self.lut is None:
            raise SupernasError(
                "latency_ms needs a latency lookup table (ArchCost(..., lut=...)); "
                "build one with `supernas hardware lut`"
            )
        return self.lut.predict(self.space.validate(arch))

    def metric(self, name: str, arch: Arch) -> int | float:
        """`params`, `flops` or `latency_ms` by name (what a Constraint asks for)."""
        if name not in METRICS:
            raise SupernasError(f"unknown cost metric {name!r}; valid: {', '.join(METRICS)}")
        if name == "latency_ms":
            return self.latency_ms(arch)
        return self._measure(name, arch)

    def _measure(self, metric: str, arch: Arch) -> int:
        arch = self.space.validate(arch)
        cache = self._cache[metric]
        if arch not in cache:
            cache[arch] = self._measure_on(metric, arch, self.device)
        return cache[arch]

    def _count(self, metric: str, net: torch.nn.Module) -> int:
        return count_params(net) if metric == "params" else count_flops(net, self.input_shape)

    def _measure_on(self, metric: str, arch: Arch, device: str) -> int:
        if device == "meta":
            try:
                with torch.device("meta"):
                    return self._count(metric, build_network(self.space, arch))
            except (RuntimeError, NotImplementedError, TypeError):
                pass  # an op without a meta kernel: count on the CPU instead
        return self._count(metric, build_network(self.space, arch))


@dataclass(frozen=True)
class Constraint:
    """A bound on one cost metric, e.g. params <= 1e6 or latency_ms <= 5."""

    metric: str
    op: str
    value: float

    def check(self, arch_cost: ArchCost, arch: Arch) -> bool:
        return OPS[self.op](arch_cost.metric(self.metric, arch), self.value)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


_CONSTRAINT = re.compile(
    r"^\s*(?P<metric>[a-zA-Z_]+)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<num>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?P<suffix>[kKMG]?)\s*$"
)


def parse_constraint(text: str) -> Constraint:
    """'params<=1e6', 'flops < 300M', 'latency_ms<=5' -> Constraint.

    Suffixes k/K, M, G scale the number; latency_ms is in milliseconds and needs an ArchCost
    with a LUT when checked.
    """
    form = (
        "expected '<metric><op><number>' with metric in {params, flops, latency_ms}, op in "
        "{<=, <, >=, >} and an optional k/M/G suffix, e.g. 'params<=1e6', 'flops<300M' or "
        "'latency_ms<=5'"
    )
    m = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if m is None:
        raise SupernasError(f"bad constraint {text!r}: {form}")
    metric = m["metric"].lower()
    if metric not in METRICS:
        raise SupernasError(f"bad constraint {text!r}: unknown metric {metric!r}; {form}")
    return Constraint(metric, m["op"], float(m["num"]) * _SUFFIX[m["suffix"]])
