"""report.html: one self-contained page per run folder, every plot embedded as a data URI.

Why one file with base64 PNGs: a report that can be mailed, attached to a ticket or opened
from an archive without its folder must not link to anything beside it.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from supernas.errors import SupernasError
from supernas.io import read_json, write_text
from supernas.report import plots
from supernas.report.markdown import ceiling_text, seed_accuracies, trust_verdict

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5em auto;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
code { background: #f3f3f3; padding: 1px 4px; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
.verdict { background: #fff7e0; border-left: 4px solid #f0ad4e; padding: 0.5em 0.8em; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; }
"""


def _f(x: Any, pct: bool = False, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if pct:
        return f"{100 * x:.2f} %"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(path: Path, alt: str) -> str:
    """An <img> with the PNG inlined, or a note where the plot is missing."""
    if not path.is_file():
        return f"<p><em>{_e(alt)}: no plot ({_e(path.name)} missing).</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str] | None, rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def _read(run_dir: Path, name: str) -> dict[str, Any]:
    return read_json(run_dir / name, missing={})


def _trust_numbers(result: dict[str, Any], trust: dict[str, Any]) -> dict[str, Any]:
    """result.json's trust block, completed from trust.json (older runs lack the ceiling)."""
    tr = dict(result.get("trust", {}))
    for key in ("seeds", "noise_ceiling_tau"):
        if key in trust and key not in tr:
            tr[key] = trust[key]
    tr.setdefault("seeds", 1)
    tr.setdefault("noise_ceiling_tau", math.nan)
    for key in ("kendall_tau", "spearman_rho", "noise_ceiling_tau"):
        if tr.get(key) is None:
            tr[key] = math.nan
    return tr


def _pareto_png(run_dir: Path, search: dict[str, Any]) -> Path | None:
    """A Pareto plot when the run has a front: a multi-objective search, or a
    `supernas search --minimize ... --out RUN/<name>.json` result saved in the folder."""
    out = run_dir / "pareto_front.png"
    trials = search.get("result", {}).get("trials", []) if search else []
    if trials and isinstance(trials[0].get("value"), list) and len(trials[0]["value"]) >= 2:
        from supernas.search import SearchResult

        res = SearchResult.from_json(search["result"])
        front = {str(t.arch) for t in res.pareto_front()}
        pts = [{"estimate": t.value[0], "objective 2": -t.value[1]} for t in res.trials]
        fpts = [p for p, t in zip(pts, res.trials, strict=True) if str(t.arch) in front]
        return plots.pareto_plot(out, pts, fpts, "objective 2")
    for p in sorted(run_dir.glob("*.json")):
        try:
            obj = read_json(p)
        except SupernasError:
            continue
        if isinstance(obj, dict) and {"front", "evaluated", "minimize"} <= set(obj):
            return plots.pareto_plot(out, obj["evaluated"], obj["front"], obj["minimize"][0])
    return None


def _arch_png(run_dir: Path) -> Path | None:
    from supernas.space import Arch, get_space

    info = _read(run_dir, "best_arch.json")
    if not info:
        return None
    path = run_dir / "best_arch.png"
    try:
        space = get_space(info["space"], **info.get("space_options", {}))
        return plots.arch_diagram(path, space, Arch.from_json(info))
    except SupernasError:  # a space this process has not registered (a user's own model)
        items = [f"choice {i}\n= {v}" for i, v in enumerate(info.get("values", []))]
        return plots.choices_diagram(path, f"{info['space']}: {info.get('arch', '')}", items)


def check_finished(run_dir: str | Path) -> Path:
    """The run folder as a Path, or a clear error when it holds no finished run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SupernasError(f"run folder not found: {run_dir}")
    if not (run_dir / "result.json").is_file():
        what = (
            "an unfinished supernas run folder (finish it with `supernas run --out DIR --resume`)"
            if (run_dir / "config.toml").is_file()
            else "not a `supernas run` folder"
        )
        raise SupernasError(f"{run_dir} has no result.json: {what}")
    return run_dir


def render_html(run_dir: str | Path) -> str:
    """The report page of a finished run folder, as a string (writes the plots it needs)."""
    run_dir = check_finished(run_dir)
    result = read_json(run_dir / "result.json")
    trust = _read(run_dir, "trust.json")
    search = _read(run_dir, "search.json")
    tr = _trust_numbers(result, trust)
    arch_png = _arch_png(run_dir)
    pareto = _pareto_png(run_dir, search)
    title = f"supernas run: {result['space']} on {result['dataset']}"
    ceiling = tr["noise_ceiling_tau"]
    key = [
        ["best arch", f"<code>{_e(result['best_arch'])}</code>"],
        ["retrained test accuracy", _f(result["best_test_accuracy"], True)],
        ["retrained val accuracy", _f(result["best_val_accuracy"], True)],
        ["supernet estimate (val)", _f(result["best_estimate"])],
        ["params / FLOPs", f"{_f(result['best_params'])} / {_f(result['best_flops'])}"],
        ["trust Kendall tau", f"{_f(tr['kendall_tau'], digits=3)} (n={tr.get('n', 0)})"],
        ["trust Spearman rho", _f(tr["spearman_rho"], digits=3)],
        [
            "noise ceiling (seed-to-seed tau)",
            "not measured" if math.isnan(ceiling) else _f(ceiling, digits=3),
        ],
        ["total seconds", _f(float(result.get("seconds", {}).get("total", math.nan)), digits=0)],
    ]
    parts = [
        f"<h1>{_e(title)}</h1>",
        _table(None, [[f"<b>{k}</b>", v] for k, v in key]),
        '<p class="verdict"><b>Trust:</b> '
        f"{_e(trust_verdict(tr['kendall_tau'], tr.get('n', 0)))}<br>{_e(ceiling_text(tr))}</p>",
        "<h2>Best arch</h2>",
        _img(arch_png, "best arch block diagram") if arch_png else "<p>best_arch.json missing.</p>",
        "<h2>Top-k, retrained from scratch</h2>",
        _table(
            ["rank", "arch", "estimate", "val acc", "test acc", "params", "FLOPs"],
            [
                [
                    _e(r["rank"]),
                    f"<code>{_e(r['arch'])}</code>",
                    _f(r["estimate"]),
                    _f(r["val_accuracy"], True),
                    _f(r["test_accuracy"], True),
                    _f(r["params"]),
                    _f(r["flops"]),
                ]
                for r in result.get("top_k", [])
            ],
        ),
    ]
    recs = trust.get("records", [])
    if recs:
        parts += [
            "<h2>Trust: supernet estimate vs standalone accuracy</h2>",
            _img(run_dir / "trust_scatter.png", "trust scatter"),
            _table(
                ["arch", "estimate", "standalone test acc (per seed)"],
                [
                    [
                        f"<code>{_e(r['arch'])}</code>",
                        _f(r["estimate"]),
                        " / ".join(_f(a, True) for a in seed_accuracies(r)),
                    ]
                    for r in recs
                ],
            ),
        ]
    s = result.get("search", {})
    parts += [
        "<h2>Search</h2>",
        f"<p>{_e(s.get('strategy', '?'))}, budget {_e(s.get('budget', '?'))}, "
        f"{_e(s.get('evaluations', '?'))} evaluations"
        + (f", constraints {_e(', '.join(s['constraints']))}" if s.get("constraints") else "")
        + ".</p>",
        '<div class="figs">',
        _img(run_dir / "search_trajectory.png", "search trajectory"),
        _img(pareto, "Pareto front") if pareto else "",
        "</div>",
        "<h2>Supernet training</h2>",
        _img(run_dir / "supernet_training.png", "supernet training curve"),
        "<h2>Time per stage (seconds)</h2>",
        _table(
            ["stage", "seconds"],
            [[_e(k), f"{v:.1f}"] for k, v in result.get("seconds", {}).items()],
        ),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def write_html_report(run_dir: str | Path) -> Path:
    """Write RUN/report.html (atomically) from the files of a finished run folder."""
    run_dir = Path(run_dir)
    return write_text(run_dir / "report.html", render_html(run_dir))


def refresh_report(run_dir: str | Path) -> Path:
    """Redraw a finished run's plots and report.md, then write report.html.

    Why redraw: runs from older versions have plots without the noise ceiling and no
    report.html; this brings their folder up to date without rerunning anything.
    """
    from supernas.report.markdown import write_report
    from supernas.search import SearchResult

    run_dir = check_finished(run_dir)
    result = read_json(run_dir / "result.json")
    trust = _read(run_dir, "trust.json")
    search = _read(run_dir, "search.json")
    train = _read(run_dir, "train.json")
    if search and train:
        result["trust"] = _trust_numbers(result, trust)
        write_report(
            run_dir, result, train["history"], SearchResult.from_json(search["result"]), trust
        )
    return write_html_report(run_dir)
