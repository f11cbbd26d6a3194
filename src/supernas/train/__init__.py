"""Ways to fit weights: a standalone recipe (ground truth) and supernet trainers."""

from supernas.train.recipe import Recipe, check_loss, evaluate
from supernas.train.registry import TRAINERS, get_trainer, list_trainers, register_trainer
from supernas.train.spos import (
    CHECKPOINT_FORMAT,
    SPOSTrainer,
    load_supernet,
    sample_constrained,
    supernet_checkpoint,
)
from supernas.train.standalone import TrainResult, train_epochs, train_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "TRAINERS",
    "Recipe",
    "SPOSTrainer",
    "TrainResult",
    "check_loss",
    "evaluate",
    "get_trainer",
    "list_trainers",
    "load_supernet",
    "register_trainer",
    "sample_constrained",
    "supernet_checkpoint",
    "train_epochs",
    "train_model",
]
