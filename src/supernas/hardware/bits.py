"""Model size in bits and BitOPs: the cost of a mixed-precision network (SPOS, section 4.3).

A conv with `w_bits`/`a_bits` (a standalone quantized network's `QuantConv2d`) stores each
weight in `w_bits` and costs MACs x w_bits x a_bits BitOPs; every other parameter takes
32 bits and every other multiply-accumulate (float convs, linears, matmuls) 32 x 32. So a
float network's model bits are 32 x params and its BitOPs 1024 x MACs (= 512 x FLOPs).
"""

from __future__ import annotations

import torch
from torch import nn

from supernas.space import Arch, SearchSpace

FLOAT_BITS = 32


def _w_bits(module: nn.Module) -> int | None:
    bits = getattr(module, "w_bits", None)
    return int(bits) if bits is not None else None


def count_model_bits(model: nn.Module) -> int:
    """Sum over parameters of their bits: quantized conv weights at w_bits, the rest at 32."""
    total = 0
    for module in model.modules():
        wb = _w_bits(module)
        for name, p in module.named_parameters(recurse=False):
            total += p.numel() * (wb if wb is not None and name == "weight" else FLOAT_BITS)
    return total


def count_bitops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """BitOPs of one forward of a single sample: sum of MACs x w_bits x a_bits.

    One eval forward under FlopCounterMode gives every MAC (FLOPs / 2); hooks on the
    quantized convs give theirs, which are then charged at their own bits.
    """
    quant: list[tuple[int, int]] = []  # (MACs, w_bits * a_bits) per quantized conv call

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        quant.append((out[0].numel() * k, int(m.w_bits) * int(m.a_bits)))

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and _w_bits(m) is not None
    ]
    from supernas.hardware.cost import count_flops  # cost.py uses this module's costs

    try:
        macs = count_flops(model, input_shape) // 2  # the same forward fires the hooks
    finally:
        for h in handles:
            h.remove()
    qmacs = sum(m for m, _ in quant)
    return (macs - qmacs) * FLOAT_BITS * FLOAT_BITS + sum(m * b for m, b in quant)


class QuantBitCosts:
    """`model_bits` and `bitops` of every arch of a quantization space, from one network.

    Why: both are affine in each block's bits (bits = base + sum_b weights_b x w_bits_b,
    BitOPs = base + sum_b MACs_b x w_bits_b x a_bits_b), so after counting one float
    network, an arch costs a dot product instead of a network build, which is what
    rejection sampling under a size constraint needs (it checks thousands of archs).
    Each quantized activation's clip (alpha) counts 32 bits, as in `count_model_bits`.
    """

    def __init__(self, space: SearchSpace, input_shape: tuple[int, ...]) -> None:
        from supernas.supernet.fake_quant import QuantAct
        from supernas.supernet.quant import QuantNetwork

        self.space = space
        with torch.device("meta"):
            net = QuantNetwork(space, space.arch([FLOAT_BITS] * len(space.choices)))
        self.weights = [sum(c.weight.numel() for c in b.convs()) for b in net.blocks]
        # a quantized activation adds its clip (one float parameter) to the model
        self.clips = [sum(isinstance(m, QuantAct) for m in b.modules()) for b in net.blocks]
        self.macs = [0] * len(self.weights)
        handles = [
            conv.register_forward_hook(
                lambda m, _i, out, b=b: self._add_macs(b, m, out)  # type: ignore[misc]
            )
            for b, block in enumerate(net.blocks)
            for conv in block.convs()
        ]
        try:
            total_ops = count_bitops(net, input_shape)
        finally:
            for h in handles:
                h.remove()
        sq = FLOAT_BITS * FLOAT_BITS
        self.base_bits = count_model_bits(net) - FLOAT_BITS * sum(self.weights)
        self.base_ops = total_ops - sq * sum(self.macs)

    def _add_macs(self, block: int, m: nn.Module, out: torch.Tensor) -> None:
        k = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        self.macs[block] += out[0].numel() * k

    def _bits(self, arch: Arch) -> list[tuple[int, int]]:
        v = self.space.validate(arch).values
        return [(int(v[2 * b]), int(v[2 * b + 1])) for b in range(len(v) // 2)]

    def model_bits(self, arch: Arch) -> int:
        total = self.base_bits
        for n, clips, (w, a) in zip(self.weights, self.clips, self._bits(arch), strict=True):
            total += n * w + (clips * FLOAT_BITS if a < FLOAT_BITS else 0)
        return total

    def bitops(self, arch: Arch) -> int:
        bits = self._bits(arch)
        return self.base_ops + sum(m * w * a for m, (w, a) in zip(self.macs, bits, strict=True))
