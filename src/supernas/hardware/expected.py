"""Expected latency under a distribution over archs: differentiable in the arch logits.

Why: ProxylessNAS and FBNet add latency to the loss that trains the arch distribution, so
latency must be a function of the probabilities p_c (one vector per choice) with a
gradient. A per-op LUT (`supernas.hardware.lut`) already says, for each op position of the
network, which choices decide its op and each op's latency. With the choices independent,
the expected latency is

    E[lat] = fixed + sum_c sum_j p_cj L_cj + sum_{joint positions} sum_combo prod_d p_d L

`fixed`: the positions that depend on no choice (stem, head, NB201's reduction blocks)
plus the LUT's `overhead_ms`; `L_c`: per option of choice c, the summed latency of every
position that depends on c alone (a MobileNetV2 block; an NB201 edge, once per cell);
joint positions (a ResNet-18 block, decided by its kernel and its width) keep their
table over the option combinations. For a one-hot p this is exactly the LUT's `predict`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from supernas.errors import SupernasError
from supernas.hardware.lut import LatencyLUT
from supernas.space import SearchSpace


@dataclass
class ExpectedLatency:
    """E[lat] (ms) of a space's LUT as a function of per-choice probability vectors."""

    fixed: float
    per_choice: list[Tensor]
    joint: list[tuple[tuple[int, ...], Tensor]]

    @classmethod
    def from_lut(cls, lut: LatencyLUT, space: SearchSpace | None = None) -> ExpectedLatency:
        """Collect the LUT's positions into `fixed`, per-choice `L_c` and joint tables.

        Float64 throughout, so that a one-hot E[lat] matches `lut.predict` to rounding.
        """
        if space is not None:
            lut.check_space(space)
        space = lut.get_space()
        sizes = [len(c.options) for c in space.choices]
        per_choice = [torch.zeros(n, dtype=torch.float64) for n in sizes]
        joint: list[tuple[tuple[int, ...], Tensor]] = []
        fixed = float(lut.overhead_ms)

        def ms(key: str) -> float:
            entry = lut.entries.get(key)
            if entry is None:
                raise SupernasError(
                    f"latency LUT lacks op {key}; rebuild it for the whole space (not only "
                    "for listed archs) to use it in a latency loss"
                )
            return float(entry["median_ms"])

        for pos in lut.positions:
            if not pos.deps:
                fixed += ms(pos.keys[()])
                continue
            table = torch.zeros([sizes[d] for d in pos.deps], dtype=torch.float64)
            for combo, key in pos.keys.items():
                table[combo] = ms(key)
            if len(pos.deps) == 1:
                per_choice[pos.deps[0]] += table
            else:
                joint.append((tuple(pos.deps), table))
        return cls(fixed, per_choice, joint)

    def __call__(self, probs: Sequence[Tensor]) -> Tensor:
        """E[lat] in ms for `probs[c]` = the distribution over choice c's options (0-dim)."""
        if len(probs) != len(self.per_choice):
            raise SupernasError(
                f"expected latency needs {len(self.per_choice)} probability vectors, "
                f"got {len(probs)}"
            )
        device = probs[0].device if len(probs) else torch.device("cpu")
        p64 = [p.to(torch.float64) for p in probs]
        total = torch.tensor(self.fixed, dtype=torch.float64, device=device)
        for p, lat in zip(p64, self.per_choice, strict=True):
            total = total + (p * lat.to(device)).sum()
        for deps, table in self.joint:
            t = table.to(device)
            for d in deps:  # contract one choice at a time: sum_i p_i T[i, ...]
                t = torch.tensordot(p64[d], t, dims=([0], [0]))
            total = total + t
        return total

    def option_latency(self, choice: int) -> Tensor:
        """L_c: the latency each option of `choice` adds (its single-choice positions)."""
        return self.per_choice[choice]


def load_lut(lut: str | Path | LatencyLUT | None) -> LatencyLUT | None:
    """A trainer's `lut` option: a LUT, the path of a saved one, or None (no latency term)."""
    if lut is None or isinstance(lut, LatencyLUT):
        return lut
    if isinstance(lut, str | Path):
        return LatencyLUT.load(lut)
    raise SupernasError(f"lut must be a LatencyLUT or the path of one, not {type(lut).__name__}")


def lut_digest(lut: LatencyLUT | None) -> str | None:
    """A short hash of a LUT's content: what a checkpoint's config records of it.

    Why not the path: a resume must refuse another LUT (other latencies steer alpha
    elsewhere) and accept the same LUT moved or loaded as an object.
    """
    if lut is None:
        return None
    text = json.dumps(lut.to_json(), sort_keys=True, default=str)
    return "sha1:" + hashlib.sha1(text.encode()).hexdigest()[:16]
