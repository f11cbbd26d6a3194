"""Atomic writes and safe checkpoint loading: nothing is lost when a run is killed mid-write."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

from supernas.errors import SupernasError


def _atomic(path: str | os.PathLike[str], mode: str, write: Callable[[IO[Any]], None]) -> Path:
    """Write to a temp file in the target folder, fsync, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return _atomic(path, "w", lambda f: f.write(text))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return _atomic(path, "wb", lambda f: f.write(data))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on `path` + '.lock': processes that share one results file
    (read it, add theirs, write it back) take turns instead of overwriting each other."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


#: `read_json`'s default for `missing`: a missing file is an error.
_REQUIRED: Any = object()


def read_json(path: str | os.PathLike[str], *, missing: Any = _REQUIRED) -> Any:
    """The file's JSON; `missing` is returned when there is no file yet (a first run), which
    is an error unless `missing` is given."""
    path = Path(path)
    if not path.is_file():
        if missing is not _REQUIRED:
            return missing
        raise SupernasError(f"file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SupernasError(f"{path} is not valid JSON ({exc})") from None


def save_checkpoint(path: str | os.PathLike[str], obj: dict[str, Any]) -> Path:
    """torch.save to a temp file, then rename: a killed run leaves the last good checkpoint."""
    return _atomic(path, "wb", lambda f: torch.save(obj, f))


def _torch_load(path: Path, what: str) -> Any:
    """torch.load with weights_only=True; a missing or corrupt file is a clear error."""
    if not path.is_file():
        raise SupernasError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise SupernasError(
            f"cannot read {what.split()[0]} {path}: corrupt or truncated ({_reason(exc)})"
        ) from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A supernas checkpoint (a dict with 'format'), read safely (`_torch_load`)."""
    path = Path(path)
    obj = _torch_load(path, "checkpoint")
    if not isinstance(obj, dict) or "format" not in obj:
        raise SupernasError(f"{path} is not a supernas checkpoint")
    return obj


def load_weights(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A plain state dict (model.pt, best_model.pt), read safely (`_torch_load`)."""
    path = Path(path)
    obj = _torch_load(path, "weights file")
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SupernasError(f"{path} is not a state dict of tensors (a model.pt)")
    return obj


def _reason(exc: Exception) -> str:
    """The gist of a torch.load failure, without torch's advice to drop weights_only."""
    text = str(exc).strip()
    if text.startswith("Weights only load failed"):
        return "not a file of tensors and plain values that weights_only=True accepts"
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.split(". ")[0].rstrip(".")
