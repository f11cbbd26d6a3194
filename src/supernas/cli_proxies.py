"""`supernas proxies` (score archs with zero-cost proxies) and `supernas correlate`."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from supernas.cli import (
    DataDirOpt,
    QuietOpt,
    SeedOpt,
    SpaceOptOpt,
    _space_options,
    app,
    friendly,
    out_console,
)
from supernas.errors import SupernasError


def read_arch_csv(path: Path) -> list[str]:
    """The `arch` column of a CSV (other columns ignored), in file order."""
    if not path.is_file():
        raise SupernasError(f"file not found: {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "arch" not in reader.fieldnames:
            raise SupernasError(f"{path} has no 'arch' column (header: {reader.fieldnames})")
        archs = [row["arch"] for row in reader]
    if not archs:
        raise SupernasError(f"{path} lists no archs")
    return archs


def read_scores(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    """A scores CSV: the arch column and every other column as floats (empty cell = NaN)."""
    archs = read_arch_csv(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for name in [c for c in rows[0] if c != "arch"]:
        values = []
        for line, row in enumerate(rows, start=2):
            cell = (row[name] or "").strip()
            try:
                values.append(float(cell) if cell else math.nan)
            except ValueError:
                raise SupernasError(f"{path}, line {line}, column {name!r}: {cell!r}") from None
        cols[name] = values
    if not cols:
        raise SupernasError(f"{path} has no score column besides 'arch'")
    return archs, cols


def _cell(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:.10g}"


def _space(space: str, opts: dict[str, Any], data: str, data_dir: str) -> tuple[Any, Any]:
    """The space, fitted to the data's channels and classes unless its input size is fixed."""
    from supernas.data import load_data
    from supernas.proxies.batch import NATIVE_IMAGE_SIZE, RANDOM
    from supernas.space import get_space

    if data == RANDOM or space in NATIVE_IMAGE_SIZE:
        return get_space(space, **opts), None
    ds = load_data(data, data_dir=data_dir or None)
    fitted = {"in_channels": ds.in_channels, "num_classes": ds.num_classes, **opts}
    return get_space(space, **fitted), ds


@app.command()
@friendly
def proxies(
    space: Annotated[str, typer.Option("--space", help="search space")] = "nb201",
    space_opt: SpaceOptOpt = None,
    archs: Annotated[Path | None, typer.Option("--archs", help="CSV with an 'arch' column")] = None,
    sample: Annotated[int, typer.Option("--sample", help="score N sampled archs instead")] = 0,
    proxy_names: Annotated[
        str,
        typer.Option(
            "--proxies", help="comma list; ensembles: vote, vote:a+b+c, rankavg:a+b, az_nas"
        ),
    ] = "synflow,params,flops,nwot",
    data: Annotated[
        str, typer.Option("--data", help="random, digits, fashion-mnist, PATH.npz or a folder")
    ] = "random",
    data_dir: DataDirOpt = "",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    image_size: Annotated[
        int, typer.Option("--image-size", help="resize to N x N (0: nb201 32, else as is)")
    ] = 0,
    seed: SeedOpt = 0,
    out: Annotated[Path, typer.Option("--out", help="scores CSV")] = Path("scores.csv"),
    resume: Annotated[
        bool, typer.Option("--resume", help="continue a killed run from OUT.partial.json")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Score archs with zero-cost proxies: a CSV with 'arch' and one column per proxy."""
    import numpy as np

    from supernas.console import progress_bar
    from supernas.io import write_text
    from supernas.proxies import ProxyEstimator, proxy_batch

    names = [n.strip() for n in proxy_names.split(",") if n.strip()]
    if (archs is None) == (sample <= 0):
        raise SupernasError("give either --archs FILE or --sample N")
    sp, ds = _space(space, _space_options(space_opt), data, data_dir)
    if archs is not None:
        texts = read_arch_csv(archs)
        parsed = []
        for line, text in enumerate(texts, start=2):
            try:
                parsed.append(sp.parse(text))
            except SupernasError as exc:
                raise SupernasError(f"{archs}, line {line}: {exc}") from None
    else:
        rng = np.random.default_rng(seed)
        parsed = [sp.sample(rng) for _ in range(sample)]
    batch = proxy_batch(
        ds if ds is not None else data,
        sp,
        batch_size=batch_size,
        seed=seed,
        data_dir=data_dir or None,
        image_size=image_size or None,
    )
    est = ProxyEstimator(sp, names, batch, seed=seed)
    partial = out.with_name(out.name + ".partial.json")
    if partial.exists() and not resume:
        partial.unlink()
    with progress_bar("proxies", len(parsed), not quiet) as advance:
        est.on_arch = advance
        table = est.score_table(parsed, checkpoint=partial)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["arch", *names])
    for i, a in enumerate(parsed):
        w.writerow([str(a), *(_cell(table[n][i]) for n in names)])
    write_text(out, buf.getvalue())
    partial.unlink(missing_ok=True)
    summary = Table("proxy", "s / arch", "undefined (NaN)", title=f"{len(parsed)} archs -> {out}")
    for n in names:
        secs = est.seconds_for(n) / len(parsed)
        summary.add_row(n, f"{secs:.3f}", str(sum(math.isnan(v) for v in table[n])))
    out_console.print(summary)


@app.command()
@friendly
def correlate(
    scores: Annotated[Path, typer.Option("--scores", help="CSV from `supernas proxies`")],
    table: Annotated[
        list[Path], typer.Option("--table", help="ground-truth CSV(s) with an 'arch' column")
    ],
    target: Annotated[str, typer.Option("--target", help="true column, e.g. cifar10_test")],
    nan: Annotated[
        str, typer.Option("--nan", help="undefined scores: worst (ranked last) or drop")
    ] = "worst",
    top: Annotated[float, typer.Option("--top", help="top fraction for precision")] = 0.1,
    as_json: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    """Rank agreement of each score column with a table's column: rho, tau, top-k% precision."""
    import numpy as np

    from supernas.bench.correlate import correlate as corr
    from supernas.bench.table import load_tables
    from supernas.io import write_json

    if not 0 < top <= 1:
        raise SupernasError("--top must be in (0, 1]")
    archs, cols = read_scores(scores)
    tab = load_tables(table)
    sp = tab.space()
    truth_by_arch = tab.arch_values(target)
    truth = []
    for line, text in enumerate(archs, start=2):
        try:
            a = sp.parse(text)
        except SupernasError as exc:
            raise SupernasError(f"{scores}, line {line}: {exc}") from None
        if a not in truth_by_arch:
            raise SupernasError(f"{scores}, line {line}: arch {text} is not in the table")
        truth.append(truth_by_arch[a])
    res = corr(cols, truth, nan=nan, top=top)
    pct = f"top-{top:.0%} precision"
    view = Table("proxy", "Spearman rho", "Kendall tau", pct, "n", "NaN", title=f"vs {target}")
    for name, r in sorted(res.items(), key=lambda kv: -np.nan_to_num(kv[1]["spearman"], nan=-9)):
        view.add_row(
            name,
            f"{r['spearman']:.3f}",
            f"{r['kendall']:.3f}",
            f"{r['top_precision']:.3f}",
            str(r["n"]),
            str(r["n_nan"]),
        )
    out_console.print(view)
    if as_json is not None:
        write_json(
            as_json,
            {"scores": str(scores), "target": target, "nan": nan, "top": top, "proxies": res},
        )
