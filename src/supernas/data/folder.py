"""A user's images: one sub-folder per class, read with Pillow, split 60/20/20 (stratified)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from supernas.data.core import Dataset, make_dataset
from supernas.errors import SupernasError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_image_folder(
    path: str | Path, image_size: int | None = None, split_seed: int = 0, **opts: Any
) -> Dataset:
    """Images under `path/<class>/`, resized to `image_size` x `image_size` when given.

    Without `image_size`, all images must share one size (an error names the sizes found).
    Grayscale when every image is grayscale, else RGB.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    if not root.is_dir():
        raise SupernasError(f"data folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise SupernasError(
            f"{root} needs one sub-folder per class (at least 2); found {len(classes)}"
        )
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise SupernasError(f"class folder {root / name} holds no images ({IMAGE_SUFFIXES})")
        files += [(f, label) for f in found]
    if image_size is not None and image_size < 1:
        raise SupernasError(f"image size must be at least 1, got {image_size}")
    images = []
    for f, _ in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise SupernasError(f"cannot read image {f}: {exc}") from None
    gray = all(im.mode in ("1", "L", "I;16", "I") for im in images)
    mode = "L" if gray else "RGB"
    if image_size is None:
        sizes = Counter(im.size for im in images)
        if len(sizes) > 1:
            common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
            raise SupernasError(
                f"images in {root} differ in size ({common}); pass --image-size N to resize"
            )
    arrays = []
    for im in images:
        im = im.convert(mode)
        if image_size is not None:
            im = im.resize((image_size, image_size), Image.BILINEAR)
        arrays.append(np.asarray(im, dtype=np.float32) / 255.0)
    x = np.stack(arrays)  # (N, H, W) or (N, H, W, 3)
    y = np.array([label for _, label in files], dtype=np.int64)
    return make_dataset(
        root.name, x, y, split_seed=split_seed, classes=classes, info={"source": str(root)}, **opts
    )
