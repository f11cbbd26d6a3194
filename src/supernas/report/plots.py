"""Matplotlib PNGs for the run folder (Agg backend: no display needed)."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from supernas.io import write_bytes


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def trust_scatter(
    path: Path, estimates: list[float], truths: list[float], tau: float, rho: float
) -> Path:
    fig, ax = plt.subplots(figsize=(4.8, 4))
    ax.scatter(estimates, [100 * t for t in truths], s=28, color="#1f77b4")
    ax.set_xlabel("supernet estimate (val accuracy, inherited weights)")
    ax.set_ylabel("standalone test accuracy (%)")
    t = "n/a" if math.isnan(tau) else f"{tau:.2f}"
    r = "n/a" if math.isnan(rho) else f"{rho:.2f}"
    ax.set_title(f"Trust: Kendall tau {t}, Spearman rho {r} (n={len(truths)})")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def training_curve(path: Path, history: list[dict[str, Any]]) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], color="#d62728", label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (sampled paths)")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["train_accuracy"] for h in history], color="#2ca02c", label="accuracy")
    ax2.set_ylabel("train accuracy (sampled paths)")
    ax.set_title("Supernet training")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def search_trajectory(path: Path, values: list[float], best: list[float]) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    xs = list(range(1, len(values) + 1))
    ax.scatter(xs, values, s=8, alpha=0.5, color="#7f7f7f", label="evaluated")
    ax.plot(xs, best, color="#1f77b4", label="best so far")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("estimate")
    ax.set_title("Search trajectory")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def pareto_plot(
    path: Path, evaluated: list[dict[str, Any]], front: list[dict[str, Any]], metric: str
) -> Path:
    """Estimate vs one minimised metric: every evaluated arch, the front highlighted."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(
        [e[metric] for e in evaluated],
        [e["estimate"] for e in evaluated],
        s=10,
        alpha=0.4,
        color="#7f7f7f",
        label="evaluated",
    )
    pts = sorted((f[metric], f["estimate"]) for f in front)
    ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="#d62728")
    ax.scatter(
        [p[0] for p in pts], [p[1] for p in pts], s=24, color="#d62728", label="Pareto front"
    )
    ax.set_xlabel(metric)
    ax.set_ylabel("estimate")
    ax.set_title(f"Pareto front: estimate vs {metric}")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)
