"""report.md: the run's numbers in tables, with the PNGs beside it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from supernas.io import write_text
from supernas.report import plots


def _f(x: Any, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if pct:
        return f"{100 * x:.2f} %"
    if isinstance(x, float):
        return f"{x:.4f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def trust_verdict(tau: float, n: int) -> str:
    """Plain words for how far the supernet's ranking can be trusted on this task."""
    if n < 2 or math.isnan(tau):
        return "not measured (no or constant trust sample)."
    caution = f" With only n={n}, this figure is itself noisy." if n < 10 else ""
    if tau >= 0.6:
        words = "strong: the supernet's ranking matches standalone training well."
    elif tau >= 0.3:
        words = "moderate: the ranking is informative, but retrain several top archs."
    elif tau >= 0.1:
        words = "weak: treat the supernet's ranking as a coarse filter only."
    else:
        words = "none measurable: the supernet's ranking does not predict standalone accuracy here."
    return words + caution


def ceiling_text(trust: dict[str, Any]) -> str:
    """The noise ceiling in plain words: seed-to-seed tau of the trust sample, if measured."""
    ceiling = trust.get("noise_ceiling_tau", math.nan)
    ceiling = math.nan if ceiling is None else ceiling
    if trust.get("seeds", 1) < 2:
        return (
            "Noise ceiling: not measured (each trust arch was trained with one seed; "
            "use --trust-seeds 2 to measure it)."
        )
    if math.isnan(ceiling):
        return "Noise ceiling: not measured (too few archs, or constant accuracies under a seed)."
    tau = trust.get("kendall_tau", math.nan)
    tau = math.nan if tau is None else tau
    text = (
        f"Noise ceiling: Kendall tau {ceiling:.3f} between the trust archs' standalone test "
        f"accuracies under {trust['seeds']} training seeds: the rank agreement of retraining "
        "with another seed, which no estimator can be expected to beat."
    )
    if ceiling < 0.3:
        return text + (
            " Seeds barely agree on the order of these archs: their accuracies are within "
            "training noise, so this sample cannot show how good the supernet's ranking is "
            "(a harder task, more epochs or more archs can)."
        )
    if not math.isnan(tau):
        text += (
            f" The supernet's tau is {ceiling - tau:.3f} below it."
            if tau < ceiling
            else (" The supernet's tau reaches it.")
        )
    return text


def _spread_line(trust: dict[str, Any]) -> list[str]:
    rng, images = trust.get("truth_range"), trust.get("truth_spread_images")
    if not rng or images is None:
        return []
    return [
        "",
        f"The standalone test accuracies of the trust sample span {_f(rng[0], True)} to "
        f"{_f(rng[1], True)}, {images} test images apart: where that is only a few images, "
        "the true ranking itself is within seed-to-seed noise and no estimator can match it.",
    ]


def seed_accuracies(rec: dict[str, Any]) -> list[float]:
    """A trust record's test accuracy under each seed (older runs: the one seed)."""
    return list(rec.get("seed_test_accuracies") or [rec["test_accuracy"]])


def write_report(
    out: Path,
    result: dict[str, Any],
    history: list[dict[str, Any]],
    search: Any,
    trust: dict[str, Any],
) -> Path:
    out = Path(out)
    plots.training_curve(out / "supernet_training.png", history)
    plots.search_trajectory(
        out / "search_trajectory.png", [t.value for t in search.trials], search.trajectory()
    )
    recs = trust.get("records", [])
    tr = result["trust"]
    if recs:
        plots.trust_scatter(
            out / "trust_scatter.png",
            [r["estimate"] for r in recs],
            [r["test_accuracy"] for r in recs],
            tr["kendall_tau"],
            tr["spearman_rho"],
            tr.get("noise_ceiling_tau", math.nan),
        )
    lines = [
        f"# supernas run: {result['space']} on {result['dataset']}",
        "",
        f"**Best arch** `{result['best_arch']}`: retrained test accuracy "
        f"**{_f(result['best_test_accuracy'], True)}** "
        f"(val {_f(result['best_val_accuracy'], True)}), "
        f"{_f(result['best_params'])} params, {_f(result['best_flops'])} FLOPs.",
        "",
        f"**Trust**: Kendall tau {_f(tr['kendall_tau'])}, "
        f"Spearman rho {_f(tr['spearman_rho'])} "
        f"between the supernet's estimates and standalone test accuracy over n={tr['n']} random "
        f"archs: {trust_verdict(tr['kendall_tau'], tr['n'])}",
        "",
        ceiling_text(tr),
        *_spread_line(tr),
        "",
        "## Top-k, retrained from scratch",
        "",
        "| rank | arch | estimate | val acc | test acc | params | FLOPs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["top_k"]:
        lines.append(
            f"| {r['rank']} | `{r['arch']}` | {_f(r['estimate'])} | "
            f"{_f(r['val_accuracy'], True)} | {_f(r['test_accuracy'], True)} | "
            f"{_f(r['params'])} | {_f(r['flops'])} |"
        )
    if recs:
        lines += [
            "",
            "## Trust sample",
            "",
            "![trust](trust_scatter.png)",
            "",
            "| arch | estimate | standalone test acc (per seed) |",
            "|---|---|---|",
        ]
        lines += [
            f"| `{r['arch']}` | {_f(r['estimate'])} | "
            + " / ".join(_f(a, True) for a in seed_accuracies(r))
            + " |"
            for r in recs
        ]
    s = result["search"]
    lines += [
        "",
        "## Search",
        "",
        f"{s['strategy']}, budget {s['budget']}, {s['evaluations']} evaluations"
        + (f", constraints {', '.join(s['constraints'])}" if s["constraints"] else "")
        + ".",
        "",
        "![search](search_trajectory.png)",
        "",
        "## Supernet training",
        "",
        "![training](supernet_training.png)",
        "",
        "## Time (seconds)",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in result["seconds"].items()]
    return write_text(out / "report.md", "\n".join(lines) + "\n")
