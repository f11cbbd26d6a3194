"""Supernets: all candidate weights of a space, `forward(x, arch)`, `extract(arch)`."""

from supernas.supernet import (  # noqa: F401  (registers the built-in supernets and networks)
    mobilenetv2,
    nb101,
    nb201,
    quant,
    resnet18,
    resnet50,
    vit,
)
from supernas.supernet.base import (
    NETWORKS,
    SUPERNETS,
    Supernet,
    build_network,
    build_supernet,
    recalibrate_bn,
    register_network,
    register_supernet,
)

__all__ = [
    "NETWORKS",
    "SUPERNETS",
    "Supernet",
    "build_network",
    "build_supernet",
    "recalibrate_bn",
    "register_network",
    "register_supernet",
]
