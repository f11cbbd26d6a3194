"""`supernas trust`: an estimator's ranking against a multi-seed ground-truth table.

Writes DIR/trust.json, DIR/trust.md and DIR/trust_scatter.png; the meaning of the numbers
and of the verdict is in docs/trust.md.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from supernas.cli import _load_data, _space_options, app, friendly, out_console
from supernas.cli_options import DataDirOpt, ImageSizeOpt, MaxValOpt, QuietOpt, SeedOpt, SpaceOptOpt
from supernas.errors import SupernasError

NO_DATA = ("table",)  # estimator kinds that never look at images


def _meta(table: Path) -> dict[str, Any]:
    """The table's `<file>.meta.json` (space, options, data, recipe), or {} without one."""
    from supernas.io import read_json

    path = table.with_name(table.name + ".meta.json")
    meta = read_json(path, missing={})
    if not isinstance(meta, dict):
        raise SupernasError(f"{path} is not a JSON object")
    return meta


def _space_and_data(
    tab: Any,
    meta: dict[str, Any],
    kind: str,
    space: str | None,
    space_opt: list[str] | None,
    data: str | None,
    data_dir: str,
    max_val: int,
    image_size: int,
) -> tuple[Any, Any]:
    """The space (--space, else the meta's, else guessed from the archs) and the data.

    Options: the meta's (for its own space), then --space-opt; fitted to the data's
    channels and classes unless given, as `supernas run` builds its space.
    """
    from supernas.bench.build import data_options
    from supernas.space import get_space

    name = space or meta.get("space") or tab.space().name
    opts = dict(meta.get("space_options") or {}) if name == meta.get("space") else {}
    opts.update(_space_options(space_opt))
    ds: Any = None
    data_name = data or meta.get("data") or "digits"
    if kind == "proxy" and data_name == "random":
        ds = "random"
    elif kind not in NO_DATA:
        # the table's own data (subset sizes, resolution) unless the user names other data
        like = data_options(meta) if not data and meta.get("data") else {}
        try:
            ds = _load_data(
                data_name,
                data_dir,
                like.get("max_train", 0),
                max_val or like.get("max_val", 0),
                image_size or like.get("image_size", 0),
            )
        except SupernasError as exc:
            if data:
                raise
            raise SupernasError(
                f"{exc} (data {data_name!r} from the table's meta; pass --data)"
            ) from None
        opts = {"in_channels": ds.in_channels, "num_classes": ds.num_classes, **opts}
    return get_space(name, **opts), ds


def _score(est: Any, archs: list[Any], quiet: bool) -> list[float]:
    """All scores, with a progress bar (estimators without `on_arch` go in chunks)."""
    from supernas.console import progress_bar

    with progress_bar("trust", len(archs), not quiet) as advance:
        if hasattr(est, "on_arch"):
            est.on_arch = advance
            return [float(v) for v in est.score(archs)]
        out: list[float] = []
        for i in range(0, len(archs), 16):
            chunk = archs[i : i + 16]
            out += [float(v) for v in est.score(chunk)]
            advance(len(chunk))
        return out


