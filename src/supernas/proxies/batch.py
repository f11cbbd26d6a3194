"""The one minibatch a proxy sees, shaped for the space's networks.

NB201's networks are CIFAR networks (3 x 32 x 32). CIFAR images are not on this machine, so
for nb201 a real-data batch is Fashion-MNIST (or digits, or the user's data) resized to
32 x 32 and repeated to 3 channels; `random` gives Gaussian images instead. Other spaces
take the data as it is (the space is built with the data's channels and classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from supernas.data import Dataset, load_data
from supernas.errors import SupernasError
from supernas.proxies.base import Batch
from supernas.space import SearchSpace

#: Spaces whose networks expect a fixed input size: the size their tables were made at.
NATIVE_IMAGE_SIZE = {"nb201": 32}
RANDOM = "random"


def fit_images(x: torch.Tensor, channels: int, size: int | None) -> torch.Tensor:
    """Repeat grey images to `channels` and resize (bilinear) to size x size."""
    if x.shape[1] != channels:
        if x.shape[1] != 1:
            raise SupernasError(
                f"the data has {x.shape[1]} channels but the space's networks take {channels}"
            )
        x = x.expand(-1, channels, -1, -1)
    if size and tuple(x.shape[2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous()


def proxy_batch(
    data: str | Dataset,
    space: SearchSpace,
    *,
    batch_size: int = 64,
    seed: int = 0,
    data_dir: str | None = None,
    image_size: int | None = None,
) -> Batch:
    """`batch_size` training images (seeded choice) and labels, fitted to `space`.

    `data` is `random` (Gaussian images, uniform labels), anything `load_data` takes, or
    a loaded Dataset.
    """
    if batch_size < 2:
        raise SupernasError("--batch-size must be at least 2 (correlation proxies need pairs)")
    channels = int(space.options.get("in_channels", 3))
    classes = int(space.options.get("num_classes", 10))
    size = image_size or NATIVE_IMAGE_SIZE.get(space.name)
    gen = torch.Generator().manual_seed(seed)
    if data == RANDOM:
        side = size or 32
        x = torch.randn(batch_size, channels, side, side, generator=gen)
        return x, torch.randint(0, classes, (batch_size,), generator=gen)
    ds = data if isinstance(data, Dataset) else load_data(data, data_dir=data_dir, split_seed=seed)
    if ds.num_classes > classes:
        raise SupernasError(
            f"{ds.name} has {ds.num_classes} classes but the space's networks have {classes} "
            "outputs; pass --space-opt num_classes=N"
        )
    x_all, y_all = ds.split("train")
    if batch_size > len(x_all):
        raise SupernasError(
            f"--batch-size {batch_size} > {len(x_all)} training images in {ds.name}"
        )
    idx = torch.randperm(len(x_all), generator=gen)[:batch_size]
    return fit_images(x_all[idx], channels, size), y_all[idx].clone()
