"""Search spaces: plain data, no torch."""

from supernas.space import (  # noqa: F401  (registers the built-in spaces)
    mobilenetv2,
    nasbench1shot1,
    nb101,
    nb201,
    quant,
    resnet18,
    resnet50,
    vit,
)
from supernas.space.core import Arch, Choice, SearchSpace, as_rng, format_option
from supernas.space.registry import SPACES, get_space, list_spaces, register_space

__all__ = [
    "SPACES",
    "Arch",
    "Choice",
    "SearchSpace",
    "as_rng",
    "format_option",
    "get_space",
    "list_spaces",
    "register_space",
]
