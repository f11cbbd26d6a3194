"""The datasets supernas knows: digits (embedded), Fashion-MNIST (IDX files), a user's .npz."""

from __future__ import annotations

import dataclasses
import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from supernas.data.core import Dataset, make_dataset
from supernas.data.folder import load_image_folder
from supernas.errors import SupernasError
from supernas.registry import Registry

DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")

#: Where Debian's `dataset-fashion-mnist` package installs the IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@DATASETS.register("digits")
def digits(split_seed: int = 0, **opts: Any) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images), shipped with sklearn: no download."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    return make_dataset(
        "digits",
        x,
        d.target,
        split_seed=split_seed,
        info={"source": "sklearn.datasets.load_digits"},
        **opts,
    )


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped): the MNIST family's format."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise SupernasError(f"cannot read IDX file {path}: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise SupernasError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise SupernasError(f"{path}: unknown IDX data type 0x{data[2]:02x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(dtypes[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise SupernasError(
            f"{path}: truncated or corrupt IDX file ({len(data) - header} bytes of data, "
            f"expected {expected} for shape {shape})"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise SupernasError(
        f"Fashion-MNIST file {stem}(.gz) not found in {folder}. Install it with "
        "`apt-get install dataset-fashion-mnist` (Debian) or pass --data-dir to a folder "
        "holding the four IDX files"
    )


@DATASETS.register("fashion-mnist")
def fashion_mnist(
    data_dir: str | None = None,
    split_seed: int = 0,
    max_train: int | None = None,
    max_val: int | None = None,
    **opts: Any,
) -> Dataset:
    """Fashion-MNIST (28x28, 10 classes): 60k train (val split off it) + the official 10k test."""
    folder = Path(data_dir or os.environ.get("SUPERNAS_FASHION_MNIST", FASHION_MNIST_DIR))
    if not folder.is_dir():
        raise SupernasError(
            f"Fashion-MNIST folder {folder} does not exist. Install it with "
            "`apt-get install dataset-fashion-mnist` (Debian) or pass --data-dir"
        )
    xtr = read_idx(_find(folder, "train-images-idx3-ubyte")).astype(np.float32) / 255.0
    ytr = read_idx(_find(folder, "train-labels-idx1-ubyte"))
    xte = read_idx(_find(folder, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
    yte = read_idx(_find(folder, "t10k-labels-idx1-ubyte"))
    return make_dataset(
        "fashion-mnist",
        xtr,
        ytr,
        xte,
        yte,
        split_seed=split_seed,
        val_fraction=opts.pop("val_fraction", 1 / 6),
        max_train=max_train,
        max_val=max_val,
        classes=FASHION_CLASSES,
        info={"source": str(folder)},
        **opts,
    )


@DATASETS.register("npz")
def npz(path: str | None = None, split_seed: int = 0, **opts: Any) -> Dataset:
    """A user's arrays: `x`, `y` (split 60/20/20) or `x_train`, `y_train`, `x_test`, `y_test`."""
    if not path:
        raise SupernasError("the npz dataset needs a path: --data PATH.npz")
    p = Path(path)
    if not p.is_file():
        raise SupernasError(f"data file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:
        raise SupernasError(f"cannot read {p} as .npz: {exc}") from None
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        return make_dataset(
            p.stem,
            arrays["x_train"],
            arrays["y_train"],
            arrays["x_test"],
            arrays["y_test"],
            split_seed=split_seed,
            info={"source": str(p)},
            **opts,
        )
    if {"x", "y"} <= arrays.keys():
        return make_dataset(
            p.stem, arrays["x"], arrays["y"], split_seed=split_seed, info={"source": str(p)}, **opts
        )
    raise SupernasError(
        f"{p} must hold arrays 'x' and 'y' (or x_train, y_train, x_test, y_test); "
        f"found: {sorted(arrays)}"
    )


@DATASETS.register("folder")
def folder(path: str | None = None, **opts: Any) -> Dataset:
    """A user's images, one sub-folder per class: `--data path/to/folder`."""
    if not path:
        raise SupernasError("the folder dataset needs a path: --data path/to/folder")
    return load_image_folder(path, **opts)


def load_data(
    data: str = "digits",
    *,
    data_dir: str | None = None,
    split_seed: int = 0,
    max_train: int | None = None,
    max_val: int | None = None,
    image_size: int | None = None,
    **options: Any,
) -> Dataset:
    """A dataset by registry name, a user's .npz file, or a folder of images per class.

    `max_train` / `max_val` (None or 0 = all) keep stratified subsets for fast CPU runs.
    `image_size` resizes a folder's images as they are read, and any other dataset's
    tensors after loading (`resize`): small images make small, fast networks.
    """
    for key, val in (("max_train", max_train), ("max_val", max_val)):
        if val:
            options[key] = val
    is_folder = data not in DATASETS and not data.endswith(".npz") and Path(data).is_dir()
    if image_size == 0:
        image_size = None
    if is_folder:
        return load_image_folder(data, image_size=image_size, split_seed=split_seed, **options)
    if data.endswith(".npz"):
        ds = npz(path=data, split_seed=split_seed, **options)
    elif data == "fashion-mnist":
        ds = fashion_mnist(data_dir=data_dir, split_seed=split_seed, **options)
    else:
        ds = _registered(data, split_seed, options)
    return ds if image_size is None else resize(ds, image_size)


def _registered(data: str, split_seed: int, options: dict[str, Any]) -> Dataset:
    if data not in DATASETS and (os.sep in data or Path(data).exists()):
        raise SupernasError(
            f"data path {data!r} not found or not supported: give a folder of images "
            "(one sub-folder per class) or a .npz file"
        )
    return DATASETS.create(data, split_seed=split_seed, **options)


def resize(ds: Dataset, size: int) -> Dataset:
    """Every split resized to `size` x `size`: area averaging down, bilinear up.

    Applied to the standardised tensors; averaging keeps their statistics close enough that
    the train-split standardisation still holds.
    """
    if size < 1:
        raise SupernasError(f"image size must be at least 1, got {size}")
    if ds.image_size == (size, size):
        return ds

    def r(x: torch.Tensor) -> torch.Tensor:
        if size <= min(x.shape[2:]):
            return F.interpolate(x, size=(size, size), mode="area")
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    return dataclasses.replace(
        ds,
        x_train=r(ds.x_train),
        x_val=r(ds.x_val),
        x_test=r(ds.x_test),
        info={**ds.info, "resized_to": size},
    )


def list_datasets() -> list[str]:
    return DATASETS.names()
