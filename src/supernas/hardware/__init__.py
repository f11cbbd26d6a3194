"""Hardware cost of one model or arch: parameters, FLOPs, latency and constraints on them."""

from supernas.hardware.cost import (
    ArchCost,
    Constraint,
    count_flops,
    count_params,
    parse_constraint,
)
from supernas.hardware.latency import LatencyResult, export_onnx, measure_latency
from supernas.hardware.lut import LatencyLUT, build_lut, validate_lut
from supernas.hardware.ops import decompose

__all__ = [
    "ArchCost",
    "Constraint",
    "LatencyLUT",
    "LatencyResult",
    "build_lut",
    "count_flops",
    "count_params",
    "decompose",
    "export_onnx",
    "measure_latency",
    "parse_constraint",
    "validate_lut",
]
