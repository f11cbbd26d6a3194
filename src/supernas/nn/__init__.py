"""Choice building blocks for your own PyTorch network.

Mark a few places as choices (`LayerChoice`, `ValueChoice` in `Conv2d`/`BatchNorm2d`/
`Linear`), then `space_of(model)` is its SearchSpace and `as_supernet(model)` its supernet,
with the same `forward(x, arch)` / `extract(arch)` contract as the built-in spaces.
"""

from supernas.nn.choice import BatchNorm2d, Conv2d, LayerChoice, Linear, ValueChoice
from supernas.nn.loader import model_name, register_model_file, register_run_model
from supernas.nn.model_space import (
    ModelSupernet,
    as_supernet,
    check_fits,
    register_model,
    space_of,
)

__all__ = [
    "BatchNorm2d",
    "Conv2d",
    "LayerChoice",
    "Linear",
    "ModelSupernet",
    "ValueChoice",
    "as_supernet",
    "check_fits",
    "model_name",
    "register_model",
    "register_model_file",
    "register_run_model",
    "space_of",
]
