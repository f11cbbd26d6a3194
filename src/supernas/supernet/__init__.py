"""Supernets: all candidate weights of a space, `forward(x, arch)`, `extract(arch)`."""

from supernas.supernet import mobilenetv2, nb201, resnet18, vit  # noqa: F401  (registers the built-in supernets)
from supernas.supernet.base import (
    SUPERNETS,
    Supernet,
    build_network,
    build_supernet,
    recalibrate_bn,
    register_supernet,
)

__all__ = [
    "SUPERNETS",
    "Supernet",
    "build_network",
    "build_supernet",
    "recalibrate_bn",
    "register_supernet",
]