def scatter_plot(
    path: Path, estimate: list[float], truth: list[float], title: str, target: str
) -> Path:
    """Estimate vs truth, the estimator's top-1 in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from supernas.cli_bench import _save_png

    e, t = np.asarray(estimate, dtype=float), np.asarray(truth, dtype=float)
    ok = np.isfinite(e)
    fig, ax = plt.subplots(figsize=(5, 3.8))
    ax.scatter(e[ok], t[ok], s=12, alpha=0.6)
    if ok.any():
        best = int(np.argmax(np.where(ok, e, -np.inf)))
        ax.scatter([e[best]], [t[best]], s=40, color="red", label="estimator's top-1")
        ax.legend(fontsize=7)
    ax.set_xlabel("estimate")
    ax.set_ylabel(f"true {target} (seed mean)")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    return _save_png(fig, path)


def _f(v: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


def _rows(m: dict[str, Any], ceiling: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        ("Kendall tau", _f(m["kendall"])),
        ("Spearman rho", _f(m["spearman"])),
        ("top-10% precision", _f(m["top_precision"])),
        *((f"top-{k} overlap", _f(v)) for k, v in m["top_k"].items()),
        ("regret of top-1", _f(m["regret"], 4)),
        ("seed ceiling tau", _f(ceiling["kendall"])),
        ("seed ceiling rho", _f(ceiling["spearman"])),
        ("mean abs seed difference", _f(ceiling["mean_abs_seed_diff"], 4)),
        ("fraction of ceiling", _f(m["fraction_of_ceiling"], 2)),
        ("archs", str(m["n"])),
    ]
    return rows


def _markdown(res: dict[str, Any]) -> str:
    lines = [
        "# Trust report",
        "",
        f"Estimator `{res['estimator']}` against `{res['table']}` ({res['target']}, "
        f"seed mean), {res['n']} archs of space `{res['space']['name']}`.",
        "",
        f"**{res['verdict']}**",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in _rows(res["metrics"], res["ceiling"])),
        "",
        "![estimate vs truth](trust_scatter.png)",
        "",
        "What the numbers mean: docs/trust.md.",
        "",
    ]
    return "\n".join(lines)


@app.command()
@friendly
def trust(
    estimator: Annotated[
        str,
        typer.Option(
            "--estimator",
            help="supernet:PATH, proxy:NAME, params, flops or table:FILE:COLUMN",
        ),
    ],
    table: Annotated[Path, typer.Option("--table", help="ground-truth CSV (one row per seed)")],
    out: Annotated[Path, typer.Option("--out", help="folder for trust.json, .md and .png")],
    target: Annotated[str, typer.Option("--target", help="true column")] = "test_accuracy",
    space: Annotated[
        str | None, typer.Option("--space", help="default: the table's .meta.json")
    ] = None,
    space_opt: SpaceOptOpt = None,
    data: Annotated[
        str | None, typer.Option("--data", help="default: the table's .meta.json, else digits")
    ] = None,
    data_dir: DataDirOpt = "",
    max_val: MaxValOpt = 0,
    image_size: ImageSizeOpt = 0,
    max_archs: Annotated[
        int, typer.Option("--max-archs", help="score a seeded subset of N archs (0 = all)")
    ] = 0,
    recal_batches: Annotated[int, typer.Option("--recal-batches", help="supernet")] = 8,
    batch_size: Annotated[int, typer.Option("--batch-size", help="proxy")] = 64,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """How far to trust an estimator's ranking: tau, rho, top-k and regret against a
    ground-truth table, next to the table's own seed-vs-seed agreement (docs/trust.md)."""
    import numpy as np

    from supernas.bench.table import load_tables
    from supernas.bench.trust import create_estimator, noise_ceiling, trust_metrics, verdict
    from supernas.cli import _check_data_fits
    from supernas.estimate import SupernetEstimator
    from supernas.io import write_json, write_text

    start = time.perf_counter()
    tab = load_tables([table])
    truth_by_text = tab.values(target)
    meta = _meta(table)
    kind = estimator.strip().partition(":")[0]
    sp, ds = _space_and_data(tab, meta, kind, space, space_opt, data, data_dir, max_val, image_size)
    texts = list(tab.archs)
    if max_archs > 0 and max_archs < len(texts):
        keep = np.random.default_rng(seed).choice(len(texts), size=max_archs, replace=False)
        texts = [texts[i] for i in sorted(keep.tolist())]
    archs = []
    for text in texts:
        try:
            archs.append(sp.parse(text))
        except SupernasError as exc:
            raise SupernasError(
                f"table {table}: arch {text!r} is not a {sp.name} arch: {exc}"
            ) from None
    est = create_estimator(
        estimator, sp, ds, seed=seed, recal_batches=recal_batches, batch_size=batch_size
    )
    if isinstance(est, SupernetEstimator):
        _check_data_fits(est.supernet.space, est.data)
    scores = _score(est, archs, quiet)
    truth = [truth_by_text[t] for t in texts]
    ceiling = noise_ceiling(table, target, archs=texts)
    metrics = trust_metrics(scores, truth, ceiling_tau=ceiling["kendall"])
    said = verdict(metrics, ceiling)
    res = {
        "estimator": estimator,
        "table": str(table),
        "target": target,
        "space": {"name": sp.name, "options": dict(sp.options)},
        "n": len(archs),
        "metrics": metrics,
        "ceiling": ceiling,
        "verdict": said,
        "archs": [
            {"arch": t, "estimate": e, "truth": v}
            for t, e, v in zip(texts, scores, truth, strict=True)
        ],
        "seconds": time.perf_counter() - start,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "trust.json", res)
    title = (
        f"{estimator}: tau {_f(metrics['kendall'])}, rho {_f(metrics['spearman'])}, "
        f"seed ceiling tau {_f(ceiling['kendall'])}"
    )
    scatter_plot(out / "trust_scatter.png", scores, truth, title, target)
    write_text(out / "trust.md", _markdown(res))
    view = Table(
        "metric", "value", title=f"{estimator} vs {table.name} ({target}, {len(archs)} archs)"
    )
    for k, v in _rows(metrics, ceiling):
        view.add_row(k, v)
    out_console.print(view)
    out_console.print(said, markup=False, highlight=False, soft_wrap=True)
