"""Batch-1 CPU latency of one model, in eager PyTorch or in ONNX Runtime.

Why medians of many timed calls at a fixed thread count: single calls on a shared CPU
are dominated by scheduler noise; the median (with p10/p90 as spread) is stable, and one
thread makes numbers comparable across machines with different core counts and stops
concurrent jobs from fighting over cores. `measure_interleaved` times several models in
rounds so that drift in machine load hits all of them alike.

Clocks: with one thread both torch and ONNX Runtime compute in the calling thread, so its
CPU time (`time.thread_time`, clock="cpu") is the forward's compute time *without* the
time the thread sat descheduled while other jobs ran. On a shared, oversubscribed machine
wall-clock medians can double (measured here: 7.7 ms wall vs 3.8 ms CPU for one net whose
wall p10 was 3.4 ms); CPU time is what the model takes on an idle core. clock="auto"
(default) uses CPU time with one thread and wall time (`time.perf_counter`) otherwise,
since the calling thread's CPU time would miss the work of the other threads.

ONNX export uses torch's documented default exporter (`torch.onnx.export(dynamo=True)`,
which needs `onnxscript`); where onnxscript is missing it falls back to the legacy
TorchScript exporter. Sessions run on CPUExecutionProvider with ORT's default graph
optimisations (node fusion), i.e. as a model would be deployed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from supernas.errors import SupernasError

BACKENDS = ("eager", "onnx")
CLOCKS = ("auto", "cpu", "wall")
Runner = Callable[[], Any]


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one batch-1 forward in milliseconds: median, 10th and 90th percentile."""

    median_ms: float
    p10: float
    p90: float
    repeats: int
    clock: str = "wall"

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise SupernasError(f"unknown latency backend {backend!r}; valid: {', '.join(BACKENDS)}")
    return backend


def resolve_clock(clock: str, threads: int) -> str:
    """'auto' -> 'cpu' with one thread, 'wall' otherwise; 'cpu' with threads > 1 is refused."""
    if clock not in CLOCKS:
        raise SupernasError(f"unknown clock {clock!r}; valid: {', '.join(CLOCKS)}")
    if clock == "auto":
        return "cpu" if threads == 1 else "wall"
    if clock == "cpu" and threads != 1:
        raise SupernasError("clock='cpu' needs threads=1 (it times only the calling thread)")
    return clock


