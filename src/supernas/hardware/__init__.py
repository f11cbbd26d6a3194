"""Hardware cost of one model or arch: parameters, FLOPs and constraints on them."""

from supernas.hardware.cost import (
    ArchCost,
    Constraint,
    count_flops,
    count_params,
    parse_constraint,
)

__all__ = ["ArchCost", "Constraint", "count_flops", "count_params", "parse_constraint"]
