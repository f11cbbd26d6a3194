"""Datasets as tensors with deterministic train/val/test splits."""

from supernas.data.core import SPLITS, Dataset, make_dataset
from supernas.data.sources import DATASETS, list_datasets, load_data, read_idx, resize

__all__ = [
    "DATASETS",
    "SPLITS",
    "Dataset",
    "list_datasets",
    "load_data",
    "make_dataset",
    "read_idx",
    "resize",
]
