"""Options shared by the `supernas` commands (typer `Annotated` aliases), in one place.

Why a module of its own: `cli.py` and the sub-apps (`cli_bench`, `cli_proxies`, ...) all
take the same data, space and seed options, and a sub-app importing `cli.py` at import
time would be circular.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataOpt = Annotated[
    str, typer.Option("--data", help="digits, fashion-mnist, PATH.npz or a folder of images")
]
DataDirOpt = Annotated[
    str, typer.Option("--data-dir", help="folder of the Fashion-MNIST IDX files")
]
MaxTrainOpt = Annotated[
    int, typer.Option("--max-train", help="use at most N training images (0 = all)")
]
MaxValOpt = Annotated[
    int, typer.Option("--max-val", help="use at most N validation images (0 = all)")
]
SpaceOptOpt = Annotated[
    list[str] | None, typer.Option("--space-opt", help="space option KEY=VALUE, e.g. base_width=16")
]
ConstraintOpt = Annotated[
    list[str] | None,
    typer.Option("--constraint", help="e.g. 'params<=2e5' or 'flops<1e7' (repeatable)"),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed for every random choice")]
LutOpt = Annotated[
    Path | None,
    typer.Option("--lut", help="latency LUT (`supernas hardware lut`) for latency_ms"),
]
StrategyOptOpt = Annotated[
    list[str] | None,
    typer.Option("--strategy-opt", help="strategy option KEY=VALUE, e.g. population=50"),
]
ImageSizeOpt = Annotated[
    int, typer.Option("--image-size", help="resize the images to N x N (0 = as is)")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
