"""Datasets: deterministic disjoint splits, readers checked on files we write, clear errors."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from supernas.data import Dataset, load_data, read_idx
from supernas.data.sources import FASHION_MNIST_DIR
from supernas.errors import SupernasError


def test_digits_split_is_deterministic_disjoint_and_standardised(digits: Dataset) -> None:
    again = load_data("digits")
    assert torch.equal(digits.x_train, again.x_train)
    assert len(digits.x_train) + len(digits.x_val) + len(digits.x_test) == 1797
    rows = {tuple(x.flatten().tolist()) for x in digits.x_val}
    overlap = sum(tuple(x.flatten().tolist()) in rows for x in digits.x_test)
    assert overlap < 5  # digits has a few exact duplicate images; splits are index-disjoint
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert abs(float(digits.x_train.mean())) < 1e-4
    counts = torch.bincount(digits.y_train)
    assert counts.min() >= 100  # stratified: every class well represented


def test_other_split_seed_changes_split() -> None:
    a, b = load_data("digits", split_seed=0), load_data("digits", split_seed=1)
    assert not torch.equal(a.y_train, b.y_train)


def test_batches_cover_split_once_and_shuffle_with_seed(digits: Dataset) -> None:
    ys = torch.cat([y for _, y in digits.batches("val", 64)])
    assert torch.equal(ys, digits.y_val)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    b1 = next(digits.batches("train", 32, shuffle=True, generator=g1))[1]
    b2 = next(digits.batches("train", 32, shuffle=True, generator=g2))[1]
    assert torch.equal(b1, b2)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    code = {np.uint8: 0x08}[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", n) for n in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def test_idx_reader_round_trip_and_truncation(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)
    with gzip.open(tmp_path / "a.gz") as f:
        raw = f.read()
    with gzip.open(tmp_path / "b.gz", "wb") as f:
        f.write(raw[:-5])
    with pytest.raises(SupernasError, match="truncated"):
        read_idx(tmp_path / "b.gz")


def test_fashion_mnist_from_a_folder_of_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        _write_idx(
            tmp_path / f"{prefix}-images-idx3-ubyte.gz",
            rng.integers(0, 255, (n, 28, 28), dtype=np.uint8),
        )
        _write_idx(
            tmp_path / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8)
        )
    d = load_data("fashion-mnist", data_dir=str(tmp_path))
    assert d.input_shape == (1, 28, 28)
    assert len(d.x_test) == 20 and len(d.x_train) + len(d.x_val) == 60


def test_fashion_mnist_missing_folder_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(SupernasError, match="apt-get install dataset-fashion-mnist"):
        load_data("fashion-mnist", data_dir=str(tmp_path / "nope"))


@pytest.mark.skipif(
    not Path(FASHION_MNIST_DIR).is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist_subset() -> None:
    d = load_data("fashion-mnist", max_train=1000)
    assert len(d.x_train) == 1000 and len(d.x_test) == 10000
    assert d.summary()["train_class_counts"] == [100] * 10


def test_max_train_and_max_val_keep_stratified_subsets() -> None:
    d = load_data("digits", max_train=200, max_val=100)
    # per-class rounding: "at most N", within one image per class of N
    assert 190 <= len(d.x_train) <= 200 and 90 <= len(d.x_val) <= 100
    assert len(d.x_test) == 359
    assert torch.bincount(d.y_val).min() >= 9
    assert torch.equal(d.y_val, load_data("digits", max_val=100).y_val)  # same val images


def test_npz_user_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mine.npz", x=rng.random((100, 12, 12, 3)), y=np.arange(100) % 4)
    d = load_data(str(tmp_path / "mine.npz"))
    assert d.input_shape == (3, 12, 12) and d.num_classes == 4
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 100


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((0, 8, 8)), "y": np.zeros(0, dtype=int)}, "empty"),
        ({"x": np.zeros((10, 8, 8)), "y": np.zeros(9, dtype=int)}, "10 images but 9 labels"),
        ({"x": np.full((10, 8, 8), np.nan), "y": np.arange(10) % 2}, "NaN"),
        ({"a": np.zeros(3)}, "must hold arrays 'x' and 'y'"),
    ],
)
def test_bad_npz_gives_clear_error(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(SupernasError, match=message):
        load_data(str(tmp_path / "bad.npz"))


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(SupernasError, match="valid: digits, fashion-mnist, folder, npz"):
        load_data("cifar1000")


def test_atomic_writes_replace_whole_files_with_normal_permissions(tmp_path: Path) -> None:
    import os

    from supernas.io import write_json, write_text

    p = write_text(tmp_path / "a.txt", "one")
    write_json(p, {"two": 2})
    assert p.read_text().strip().startswith("{") and len(list(tmp_path.iterdir())) == 1
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_read_json_returns_missing_only_for_an_absent_file(tmp_path: Path) -> None:
    from supernas.io import read_json, write_json

    p = tmp_path / "r.json"
    with pytest.raises(SupernasError, match="file not found"):
        read_json(p)
    assert read_json(p, missing={"runs": []}) == {"runs": []}
    write_json(p, {"runs": [1]})
    assert read_json(p, missing={}) == {"runs": [1]}
    p.write_text("{broken")
    with pytest.raises(SupernasError, match="not valid JSON"):
        read_json(p, missing={})


def test_locked_makes_processes_take_turns(tmp_path: Path) -> None:
    import fcntl

    from supernas.io import locked

    p = tmp_path / "runs" / "r.json"
    # another open file description (as another process would hold) cannot take it meanwhile
    with locked(p), open(p.with_name("r.json.lock")) as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(p.with_name("r.json.lock")) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released on exit


def _write_folder(
    root: Path, sizes: dict[str, tuple[int, int]], n: int = 10, mode: str = "RGB"
) -> None:
    from PIL import Image

    for k, (name, size) in enumerate(sizes.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            shade = 255 * k if mode == "L" else (255 * k, 0, 0)
            Image.new(mode, size, shade).save(root / name / f"{i}.png")


def test_image_folder_reads_classes_sizes_and_pixels(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs", {"cat": (12, 12), "dog": (12, 12)})
    d = load_data(str(tmp_path / "imgs"))
    assert d.classes == ["cat", "dog"] and d.num_classes == 2
    assert d.input_shape == (3, 12, 12)
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 20
    # class 0 is black, class 1 red: the red channel separates them, the others do not
    x, y = d.x_train, d.y_train
    assert x[y == 0, 0].mean() < x[y == 1, 0].mean()
    assert torch.allclose(x[y == 0, 1], x[y == 1, 1])


def test_image_folder_resizes_and_keeps_grayscale(tmp_path: Path) -> None:
    _write_folder(tmp_path / "g", {"a": (9, 9), "b": (16, 16)}, mode="L")
    with pytest.raises(SupernasError, match=r"differ in size.*--image-size"):
        load_data(str(tmp_path / "g"))
    d = load_data(str(tmp_path / "g"), image_size=8)
    assert d.input_shape == (1, 8, 8)


@pytest.mark.parametrize(
    ("layout", "message"),
    [("one_class", "at least 2"), ("empty_class", "holds no images"), ("bad_file", "cannot read")],
)
def test_bad_image_folders_give_clear_errors(tmp_path: Path, layout: str, message: str) -> None:
    root = tmp_path / "d"
    _write_folder(root, {"a": (8, 8)} if layout == "one_class" else {"a": (8, 8), "b": (8, 8)})
    if layout == "empty_class":
        (root / "c").mkdir()
    if layout == "bad_file":
        (root / "b" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(SupernasError, match=message):
        load_data(str(root))


def test_image_size_resizes_any_dataset() -> None:
    d = load_data("digits")
    small = load_data("digits", image_size=4)
    assert small.image_size == (4, 4) and small.info["resized_to"] == 4
    # area resizing to half size is the mean of each 2x2 patch
    want = d.x_val.reshape(-1, 1, 4, 2, 4, 2).mean((3, 5))
    torch.testing.assert_close(small.x_val, want)
    big = load_data("digits", image_size=16)
    assert big.x_test.shape[1:] == (1, 16, 16) and torch.equal(big.y_test, d.y_test)
    with pytest.raises(SupernasError, match="at least 1"):
        load_data("digits", image_size=-3)