def _shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise SupernasError(f"input shape must be integers, got {input_shape!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise SupernasError(f"input shape must be positive integers (no batch dim), got {shape}")
    return shape


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch with `n` intra-op threads, restoring the previous count afterwards."""
    if n < 1:
        raise SupernasError(f"threads must be >= 1, got {n}")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """The exporter logs and warns a lot (missing torchvision ops, deprecations): silence it."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()):
                yield
    finally:
        logger.setLevel(level)


def onnx_bytes(model: nn.Module, input_shape: Sequence[int]) -> bytes:
    """Serialized ONNX model of `model` in eval mode for one batch-1 input named 'x'."""
    shape = _shape(input_shape)
    x = torch.randn(1, *shape)
    was_training = model.training
    model.eval()
    try:
        with _quiet_export():
            try:
                import onnxscript  # noqa: F401  (needed by the dynamo exporter)
            except ImportError:
                buf = io.BytesIO()
                torch.onnx.export(model, (x,), buf, input_names=["x"], dynamo=False)
                return buf.getvalue()
            program = torch.onnx.export(model, (x,), input_names=["x"], dynamo=True)
            return _split_passthrough(program.model_proto).SerializeToString()
    except SupernasError:
        raise
    except Exception as exc:  # the exporters raise many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SupernasError(f"cannot export {type(model).__name__} to ONNX: {first}") from None
    finally:
        model.train(was_training)


def _split_passthrough(proto: Any) -> Any:
    """Keep graph input names unique, as ORT requires, for identity-like models.

    Why: for an op that returns its input the exporter may emit a node or an output that
    reuses the input's name ('x' -> 'x'); ORT rejects that as a duplicate definition.
    """
    from onnx import helper

    graph = proto.graph
    inputs = {i.name for i in graph.input}
    rename: dict[str, str] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
        for i, name in enumerate(node.output):
            if name in inputs:
                rename[name] = node.output[i] = f"{name}_out{len(rename)}"
    for n, out in enumerate(graph.output):
        out.name = rename.get(out.name, out.name)
        if out.name in inputs:
            new = f"output_{n}"
            graph.node.append(helper.make_node("Identity", [out.name], [new]))
            out.name = new
    return proto


def ort_session(data: bytes | str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with a fixed intra-op thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    src = data if isinstance(data, bytes) else str(data)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def export_onnx(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> Path:
    """Export to `path` (atomically), check it with onnx.checker, and verify ORT against torch.

    Why verify: an export that runs but computes something else would silently poison every
    latency and accuracy number taken from it. Raises SupernasError on any mismatch.
    """
    import onnx

    from supernas.io import write_bytes

    shape = _shape(input_shape)
    data = onnx_bytes(model, shape)
    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except Exception as exc:
        raise SupernasError(f"exported ONNX model fails onnx.checker: {exc}") from None
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            want = model(x).numpy()
    finally:
        model.train(was_training)
    sess = ort_session(data)
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
        diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
        raise SupernasError(
            f"ONNX Runtime output differs from torch (max abs diff {diff:.3g}, shapes "
            f"{got.shape} vs {want.shape}); not writing {path}"
        )
    return write_bytes(path, data)


def make_runner(
    model: nn.Module, input_shape: Sequence[int], backend: str = "eager", threads: int = 1
) -> Runner:
    """A zero-argument callable running one batch-1 forward (inputs prepared up front).

    Puts `model` in eval mode (BN uses running stats, as deployed) and leaves it there.
    """
    check_backend(backend)
    shape = _shape(input_shape)
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(0))
    if backend == "onnx":
        sess = ort_session(onnx_bytes(model, shape), threads)
        feed = {sess.get_inputs()[0].name: x.numpy()}
        return lambda: sess.run(None, feed)
    model.eval()

    def run() -> Any:
        with torch.inference_mode():
            return model(x)

    return run


def _summary(samples: list[float], clock: str) -> LatencyResult:
    ms = np.asarray(samples) * 1e3
    return LatencyResult(
        median_ms=float(statistics.median(ms)),
        p10=float(np.percentile(ms, 10)),
        p90=float(np.percentile(ms, 90)),
        repeats=len(samples),
        clock=clock,
    )


def measure_interleaved(
    runners: Sequence[Runner],
    *,
    warmup: int = 5,
    repeats: int = 30,
    rounds: int = 5,
    threads: int = 1,
    clock: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> list[LatencyResult]:
    """Time several runners in `rounds` round-robin passes of about repeats/rounds calls each.

    Why interleave: on a shared machine load changes over seconds; timing runner A fully
    and then runner B would bias the A/B comparison, round-robin spreads drift evenly.
    `progress(i)` is called after runner i's first timed pass (for progress bars).
    """
    if repeats < 1 or warmup < 0 or rounds < 1:
        raise SupernasError(
            f"need repeats >= 1, warmup >= 0, rounds >= 1 (got {repeats}, {warmup}, {rounds})"
        )
    clock = resolve_clock(clock, threads)
    now = time.thread_time if clock == "cpu" else time.perf_counter
    rounds = min(rounds, repeats)
    per = [repeats // rounds + (r < repeats % rounds) for r in range(rounds)]
    samples: list[list[float]] = [[] for _ in runners]
    with torch_threads(threads):
        for run in runners:
            for _ in range(warmup):
                run()
        for r, n in enumerate(per):
            for i, run in enumerate(runners):
                for _ in range(n):
                    t0 = now()
                    run()
                    samples[i].append(now() - t0)
                if r == 0 and progress is not None:
                    progress(i)
    return [_summary(s, clock) for s in samples]


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    backend: str = "eager",
    warmup: int = 10,
    repeats: int = 50,
    threads: int = 1,
    clock: str = "auto",
) -> LatencyResult:
    """Batch-1 latency of `model` on one input of shape `input_shape` (no batch dim).

    eager: torch in eval mode under inference_mode; onnx: exported in memory and run by an
    ONNX Runtime CPU session. Both with `threads` intra-op threads; `clock` as above.
    """
    was_training = model.training
    try:
        runner = make_runner(model, input_shape, backend, threads)
        res = measure_interleaved(
            [runner], warmup=warmup, repeats=repeats, threads=threads, clock=clock
        )
    finally:
        model.train(was_training)
    return res[0]
