"""Datasets as in-memory tensors with a deterministic train/val/test split.

Why in memory: every dataset supernas ships or accepts (digits, Fashion-MNIST, a user's
.npz or image folder of modest size) fits, and plain tensor slicing is faster on a CPU
than a DataLoader with workers. Supernet weights fit on train, search ranks on val, and
final numbers come from test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from supernas.errors import SupernasError

SPLITS = ("train", "val", "test")


@dataclass
class Dataset:
    """Images as float32 (N, C, H, W), labels as int64 (N,), for each split."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    classes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in SPLITS:
            x, y = self.split(split)
            if len(x) == 0:
                raise SupernasError(f"dataset {self.name!r}: the {split} split is empty")
            if len(x) != len(y):
                raise SupernasError(
                    f"dataset {self.name!r}: {split} has {len(x)} images but {len(y)} labels"
                )
            if x.dim() != 4:
                raise SupernasError(f"dataset {self.name!r}: images must be (N, C, H, W)")
            if not torch.isfinite(x).all():
                raise SupernasError(f"dataset {self.name!r}: {split} images contain NaN or inf")
        if not self.classes:
            self.classes = [str(i) for i in range(self.num_classes)]

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *self.image_size)

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        if name not in SPLITS:
            raise SupernasError(f"unknown split {name!r}; valid: {', '.join(SPLITS)}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Mini-batches of one split; shuffled with `generator` (seeded) when asked."""
        x, y = self.split(split)
        n = len(x)
        if batch_size < 1:
            raise SupernasError(f"batch size must be at least 1, got {batch_size}")
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for k, i in enumerate(range(0, stop, batch_size)):
            if limit is not None and k >= limit:
                return
            idx = order[i : i + batch_size]
            yield x[idx], y[idx]

    def summary(self) -> dict[str, Any]:
        """Sizes, image shape and class balance: printed before training."""
        counts = torch.bincount(self.y_train, minlength=self.num_classes).tolist()
        return {
            "name": self.name,
            "train": len(self.x_train),
            "val": len(self.x_val),
            "test": len(self.x_test),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "train_class_counts": counts,
            **self.info,
        }


def check_arrays(name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images to float32 (N, C, H, W), labels to int64 0..K-1, with clear errors."""
    x = np.asarray(x)
    y = np.asarray(y).reshape(-1)
    if x.size == 0 or len(x) == 0:
        raise SupernasError(f"dataset {name!r} is empty")
    if len(x) != len(y):
        raise SupernasError(f"dataset {name!r}: {len(x)} images but {len(y)} labels")
    if not np.issubdtype(x.dtype, np.number):
        raise SupernasError(f"dataset {name!r}: images must be numeric, got {x.dtype}")
    if x.ndim == 3:  # (N, H, W): one channel
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):  # (N, H, W, C)
            x = np.transpose(x, (0, 3, 1, 2))
    else:
        raise SupernasError(
            f"dataset {name!r}: images must be (N,H,W), (N,H,W,C) or (N,C,H,W); got {x.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise SupernasError(f"dataset {name!r}: labels must be integers, got {y.dtype}")
    if y.min() < 0:
        raise SupernasError(f"dataset {name!r}: labels must be >= 0")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise SupernasError(f"dataset {name!r}: images contain NaN or inf")
    return x, y.astype(np.int64)


def stratified_split(y: np.ndarray, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Index sets with the given fractions, each class split in the same proportions."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.round(bounds * len(idx)).astype(int)
        for k, chunk in enumerate(np.split(idx, cuts)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def _subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of a stratified subset of about n of the labels y."""
    if n < 1:
        raise SupernasError(f"a split limit must be at least 1, got {n}")
    return stratified_split(y, (n / len(y), 1 - n / len(y)), seed)[0]


def make_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    max_train: int | None = None,
    max_val: int | None = None,
    classes: list[str] | None = None,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """Split (stratified, seeded), standardise with train-split statistics, wrap as tensors.

    With no test arrays, train/val/test come from one pool; with them, val comes from train.
    `max_train` / `max_val` keep stratified subsets of those splits (fast CPU runs).
    """
    x_train, y_train = check_arrays(name, x_train, y_train)
    if x_test is None or y_test is None:
        tr, va, te = stratified_split(
            y_train, (1 - val_fraction - test_fraction, val_fraction, test_fraction), split_seed
        )
        x_test, y_test = x_train[te], y_train[te]
    else:
        x_test, y_test = check_arrays(name, x_test, y_test)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise SupernasError(
                f"dataset {name!r}: test images {x_test.shape[1:]} differ from "
                f"train {x_train.shape[1:]}"
            )
        tr, va = stratified_split(y_train, (1 - val_fraction, val_fraction), split_seed)
    if max_val is not None and max_val < len(va):
        va = va[_subset(y_train[va], max_val, split_seed + 2)]
    x_val, y_val = x_train[va], y_train[va]
    if max_train is not None and max_train < len(tr):
        tr = tr[_subset(y_train[tr], max_train, split_seed + 1)]
    x_tr, y_tr = x_train[tr], y_train[tr]
    if len(x_tr) == 0:
        raise SupernasError(f"dataset {name!r}: the train split is empty")
    mean = x_tr.mean(axis=(0, 2, 3), keepdims=True)
    std = x_tr.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    if num_classes < 2:
        raise SupernasError(f"dataset {name!r} has a single class; need at least 2")

    def t(x: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray((x - mean) / std, dtype=np.float32))

    return Dataset(
        name=name,
        x_train=t(x_tr),
        y_train=torch.from_numpy(y_tr),
        x_val=t(x_val),
        y_val=torch.from_numpy(y_val),
        x_test=t(x_test),
        y_test=torch.from_numpy(y_test),
        num_classes=num_classes,
        classes=classes or [],
        info=info or {},
    )
