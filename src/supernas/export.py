"""Export a finished run's network as a standalone file: state dict, TorchScript or ONNX.

Every export is reloaded and checked against the torch model on a batch of the run's own
test images (random inputs of the right shape where the data cannot be loaded), so a file
that loads but computes something else is never handed out. ONNX files are further checked
with onnx.checker and run in ONNX Runtime, whose batch-1 latency is measured beside torch's.

Rebuilding a `state_dict` export::

    info = json.load(open("arch.json"))
    space = supernas.get_space(info["space"], **info["space_options"])
    model = supernas.build_network(space, supernas.Arch.from_json(info))
    model.load_state_dict(torch.load("model.pt", weights_only=True))
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from supernas.errors import SupernasError
from supernas.io import read_json, save_checkpoint, write_bytes, write_json

FORMATS = ("state_dict", "torchscript", "onnx")
SUFFIX = {"state_dict": "pt", "torchscript": "ts.pt", "onnx": "onnx"}
ATOL = 1e-4
RTOL = 1e-3


@dataclass
class ExportResult:
    """What was written and how closely the reloaded file matches the torch model."""

    format: str
    path: Path
    max_abs_diff: float
    batch: str  # what it was checked on: "8 test images" or "8 random inputs"
    files: list[Path] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)  # median, batch 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": str(self.path),
            "files": [str(f) for f in self.files],
            "max_abs_diff": self.max_abs_diff,
            "batch": self.batch,
            "latency_ms": self.latency_ms,
        }


@dataclass
class FoundNetwork:
    """The found network of a run folder, with what an export needs to know about it."""

    model: nn.Module
    info: dict[str, Any]  # best_arch.json
    input_shape: tuple[int, ...]
    batch: torch.Tensor
    batch_kind: str

    @property
    def checked_on(self) -> str:
        return f"{len(self.batch)} {self.batch_kind}"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise SupernasError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    return fmt


def _real_batch(run_dir: Path, n: int) -> torch.Tensor | None:
    """The first n test images of the run's data, or None where the data cannot be loaded."""
    from supernas.config import RunConfig
    from supernas.data import load_data

    cfg_path = run_dir / "config.toml"
    if not cfg_path.is_file():
        return None
    try:
        cfg = RunConfig.load(cfg_path)
        data = load_data(
            cfg.data,
            data_dir=cfg.data_dir or None,
            max_train=cfg.max_train,
            max_val=cfg.max_val,
            image_size=cfg.image_size,
        )
    except (SupernasError, OSError):
        return None
    return data.x_test[:n].float()


def load_found(run_dir: str | Path, batch_size: int = 8) -> FoundNetwork:
    """best_arch.json + best_model.pt of a finished run, and a batch to check exports on."""
    from supernas.pipeline import load_model

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SupernasError(f"run folder not found: {run_dir}")
    if not (run_dir / "best_arch.json").is_file():
        what = (
            "an unfinished supernas run folder (finish it with `supernas run --out DIR --resume`)"
            if (run_dir / "config.toml").is_file()
            else "not a `supernas run` folder"
        )
        raise SupernasError(f"{run_dir} has no best_arch.json: {what}")
    if not (run_dir / "best_model.pt").is_file():
        raise SupernasError(f"{run_dir}/best_model.pt not found: the run has not finished")
    info = read_json(run_dir / "best_arch.json")
    model = load_model(run_dir)
    batch = _real_batch(run_dir, batch_size)
    if batch is not None:
        shape, kind = tuple(batch.shape[1:]), "test images"
    elif "input_shape" in info:
        shape, kind = tuple(int(d) for d in info["input_shape"]), "random inputs"
        batch = torch.randn(batch_size, *shape, generator=torch.Generator().manual_seed(0))
    else:
        raise SupernasError(
            f"cannot tell the input shape of {run_dir}: its data does not load and "
            "best_arch.json records no input_shape"
        )
    if "input_shape" in info and tuple(info["input_shape"]) != shape:
        raise SupernasError(
            f"the run's data gives inputs of shape {shape}, but the network was trained on "
            f"{tuple(info['input_shape'])}"
        )
    return FoundNetwork(model, info, shape, batch, kind)


