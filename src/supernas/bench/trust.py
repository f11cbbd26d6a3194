"""Trust report: how well does an estimator rank archs, compared with seed noise?

Why a noise ceiling: a ground-truth table trained with several seeds says how well one
training run ranks archs against another. No estimator can be expected to agree with the
truth better than a second training seed does, and when two seeds barely agree (small
accuracy gaps, a short recipe) the archs are not separable at all: ranking them is noise,
and cost (params, FLOPs, latency) should decide. So an estimator's Kendall tau is reported
next to the seed-vs-seed tau, as a fraction of it, with a plain-language verdict.

Estimator specs (`create_estimator`): `supernet:PATH` (a trained supernet checkpoint, val
accuracy after BN recalibration), `proxy:NAME` (a zero-cost proxy), `params`, `flops`,
`table:FILE:COLUMN` (another table's column). Torch is imported only when one is built.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from supernas.bench.correlate import correlation
from supernas.bench.table import seed_values
from supernas.errors import SupernasError
from supernas.space import SearchSpace

SEPARABLE_TAU = 0.3  # below this seed-vs-seed tau, archs are not separable above noise


# -- the noise ceiling -----------------------------------------------------------------------
def _seed_key(seed: str) -> tuple[int, float | str]:
    try:
        return (0, float(seed))
    except ValueError:
        return (1, seed)


def noise_ceiling(
    path: str | Path, column: str = "test_accuracy", *, archs: Collection[str] | None = None
) -> dict[str, Any]:
    """Seed-vs-seed Kendall tau-b and Spearman rho of `column`, averaged over seed pairs.

    Each pair (s, t) is compared over the archs that have both seeds (restricted to `archs`
    when given). One seed per arch is not an error: the ceiling is NaN, with a reason.
    """
    by_seed = seed_values(path, column)
    if archs is not None:
        keep = set(archs)
        by_seed = {s: {a: v for a, v in vals.items() if a in keep} for s, vals in by_seed.items()}
    seeds = sorted((s for s, vals in by_seed.items() if vals), key=_seed_key)
    counts: dict[str, int] = {}
    for vals in by_seed.values():
        for a in vals:
            counts[a] = counts.get(a, 0) + 1
    out: dict[str, Any] = {
        "column": column,
        "seeds": seeds,
        "n_archs": sum(1 for c in counts.values() if c >= 2),
        "pairs": [],
        "kendall": math.nan,
        "spearman": math.nan,
        "mean_abs_seed_diff": math.nan,
        "reason": "",
    }
    if len(seeds) < 2:
        out["reason"] = "the table has one seed per arch: no seed-vs-seed agreement to compare"
        return out
    for s, t in itertools.combinations(seeds, 2):
        common = [a for a in by_seed[s] if a in by_seed[t]]
        x = [by_seed[s][a] for a in common]
        y = [by_seed[t][a] for a in common]
        r = correlation(x, y)
        diff = float(np.mean(np.abs(np.subtract(x, y)))) if common else math.nan
        out["pairs"].append(
            {
                "seeds": [s, t],
                "n": len(common),
                "kendall": r["kendall"],
                "spearman": r["spearman"],
                "mean_abs_diff": diff,
            }
        )
    good = [p for p in out["pairs"] if math.isfinite(p["kendall"])]
    if not good:
        out["reason"] = "no two seeds share two archs with different values"
        return out
    out["kendall"] = float(np.mean([p["kendall"] for p in good]))
    out["spearman"] = float(np.mean([p["spearman"] for p in good]))
    out["mean_abs_seed_diff"] = float(np.mean([p["mean_abs_diff"] for p in good]))
    return out


# -- metrics and verdict ---------------------------------------------------------------------
def trust_metrics(
    estimate: Sequence[float],
    truth: Sequence[float],
    *,
    top_k: Sequence[int] = (1, 5, 10),
    ceiling_tau: float = math.nan,
) -> dict[str, Any]:
    """Rank agreement of `estimate` with `truth` (aligned lists, higher is better).

    `correlation`'s Spearman, Kendall and top-10% precision, plus: `top_k` overlap (share
    of the estimator's k best that are among the true k best, for each k <= n), `regret`
    (best truth minus the truth of the estimator's first arch; ties go to the first
    listed) and `fraction_of_ceiling` (tau / `ceiling_tau`, NaN without a positive ceiling).
    Undefined scores (NaN) rank last, as in `correlation`.
    """
    out = correlation(estimate, truth)
    e = np.asarray(estimate, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    bad = ~np.isfinite(e)
    if bad.any():
        e = np.where(bad, (np.min(e[~bad]) if (~bad).any() else 0.0) - 1.0, e)
    by_e = np.argsort(-e, kind="stable")
    by_t = np.argsort(-t, kind="stable")
    out["top_k"] = {
        str(k): len(set(by_e[:k].tolist()) & set(by_t[:k].tolist())) / k
        for k in top_k
        if 0 < k <= len(t)
    }
    out["regret"] = float(t.max() - t[by_e[0]]) if len(t) else math.nan
    ok = math.isfinite(ceiling_tau) and ceiling_tau > 0 and math.isfinite(out["kendall"])
    out["fraction_of_ceiling"] = out["kendall"] / ceiling_tau if ok else math.nan
    return out


def verdict(metrics: dict[str, Any], ceiling: dict[str, Any]) -> str:
    """One plain-language sentence: can this estimator be trusted to rank these archs?"""
    tau, top = metrics["kendall"], ceiling["kendall"]
    if math.isfinite(top) and top < SEPARABLE_TAU:
        return (
            f"Two training seeds agree only at tau {top:.2f}: this table's archs are not "
            "separable above seed noise at this recipe, so no estimator can rank them; "
            "let params, FLOPs or latency decide."
        )
    if not math.isfinite(tau):
        return (
            "The estimator gives every arch the same score (or there are too few archs): "
            "it cannot rank them."
        )
    if not math.isfinite(top):
        return (
            f"Estimator tau {tau:.2f} against the table; no noise ceiling "
            f"({ceiling.get('reason') or 'unknown'}): train a second seed to see how much "
            "of the gap is noise."
        )
    frac = tau / top
    if frac >= 0.9:
        judged = "as good as a second training seed: trust its ranking"
    elif frac >= 0.6:
        judged = "useful: it ranks most of what a second seed would"
    elif frac >= 0.3:
        judged = "weak: use it to discard the worst archs, not to pick the best"
    elif tau > 0.05:
        judged = "barely better than chance: do not rank with it"
    else:
        judged = "no better than chance (or inverted): do not use it"
    return f"Estimator tau {tau:.2f} vs seed ceiling {top:.2f} ({frac:.0%} of it): {judged}."


# -- estimators from a spec --------------------------------------------------------------------
def _dataset(data: Any, kind: str) -> Any:
    from supernas.data import Dataset

    if not isinstance(data, Dataset):
        raise SupernasError(f"estimator {kind!r} needs a dataset (--data)")
    return data


def _supernet(arg: str, space: SearchSpace, data: Any, opts: dict[str, Any]) -> Any:
    from supernas.estimate import SupernetEstimator
    from supernas.nn import register_run_model
    from supernas.train import load_supernet

    register_run_model(Path(arg).parent)  # a run of the user's own network names it there
    net, _ = load_supernet(arg)
    if net.space.name != space.name:
        raise SupernasError(
            f"the supernet {arg} is over space {net.space.name!r} but the table's archs are "
            f"{space.name!r} archs"
        )
    return SupernetEstimator(
        net,
        _dataset(data, "supernet"),
        recal_batches=opts.get("recal_batches", 8),
        seed=opts.get("seed", 0),
    )


def _proxy(arg: str, space: SearchSpace, data: Any, opts: dict[str, Any]) -> Any:
    from supernas.proxies import ProxyEstimator, proxy_batch

    seed = opts.get("seed", 0)
    batch = proxy_batch(
        data if data is not None else "random",
        space,
        batch_size=opts.get("batch_size", 64),
        seed=seed,
    )
    return ProxyEstimator(space, arg, batch, seed=seed)


def _input_shape(space: SearchSpace, data: Any) -> tuple[int, ...]:
    from supernas.data import Dataset
    from supernas.proxies.batch import NATIVE_IMAGE_SIZE

    if isinstance(data, Dataset):
        return tuple(data.input_shape)
    side = NATIVE_IMAGE_SIZE.get(space.name, 32)
    return (int(space.options.get("in_channels", 3)), side, side)


def _params(arg: str, space: SearchSpace, data: Any, opts: dict[str, Any]) -> Any:
    from supernas.estimate import ParamsEstimator

    return ParamsEstimator(space, _input_shape(space, data))


def _flops(arg: str, space: SearchSpace, data: Any, opts: dict[str, Any]) -> Any:
    from supernas.estimate import FlopsEstimator

    return FlopsEstimator(space, _input_shape(space, data))


def _table(arg: str, space: SearchSpace, data: Any, opts: dict[str, Any]) -> Any:
    from supernas.bench.table import TableEstimator, load_tables

    file, _, column = arg.rpartition(":")
    if not file or not column:
        raise SupernasError(f"bad estimator 'table:{arg}': expected table:FILE:COLUMN")
    return TableEstimator(load_tables([file]), column)


def _pruning(arg: str, space: SearchSpace, data: Any, opts: dict[str, Any]) -> Any:
    """The widest arch's trained weights (`supernas retrain --arch <widest>`'s model.pt)."""
    from supernas.estimate.pruning import PruningEstimator, widest_arch
    from supernas.io import load_weights
    from supernas.supernet import build_network

    if space.name != "resnet18":
        raise SupernasError(f"the pruning estimator works on resnet18 tables, not {space.name!r}")
    wide = build_network(space, widest_arch(space))
    state = load_weights(arg)
    try:
        wide.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise SupernasError(
            f"{arg} is not the widest arch {widest_arch(space)} of this space "
            f"({str(exc).splitlines()[0]}); train it with `supernas retrain --arch "
            f"{widest_arch(space)}`"
        ) from None
    return PruningEstimator(
        space,
        wide,
        _dataset(data, "pruning"),
        finetune_steps=opts.get("finetune_steps", 20),
        seed=opts.get("seed", 0),
    )


Builder = Callable[[str, SearchSpace, Any, dict[str, Any]], Any]
# kind -> (usage, needs an argument, builder)
ESTIMATORS: dict[str, tuple[str, bool, Builder]] = {
    "supernet": ("supernet:PATH/supernet.pt", True, _supernet),
    "proxy": ("proxy:NAME", True, _proxy),
    "params": ("params", False, _params),
    "flops": ("flops", False, _flops),
    "table": ("table:FILE:COLUMN", True, _table),
    "pruning": ("pruning:WIDEST/model.pt", True, _pruning),
}


def create_estimator(spec: str, space: SearchSpace, data: Any = None, **opts: Any) -> Any:
    """An Estimator (`score(archs)`, higher is better) from a spec such as 'proxy:synflow'.

    `data` is a loaded Dataset (supernet: BN recalibration and val accuracy; params/flops:
    the input shape; proxy: the batch), 'random' (proxies only) or None. `opts`: `seed`,
    `recal_batches` (supernet), `batch_size` (proxy).
    """
    kind, sep, arg = spec.strip().partition(":")
    valid = ", ".join(usage for usage, _, _ in ESTIMATORS.values())
    if kind not in ESTIMATORS:
        raise SupernasError(f"unknown estimator {spec!r}; valid kinds: {valid}")
    usage, needs_arg, build = ESTIMATORS[kind]
    if needs_arg and not arg.strip():
        raise SupernasError(f"estimator {spec!r} needs an argument: {usage}")
    if not needs_arg and sep:
        raise SupernasError(f"estimator {kind!r} takes no argument: write {usage!r}")
    return build(arg.strip(), space, data, opts)
