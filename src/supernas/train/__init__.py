"""Ways to fit weights: a standalone recipe (ground truth) and supernet trainers."""

# The hypernet trainers (smash, ghn) live with their models; importing registers them.
import supernas.hyper.trainer  # noqa: F401
from supernas.train.darts import DARTSTrainer
from supernas.train.enas import ENASTrainer
from supernas.train.fairnas import FairNASTrainer, fair_paths
from supernas.train.fbnet import FBNetTrainer
from supernas.train.gdas import GDASTrainer
from supernas.train.greedynas import GreedyNASTrainer, read_pool
from supernas.train.loop import SupernetTrainer
from supernas.train.path_dropout import PathDropoutTrainer, drop_rate_at, path_masks
from supernas.train.pcdarts import PCDARTSTrainer
from supernas.train.proxyless import ProxylessTrainer
from supernas.train.random_ws import RandomWSTrainer
from supernas.train.recipe import Recipe, check_loss, evaluate
from supernas.train.registry import (
    TRAINERS,
    get_trainer,
    list_trainers,
    register_trainer,
    with_lut,
)
from supernas.train.sandwich import SandwichTrainer, extreme_archs
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
    "DARTSTrainer",
    "ENASTrainer",
    "FBNetTrainer",
    "FairNASTrainer",
    "GDASTrainer",
    "GreedyNASTrainer",
    "PCDARTSTrainer",
    "PathDropoutTrainer",
    "ProxylessTrainer",
    "RandomWSTrainer",
    "Recipe",
    "SPOSTrainer",
    "SandwichTrainer",
    "SupernetTrainer",
    "TrainResult",
    "check_loss",
    "drop_rate_at",
    "evaluate",
    "extreme_archs",
    "fair_paths",
    "get_trainer",
    "list_trainers",
    "load_supernet",
    "path_masks",
    "read_pool",
    "register_trainer",
    "sample_constrained",
    "supernet_checkpoint",
    "train_epochs",
    "train_model",
    "with_lut",
]
