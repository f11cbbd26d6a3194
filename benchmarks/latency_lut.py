"""How well a per-op latency LUT ranks whole networks, in eager PyTorch and ONNX Runtime.

For each space and backend, in a fresh process: a LUT is built (every distinct op timed
once, overhead fitted on 5 calibration archs drawn with seed 1), then `validate_lut`
measures 30 archs drawn with a fixed seed (0) end to end, interleaved. Why one process per
(space, backend): eager timings in a process that also held many ONNX Runtime sessions
drifted by milliseconds (allocator state, we think), so the jobs are kept apart. The
eager/onnx ratio is the mean over archs of median(eager) / median(onnx), from the two
validations. All timings: batch 1, one intra-op thread (torch.set_num_threads(1), ORT
intra_op_num_threads=1), medians of `--repeats` calls after `--warmup` calls, in
`--rounds` round-robin passes, timed with `--clock` (default cpu: the calling thread's
CPU time, which leaves out the time the thread waits while other jobs on a shared machine
run; 'wall' for wall-clock time).
Goal: Spearman >= 0.9 for both spaces on this CPU.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import onnxruntime
import torch
from rich.console import Console
from rich.table import Table

from supernas.hardware.lut import build_lut, validate_lut
from supernas.io import write_json
from supernas.space import get_space

BACKENDS = ("eager", "onnx")


def spaces(args: argparse.Namespace) -> list[tuple[str, dict[str, Any], tuple[int, ...]]]:
    size = args.image_size
    return [
        ("resnet18", {"base_width": args.base_width}, (3, size, size)),
        ("nb201", {"C": args.nb201_c, "N": args.nb201_n}, (3, size, size)),
    ]


def bench_job(
    name: str, opts: dict[str, Any], shape: tuple[int, ...], backend: str, args: dict[str, Any]
) -> dict[str, Any]:
    """Build one LUT and validate it; runs in its own fresh process (see module doc)."""
    torch.set_num_threads(1)
    space = get_space(name, **opts)
    timing = {k: args[k] for k in ("warmup", "repeats", "rounds")}
    t0 = time.perf_counter()
    lut = build_lut(
        space, shape, backend=backend, calibration=5, seed=1, clock=args["clock"], **timing
    )
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(args["seed"])
    archs = [space.sample(rng) for _ in range(args["archs"])]
    res = validate_lut(lut, space, archs, **timing)
    return {
        **{k: res[k] for k in ("spearman", "mape", "n", "measured_ms", "predicted_ms")},
        "ops": len(lut.entries),
        "overhead_ms": lut.overhead_ms,
        "build_s": build_s,
        "archs": [str(a) for a in archs],
    }


def bench_space(
    name: str, opts: dict[str, Any], shape: tuple[int, ...], args: argparse.Namespace
) -> dict[str, Any]:
    out: dict[str, Any] = {"space": name, "options": opts, "input_shape": list(shape)}
    for backend in BACKENDS:
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            out[backend] = pool.submit(bench_job, name, opts, shape, backend, vars(args)).result()
    out["archs"] = out["eager"].pop("archs")
    assert out["onnx"].pop("archs") == out["archs"]
    ratio = np.divide(out["eager"]["measured_ms"], out["onnx"]["measured_ms"])
    out["eager_over_onnx"] = float(np.mean(ratio))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--archs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-width", type=int, default=16)
    p.add_argument("--nb201-c", type=int, default=16)
    p.add_argument("--nb201-n", type=int, default=5)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--out", default="benchmarks/results/latency_lut.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, opts, shape in spaces(args):
        t0 = time.perf_counter()
        rows.append(bench_space(name, opts, shape, args))
        rows[-1]["seconds"] = time.perf_counter() - t0
    table = Table(
        title=f"latency LUT, batch 1, 1 thread, {args.clock} clock",
    )
    for col in (
        "space",
        "backend",
        "ops",
        "spearman",
        "MAPE %",
        "overhead ms",
        "median ms",
        "build s",
    ):
        table.add_column(col)
    for r in rows:
        for b in BACKENDS:
            d = r[b]
            table.add_row(
                f"{r['space']} " + ",".join(f"{k}={v}" for k, v in r["options"].items()),
                b,
                str(d["ops"]),
                f"{d['spearman']:.3f}",
                f"{d['mape']:.1f}",
                f"{d['overhead_ms']:+.3f}",
                f"{np.median(d['measured_ms']):.3f}",
                f"{d['build_s']:.0f}",
            )
    console = Console()
    console.print(table)
    for r in rows:
        console.print(f"{r['space']}: mean eager/onnx latency ratio {r['eager_over_onnx']:.2f}")
    write_json(
        args.out,
        {
            "benchmark": "latency_lut",
            "settings": vars(args),
            "threads": 1,
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "cpu_count": os.cpu_count(),
                "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
            "note": "shared, noisy 2-core machine: other jobs ran at the same time",
            "results": rows,
        },
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
