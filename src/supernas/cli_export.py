"""`supernas export` (the found network as a standalone file) and `supernas report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from supernas.cli import app, friendly, out_console


@app.command()
@friendly
def export(
    run_dir: Annotated[Path, typer.Argument(help="a finished `supernas run` folder")],
    fmt: Annotated[str, typer.Option("--format", help="state_dict, torchscript or onnx")] = "onnx",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="file to write (default RUN_DIR/export/model.<suffix>)"),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", help="timed batch-1 calls for the ONNX latency")
    ] = 50,
) -> None:
    """Export the run's found network with its weights, checked against the torch model.

    onnx also checks the file with onnx.checker and ONNX Runtime, and prints the batch-1
    latency of ONNX Runtime and of torch eager (one thread, median).
    """
    from supernas.export import ATOL, export_run

    res = export_run(run_dir, fmt, out, repeats=repeats)
    for f in res.files:
        out_console.print(f"wrote {f}", highlight=False, soft_wrap=True)
    out_console.print(
        f"{res.format}: reloaded output allclose to torch on {res.batch} "
        f"(max abs diff {res.max_abs_diff:.2g}, atol {ATOL:g})",
        highlight=False,
        soft_wrap=True,
    )
    if res.latency_ms:
        out_console.print(
            f"batch-1 latency (median, 1 thread): ONNX Runtime "
            f"{res.latency_ms['onnxruntime']:.3f} ms, torch eager "
            f"{res.latency_ms['torch_eager']:.3f} ms",
            highlight=False,
            soft_wrap=True,
        )
    if res.format == "state_dict":
        out_console.print(
            "rebuild: supernas.build_network(get_space(info['space'], **info['space_options']), "
            "Arch.from_json(info)).load_state_dict(torch.load(path, weights_only=True))",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
@friendly
def report(
    run_dir: Annotated[Path, typer.Argument(help="a finished `supernas run` folder")],
) -> None:
    """(Re)write RUN_DIR/report.html, report.md and the plots of a finished run."""
    from supernas.report import refresh_report

    path = refresh_report(run_dir)
    out_console.print(f"wrote {path}", highlight=False, soft_wrap=True)
