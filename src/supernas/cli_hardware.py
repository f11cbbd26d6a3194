"""`supernas hardware ...`: batch-1 CPU latency of one arch, latency LUTs and their check."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

hardware_app = typer.Typer(
    help="Hardware: latency measurement and lookup tables.", no_args_is_help=True
)
F = TypeVar("F", bound=Callable[..., Any])

SpaceOpt = Annotated[str, typer.Option("--space", help="search space, e.g. resnet18, nb201")]
SpaceOptsOpt = Annotated[
    list[str] | None, typer.Option("--space-opt", help="space option KEY=VALUE (repeatable)")
]
ShapeOpt = Annotated[str, typer.Option("--input-shape", help="C,H,W of one input (no batch dim)")]
BackendOpt = Annotated[str, typer.Option("--backend", help="eager or onnx")]
RepeatsOpt = Annotated[int, typer.Option("--repeats", help="timed calls per model")]
WarmupOpt = Annotated[int, typer.Option("--warmup", help="untimed calls first")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="intra-op threads")]
ClockOpt = Annotated[
    str,
    typer.Option(
        "--clock",
        help="auto (thread CPU time with 1 thread, else wall), cpu or wall; CPU time "
        "ignores time descheduled by other jobs on a shared machine",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


def _friendly(fn: F) -> F:
    """supernas.cli.friendly, looked up at call time: supernas.cli imports this module."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from supernas.cli import friendly

        return friendly(fn)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _input_shape(text: str) -> tuple[int, ...]:
    from supernas.errors import SupernasError

    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise SupernasError(f"--input-shape must look like 3,32,32, got {text!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise SupernasError(f"--input-shape must be positive integers, got {text!r}")
    return shape


def _space(name: str, opts: list[str] | None) -> Any:
    from supernas.config import parse_option
    from supernas.space import get_space

    return get_space(name, **dict(parse_option(s) for s in opts or []))


@contextmanager
def _stages(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress bar per stage, fed by the (stage, done, total) callbacks of lut.py."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    from supernas.console import console, progress_columns

    tasks: dict[str, Any] = {}
    with Progress(*progress_columns(), console=console) as prog:

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total)
            prog.update(tasks[stage], completed=done, total=total)

        yield update


@hardware_app.command()
@_friendly
def latency(
    space: SpaceOpt,
    arch: Annotated[str, typer.Option("--arch", help="arch string of the space")],
    input_shape: ShapeOpt = "3,32,32",
    space_opt: SpaceOptsOpt = None,
    backend: BackendOpt = "eager",
    warmup: WarmupOpt = 10,
    repeats: RepeatsOpt = 50,
    threads: ThreadsOpt = 1,
    clock: ClockOpt = "auto",
) -> None:
    """Measure one arch's batch-1 latency (median ms, p10-p90 in brackets)."""
    import torch

    from supernas.hardware import measure_latency
    from supernas.hardware.latency import check_backend
    from supernas.supernet import build_network

    check_backend(backend)
    sp = _space(space, space_opt)
    shape = _input_shape(input_shape)
    a = sp.parse(arch)
    torch.manual_seed(0)
    res = measure_latency(
        build_network(sp, a),
        shape,
        backend=backend,
        warmup=warmup,
        repeats=repeats,
        threads=threads,
        clock=clock,
    )
    print(
        f"{res.median_ms:.4f} ms  (p10 {res.p10:.4f}, p90 {res.p90:.4f}, n={res.repeats}, "
        f"{backend}, {threads} thread(s), {res.clock} clock)"
    )


@hardware_app.command()
@_friendly
def lut(
    space: SpaceOpt,
    out: Annotated[Path, typer.Option("--out", help="LUT JSON file to write")],
    input_shape: ShapeOpt = "3,32,32",
    space_opt: SpaceOptsOpt = None,
    backend: BackendOpt = "eager",
    warmup: WarmupOpt = 5,
    repeats: RepeatsOpt = 30,
    rounds: Annotated[int, typer.Option("--rounds", help="interleaved passes")] = 5,
    calibration: Annotated[
        int, typer.Option("--calibration", help="archs measured to fit the overhead term")
    ] = 5,
    threads: ThreadsOpt = 1,
    clock: ClockOpt = "auto",
    seed: Annotated[int, typer.Option("--seed", help="seed of the calibration archs")] = 0,
    quiet: QuietOpt = False,
) -> None:
    """Build a per-op latency lookup table covering every arch of the space."""
    from supernas.hardware import build_lut
    from supernas.hardware.latency import check_backend

    check_backend(backend)
    sp = _space(space, space_opt)
    shape = _input_shape(input_shape)
    with _stages(not quiet) as progress:
        table = build_lut(
            sp,
            shape,
            backend=backend,
            warmup=warmup,
            repeats=repeats,
            rounds=rounds,
            threads=threads,
            clock=clock,
            calibration=calibration,
            seed=seed,
            progress=progress,
        )
    table.save(out)
    print(f"{len(table.entries)} ops, overhead {table.overhead_ms:+.4f} ms; wrote {out}")


@hardware_app.command()
@_friendly
def validate(
    lut_path: Annotated[Path, typer.Option("--lut", help="LUT JSON from `hardware lut`")],
    archs: Annotated[int, typer.Option("--archs", help="random archs to measure")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="seed of the sampled archs")] = 0,
    warmup: WarmupOpt = 5,
    repeats: RepeatsOpt = 30,
    rounds: Annotated[int, typer.Option("--rounds", help="interleaved passes")] = 5,
    quiet: QuietOpt = False,
) -> None:
    """Measure random archs end to end; print Spearman rho and MAPE of the LUT's predictions."""
    from supernas.hardware import LatencyLUT, validate_lut
    from supernas.space import as_rng

    table = LatencyLUT.load(lut_path)
    sp = table.get_space()
    rng = as_rng(seed)
    sample = [sp.sample(rng) for _ in range(archs)]
    with _stages(not quiet) as progress:
        res = validate_lut(
            table, sp, sample, warmup=warmup, repeats=repeats, rounds=rounds, progress=progress
        )
    print(
        f"spearman {res['spearman']:.4f}  MAPE {res['mape']:.2f}%  n={res['n']} "
        f"({table.backend}, {table.threads} thread(s), {table.clock} clock)"
    )
