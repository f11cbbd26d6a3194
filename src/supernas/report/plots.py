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
    path: Path,
    estimates: list[float],
    truths: list[float],
    tau: float,
    rho: float,
    ceiling: float = math.nan,
) -> Path:
    """Estimate vs standalone accuracy; the title holds tau, rho and the noise ceiling."""
    fig, ax = plt.subplots(figsize=(4.8, 4))
    ax.scatter(estimates, [100 * t for t in truths], s=28, color="#1f77b4")
    ax.set_xlabel("supernet estimate (val accuracy, inherited weights)")
    ax.set_ylabel("standalone test accuracy (%)")
    t = "n/a" if math.isnan(tau) else f"{tau:.2f}"
    r = "n/a" if math.isnan(rho) else f"{rho:.2f}"
    c = "not measured" if math.isnan(ceiling) else f"{ceiling:.2f}"
    ax.set_title(
        f"Trust: Kendall tau {t}, Spearman rho {r} (n={len(truths)})\n"
        f"noise ceiling (seed-to-seed tau): {c}",
        fontsize=10,
    )
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


def _box(ax: Any, x: float, y: float, text: str, w: float, h: float, color: str) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color,
            edgecolor="#333333",
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=8)


def _arrow(ax: Any, x0: float, x1: float, y: float = 0.0) -> None:
    ax.annotate("", (x1, y), (x0, y), arrowprops={"arrowstyle": "->", "color": "#333333"})


def _chain(ax: Any, labels: list[str], colors: list[str], title: str) -> None:
    """Boxes left to right joined by arrows (the stem and head in grey)."""
    for i, (text, color) in enumerate(zip(labels, colors, strict=True)):
        _box(ax, 1.3 * i, 0.0, text, 1.0, 1.1, color)
        if i:
            _arrow(ax, 1.3 * (i - 1) + 0.52, 1.3 * i - 0.52)
    ax.set_xlim(-0.7, 1.3 * (len(labels) - 1) + 0.7)
    ax.set_ylim(-0.8, 0.8)
    ax.set_title(title, fontsize=10)


def _resnet18_diagram(ax: Any, space: Any, arch: Any) -> None:
    from supernas.space.resnet18 import BLOCK_MULTIPLIERS, BLOCK_STRIDES

    v = space.as_dict(arch)
    base = space.options.get("base_width", 64)
    kcolor = {3: "#c6dbef", 5: "#9ecae1", 7: "#6baed6"}
    labels, colors = ["stem"], ["#e0e0e0"]
    for b, (mult, stride) in enumerate(zip(BLOCK_MULTIPLIERS, BLOCK_STRIDES, strict=True)):
        k, w = v[f"b{b}.kernel"], v[f"b{b}.width"]
        labels.append(
            f"block {b}\n{k}x{k} conv\nwidth x{w:g}\n{base * mult} ch"
            + ("\n/2" if stride > 1 else "")
        )
        colors.append(kcolor.get(k, "#9ecae1"))
    labels.append("pool\n+ fc")
    colors.append("#e0e0e0")
    _chain(ax, labels, colors, f"resnet18: {arch}")


def _nb201_diagram(ax: Any, arch: Any) -> None:
    from supernas.space.nb201 import EDGES

    pos = {0: (0.0, 0.0), 1: (1.6, 1.3), 2: (3.2, -1.3), 3: (4.8, 0.0)}
    for (to, frm), op in zip(EDGES, arch.values, strict=True):
        (x0, y0), (x1, y1) = pos[frm], pos[to]
        none = op == "none"
        # the long 0->3 edge is straight, its label at 70 % so it clears the 1->2 edge's
        rad, t = (0.0, 0.7) if (frm, to) == (0, 3) else (0.12, 0.5)
        ax.annotate(
            "",
            (x1, y1),
            (x0, y0),
            arrowprops={
                "arrowstyle": "->",
                "color": "#bbbbbb" if none else "#1f77b4",
                "linestyle": "--" if none else "-",
                "shrinkA": 14,
                "shrinkB": 14,
                "connectionstyle": f"arc3,rad={rad}",
            },
        )
        ax.text(  # on the curve: a point of the chord + rad/2 * (dy, -dx)
            x0 + t * (x1 - x0) + rad / 2 * (y1 - y0),
            y0 + t * (y1 - y0) - rad / 2 * (x1 - x0),
            op,
            fontsize=7,
            ha="center",
            va="center",
            color="#999999" if none else "#000000",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1},
        )
    for node, (x, y) in pos.items():
        ax.add_patch(plt.Circle((x, y), 0.28, facecolor="#fdd0a2", edgecolor="#333333"))
        ax.text(x, y, str(node), ha="center", va="center", fontsize=10)
    ax.set_xlim(-0.6, 5.4)
    ax.set_ylim(-1.8, 1.8)
    ax.set_title(f"nb201 cell: {arch}", fontsize=9)


def arch_diagram(path: Path, space: Any, arch: Any) -> Path:
    """The arch as a block diagram: resnet18 blocks, the nb201 cell DAG, else one box a choice."""
    if space.name == "resnet18":
        fig, ax = plt.subplots(figsize=(12, 2.4))
        _resnet18_diagram(ax, space, arch)
    elif space.name == "nb201":
        fig, ax = plt.subplots(figsize=(7, 3.4))
        _nb201_diagram(ax, arch)
    else:
        items = [f"{k}\n= {v}" for k, v in space.as_dict(arch).items()]
        return choices_diagram(path, f"{space.name}: {arch}", items)
    ax.set_aspect("equal")
    ax.axis("off")
    return _save(fig, path)


def choices_diagram(path: Path, title: str, items: list[str]) -> Path:
    """One box per choice, left to right: any space, even one this process cannot build."""
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(items)), 2.0))
    _chain(ax, items, ["#c6dbef"] * len(items), title)
    ax.set_aspect("equal")
    ax.axis("off")
    return _save(fig, path)
