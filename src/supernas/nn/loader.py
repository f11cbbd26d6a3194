"""`--model path/to/file.py:factory`: import a user's file and register its factory by name."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from supernas.errors import SupernasError
from supernas.nn.model_space import call_factory, register_model, space_of

FORM = "--model must look like path/to/file.py:factory"


def model_name(spec: str) -> str:
    """The space name of a model spec: 'nets/tiny.py:build' -> 'tiny.build'."""
    path, factory = _split(spec)
    return f"{Path(path).stem}.{factory}"


def _split(spec: str) -> tuple[str, str]:
    path, sep, factory = str(spec).rpartition(":")
    if not sep or not path or not factory.isidentifier():
        raise SupernasError(f"{FORM}, got {spec!r}")
    return path, factory


def register_model_file(spec: str) -> tuple[str, str]:
    """Import `file.py`, register its `factory` under `model_name(spec)`.

    Returns (space name, spec with the file's absolute path), the form saved in a run's
    config so that `--resume` finds the file from any working directory.
    """
    path_text, factory_name = _split(spec)
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise SupernasError(f"model file not found: {path}")
    if path.suffix != ".py":
        raise SupernasError(f"model file {path} is not a .py file ({FORM})")
    path = path.resolve()
    digest = hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest()
    module_name = f"supernas_user_{path.stem}_{digest}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise SupernasError(f"cannot import {path}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up here
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise SupernasError(f"cannot import {path}: {type(exc).__name__}: {first}") from exc
    factory = getattr(module, factory_name, None)
    if factory is None or not callable(factory):
        found = sorted(
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", None) == module_name
        )
        what = "not callable" if factory is not None else "not found"
        raise SupernasError(
            f"factory {factory_name!r} {what} in {path}; callables defined there: "
            + (", ".join(found) or "(none)")
        )
    name = f"{path.stem}.{factory_name}"
    _probe(name, factory)
    register_model(name, factory)
    return name, f"{path}:{factory_name}"


def _probe(name: str, factory: Any) -> None:
    """Build the network once before registering it, when the factory needs no arguments.

    Why: a factory that returns no choice blocks should be refused here, not left in the
    registry to break `supernas spaces` later.
    """
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return
    if any(
        p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params
    ):
        return
    space_of(call_factory(name, factory, {}), name)


def register_run_model(run_dir: str | Path) -> None:
    """Register the model of a run folder whose config.toml names one (for reloading).

    Reads only `[run] model`, so a folder of a built-in space (or no config) is a no-op.
    """
    from supernas.config import tomllib  # tomli before Python 3.11

    cfg_path = Path(run_dir) / "config.toml"
    if not cfg_path.is_file():
        return
    try:
        model = tomllib.loads(cfg_path.read_text()).get("run", {}).get("model", "")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
        return  # not a run's config: whoever needs the space says what is missing
    if model:
        register_model_file(str(model))
