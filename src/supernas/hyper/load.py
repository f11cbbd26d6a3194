"""The model a trainer fits, and the hypernet a checkpoint holds.

Why here: `supernas train`, `supernas run` and `load_supernet` build "the supernet" in one
line each; with hypernets that line must ask which model the method trains.
"""

from __future__ import annotations

from typing import Any

from supernas.hyper import HYPERNETS
from supernas.hyper.base import HyperSupernet
from supernas.space import SearchSpace
from supernas.supernet import Supernet, build_supernet


def model_for(trainer: Any, space: SearchSpace) -> Supernet:
    """`trainer.build(space)` for a hypernet trainer, else the space's supernet."""
    build = getattr(trainer, "build", None)
    return build(space) if build is not None else build_supernet(space)


def hypernet_from_checkpoint(ckpt: dict[str, Any], space: SearchSpace) -> HyperSupernet | None:
    """The (untrained) hypernet a checkpoint's trainer config describes; None for a supernet."""
    trainer = ckpt.get("trainer") or {}
    name = trainer.get("name")
    if name not in HYPERNETS:
        return None
    cls = HYPERNETS.get(name)
    options = {k: trainer[k] for k in cls.defaults if k in trainer}
    return HYPERNETS.create(name, space, seed=int(trainer.get("seed", 0)), **options)