def _max_diff(got: np.ndarray, want: np.ndarray, what: str) -> float:
    if got.shape != want.shape:
        raise SupernasError(f"{what} output has shape {got.shape}, torch gives {want.shape}")
    diff = float(np.max(np.abs(got - want)))
    if not np.allclose(got, want, rtol=RTOL, atol=ATOL):
        raise SupernasError(f"{what} output differs from torch (max abs diff {diff:.3g})")
    return diff


def export_state_dict(found: FoundNetwork, path: Path) -> ExportResult:
    from supernas.space import Arch, get_space
    from supernas.supernet import build_network

    arch_path = path.with_name(path.name.removesuffix(".pt") + ".arch.json")
    save_checkpoint(path, dict(found.model.state_dict()))
    write_json(arch_path, {**found.info, "input_shape": list(found.input_shape)})
    # the reload a user would do, from the two files alone
    info = read_json(arch_path)
    rebuilt = build_network(get_space(info["space"], **info["space_options"]), Arch.from_json(info))
    rebuilt.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    with torch.inference_mode():
        got = rebuilt.eval()(found.batch).numpy()
        want = found.model(found.batch).numpy()
    diff = _max_diff(got, want, "reloaded state dict")
    return ExportResult("state_dict", path, diff, found.checked_on, [path, arch_path])


def export_torchscript(found: FoundNetwork, path: Path) -> ExportResult:
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(found.model, found.batch[:1])
            torch.jit.save(traced, buf)
    except Exception as exc:  # tracing raises many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SupernasError(f"cannot trace the network to TorchScript: {first}") from None
    write_bytes(path, buf.getvalue())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        got = loaded(found.batch).numpy()
        want = found.model(found.batch).numpy()
    diff = _max_diff(got, want, "reloaded TorchScript")
    return ExportResult("torchscript", path, diff, found.checked_on, [path])


def export_onnx_file(found: FoundNetwork, path: Path, repeats: int = 50) -> ExportResult:
    """Batch-1 ONNX (static shape, as deployed for latency); each batch image checked in ORT."""
    from supernas.hardware.latency import export_onnx, make_runner, measure_interleaved, ort_session

    export_onnx(found.model, found.input_shape, path, rtol=RTOL, atol=ATOL)
    sess = ort_session(path)
    name = sess.get_inputs()[0].name
    got = np.concatenate([sess.run(None, {name: x[None].numpy()})[0] for x in found.batch])
    with torch.inference_mode():
        want = found.model(found.batch).numpy()
    diff = _max_diff(got, want, "ONNX Runtime")
    x1 = {name: found.batch[:1].numpy()}
    ort_ms, eager_ms = measure_interleaved(
        [lambda: sess.run(None, x1), make_runner(found.model, found.input_shape)],
        warmup=5,
        repeats=repeats,
    )
    latency = {"onnxruntime": ort_ms.median_ms, "torch_eager": eager_ms.median_ms}
    return ExportResult("onnx", path, diff, found.checked_on, [path], latency)


def export_run(
    run_dir: str | Path, fmt: str = "onnx", out: str | Path | None = None, repeats: int = 50
) -> ExportResult:
    """Export the found network of a finished run folder; check the file against torch.

    `out` defaults to RUN/export/model.<suffix>. Raises SupernasError on any mismatch.
    """
    check_format(fmt)
    if repeats < 1:
        raise SupernasError(f"repeats must be >= 1, got {repeats}")
    found = load_found(run_dir)
    path = Path(out) if out else Path(run_dir) / "export" / f"model.{SUFFIX[fmt]}"
    if path.is_dir():
        raise SupernasError(f"--out {path} is a folder; give a file path")
    if fmt == "state_dict":
        return export_state_dict(found, path)
    if fmt == "torchscript":
        return export_torchscript(found, path)
    return export_onnx_file(found, path, repeats)
