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
from supernas.hardware.bits import QuantBitCosts, count_bitops, count_model_bits
from supernas.hardware.lut import LatencyLUT
from supernas.space import Arch, SearchSpace
from supernas.space.quant import QUANT_SPACE
from supernas.supernet import build_network

#: model_bits and bitops are a quantized network's size and BitOPs (hardware/bits.py).
METRICS = ("params", "flops", "latency_ms", "model_bits", "bitops")
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
        self._cache: dict[str, dict[Arch, int]] = {m: {} for m in METRICS if m != "latency_ms"}
        self._bit_costs: QuantBitCosts | None = None
        if isinstance(lut, str | Path):
            lut = LatencyLUT.load(lut)
        if lut is not None:
            lut.check_space(space, self.input_shape)
        self.lut = lut

    def params(self, arch: Arch) -> int:
        return self._measure("params", arch)

    def flops(self, arch: Arch) -> int:
        return self._measure("flops", arch)

    def model_bits(self, arch: Arch) -> int:
        """Size in bits: quantized weights at their bit width, everything else at 32."""
        return self._measure("model_bits", arch)

    def bitops(self, arch: Arch) -> int:
        """MACs x weight bits x activation bits, summed (float MACs count 32 x 32)."""
        return self._measure("bitops", arch)

    def latency_ms(self, arch: Arch) -> float:
        """Predicted batch-1 latency (ms) from the LUT."""
        if self.lut is None:
            raise SupernasError(
                "latency_ms needs a latency lookup table (ArchCost(..., lut=...)); "
                "build one with `supernas hardware lut`"
            )
        return self.lut.predict(self.space.validate(arch))

    def metric(self, name: str, arch: Arch) -> int | float:
        """One of METRICS by name (what a Constraint asks for)."""
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
        if metric == "params":
            return count_params(net)
        if metric == "model_bits":
            return count_model_bits(net)
        if metric == "bitops":
            return count_bitops(net, self.input_shape)
        return count_flops(net, self.input_shape)

    def _measure_on(self, metric: str, arch: Arch, device: str) -> int:
        if metric in ("model_bits", "bitops") and self.space.name == QUANT_SPACE:
            if self._bit_costs is None:  # a dot product per arch: no network build
                self._bit_costs = QuantBitCosts(self.space, self.input_shape)
            return getattr(self._bit_costs, metric)(arch)
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
        "expected '<metric><op><number>' with metric in {params, flops, latency_ms, "
        "model_bits, bitops}, op in "
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


def check_satisfiable(cost: ArchCost, constraints: list[Constraint]) -> None:
    """Refuse a constraint that no arch of the space meets, before any work or file."""
    for c in constraints:
        extreme = _extreme(cost, c)
        if not c.check(cost, extreme):
            word = "smallest" if c.op in ("<=", "<") else "largest"
            raise SupernasError(
                f"no architecture satisfies {c}: the {word} {c.metric} in space "
                f"{cost.space.name} is {cost.metric(c.metric, extreme):,.6g}; loosen the constraint"
            )


def _extreme(cost: ArchCost, c: Constraint, sweeps: int = 3) -> Arch:
    """The arch with the lowest (for <=, <) or highest (>=, >) value of `c.metric`.

    Why coordinate sweeps: params, FLOPs and latency grow with each choice's option nearly
    independently of the others, so optimising one choice at a time finds the extreme in a
    few dozen cached measurements, where rejection sampling spends thousands before giving
    up deep inside training.
    """
    space, sign = cost.space, 1 if c.op in ("<=", "<") else -1
    idx = list(space.encode(space.sample(0)))
    for _ in range(sweeps):
        before = list(idx)
        for i, choice in enumerate(space.choices):
            scores = []
            for o in range(len(choice.options)):
                idx[i] = o
                scores.append(sign * cost.metric(c.metric, space.decode(idx)))
            idx[i] = min(range(len(scores)), key=scores.__getitem__)
        if idx == before:
            break
    return space.decode(idx)
