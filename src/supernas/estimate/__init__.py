"""Estimators: the one protocol `score(archs) -> list[float]` (higher is better)."""

from supernas.estimate.base import Estimator
from supernas.estimate.cached import CachedTrainFromScratch
from supernas.estimate.cost import FlopsEstimator, ParamsEstimator
from supernas.estimate.scratch import TrainFromScratch, train_arch, val_curve
from supernas.estimate.supernet import SupernetEstimator
from supernas.hyper.estimator import HypernetEstimator

__all__ = [
    "CachedTrainFromScratch",
    "Estimator",
    "FlopsEstimator",
    "HypernetEstimator",
    "ParamsEstimator",
    "SupernetEstimator",
    "TrainFromScratch",
    "train_arch",
    "val_curve",
]
