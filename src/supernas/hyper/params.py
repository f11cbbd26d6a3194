"""What a hypernet must emit for one arch: the standalone network's parameters, by role.

Why by role: a generator's raw outputs have no natural scale, so each tensor is rescaled to
the scale its layer is initialised at (GHN-2's normalised decoding, Knyazev et al. 2021):
weights by 1/sqrt(fan_in), norm scales around 1, biases small. The generator then only has
to learn directions, and an untrained hypernet already yields a trainable network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor of a standalone network: its name, shape and role."""

    name: str
    shape: tuple[int, ...]
    role: str  # "weight" (conv/linear), "norm" (norm scale), "bias", "other"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def param_specs(net: nn.Module) -> list[ParamSpec]:
    """Every parameter of `net`, in registration order, with the role that sets its scale."""
    specs = []
    for mod_name, mod in net.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            name = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "bias":
                role = "bias"
            elif isinstance(mod, NORMS):
                role = "norm"
            elif isinstance(mod, nn.modules.conv._ConvNd | nn.Linear) and p_name == "weight":
                role = "weight"
            else:
                role = "other"
            specs.append(ParamSpec(name, tuple(p.shape), role))
    return specs


def scale(raw: Tensor, spec: ParamSpec) -> Tensor:
    """Map a raw generated tensor (about unit scale) to its parameter's init scale."""
    if spec.role == "weight":
        fan_in = math.prod(spec.shape[1:]) or 1
        return raw * math.sqrt(2.0 / fan_in)  # He init: the nets use ReLU/GELU
    if spec.role == "norm":
        return 1.0 + 0.1 * raw
    if spec.role == "bias":
        return 0.1 * raw
    return 0.02 * raw  # embeddings such as vit's positions


def batch_stat_bn(net: nn.Module) -> nn.Module:
    """Make every BN of `net` normalise with batch statistics, in train and eval mode alike.

    Why: generated weights change with every arch and every step, so no running statistics
    could fit them; batch statistics are what the hypernet was trained with, and they make
    the wrapper's forward and the extracted network agree by construction.
    """
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
    return net


@torch.no_grad()
def load_params(net: nn.Module, params: dict[str, Tensor]) -> nn.Module:
    """Copy generated tensors into `net`'s parameters of the same names (exact shapes)."""
    for name, t in params.items():
        net.get_parameter(name).copy_(t.detach())
    return net
