"""Hyperparameter sensitivity of one-shot methods (NAS-Bench-1Shot1, made cheap).

Zela, Siems, Hutter (*NAS-Bench-1Shot1*, ICLR 2020) show that one-shot methods are as
sensitive to their own hyperparameters (learning rates, arch learning rate, ...) as the
networks they search, and tune them with BOHB against the anytime result. Here an Optuna
TPE study does the same: each trial trains a fresh supernet with sampled hyperparameters,
and the objective is the true score (a table column or a cached scratch training) of the
arch the trainer returns after its last epoch (`bench.anytime.anytime_trajectory`).

Why a study file and not an Optuna storage: a trial is a whole supernet training, so the
study is rewritten (atomically) after every finished trial, and a restarted study re-tells
those trials to a fresh in-memory study and runs only the rest. Each trial's sampler is
seeded from (seed, trial number), so a resumed study draws exactly the parameters an
uninterrupted one would have drawn (one shared sampler's random stream would restart).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from supernas.bench.anytime import anytime_trajectory
from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.estimate import Estimator
from supernas.io import read_json, write_json
from supernas.space import SearchSpace

FORMAT = "supernas.tune/1"


@dataclass(frozen=True)
class Param:
    """One tunable hyperparameter: a float range (log or linear) or a categorical set.

    `lr` is the weight optimiser's (the Recipe's); every other name is a keyword of the
    method's trainer, so a name the trainer does not accept fails in the test suite.
    """

    kind: str  # "log", "float" or "categorical"
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """For the study file: a reader sees what was searched without the code."""
        if self.kind == "categorical":
            return {"kind": self.kind, "choices": list(self.choices)}
        return {"kind": self.kind, "low": self.low, "high": self.high}

    def distribution(self) -> Any:
        """The Optuna distribution, for sampling and for re-telling stored trials."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        return FloatDistribution(self.low, self.high, log=self.kind == "log")


_LR = Param("log", 0.005, 0.2)
_ARCH_LR = Param("log", 1e-4, 1e-2)

#: Per method, what a study searches. DARTS' `order` is left out on purpose: order 2 costs
#: about three forward/backward passes more per step, so a study with it would be dominated
#: by the slow trials; tune first-order DARTS, then compare order=2 at the best params.
SEARCH_SPACES: dict[str, dict[str, Param]] = {
    "darts": {"lr": _LR, "arch_lr": _ARCH_LR},
    "gdas": {"lr": _LR, "arch_lr": _ARCH_LR, "tau_max": Param("float", 1.0, 10.0)},
    "pcdarts": {"lr": _LR, "arch_lr": _ARCH_LR, "partial": Param("categorical", choices=(2, 4))},
    "enas": {
        "lr": _LR,
        "controller_lr": Param("log", 1e-4, 1e-2),
        "entropy_weight": Param("log", 1e-5, 1e-2),
    },
    "proxyless": {"lr": _LR, "arch_lr": _ARCH_LR},
    "fbnet": {"lr": _LR, "arch_lr": _ARCH_LR},
}


def tunable_methods() -> list[str]:
    return sorted(SEARCH_SPACES)


def search_space(method: str) -> dict[str, Param]:
    """The method's hyperparameters; an unknown method names the tunable ones."""
    if method not in SEARCH_SPACES:
        raise SupernasError(
            f"cannot tune {method!r}: tunable methods are {', '.join(tunable_methods())}"
        )
    return SEARCH_SPACES[method]


def split_params(params: Mapping[str, Any]) -> tuple[float | None, dict[str, Any]]:
    """(the Recipe's lr, the trainer's options) of one sampled configuration."""
    opts = {k: v for k, v in params.items() if k != "lr"}
    lr = params.get("lr")
    return (None if lr is None else float(lr)), opts


def _trial_seed(seed: int, number: int) -> int:
    """A sampler seed for trial `number` that depends only on (seed, number)."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def _sample(study: Any, space: Mapping[str, Param], seed: int, number: int) -> Any:
    import optuna

    study.sampler = optuna.samplers.TPESampler(seed=_trial_seed(seed, number))
    return study.ask({name: p.distribution() for name, p in space.items()})


def _retell(study: Any, space: Mapping[str, Param], rec: Mapping[str, Any]) -> None:
    """Add one stored trial (finished or failed) to a fresh study, params and all."""
    import optuna

    state = optuna.trial.TrialState.COMPLETE
    if rec.get("value") is None:
        state = optuna.trial.TrialState.FAIL
    study.add_trial(
        optuna.trial.create_trial(
            params=dict(rec["params"]),
            distributions={name: p.distribution() for name, p in space.items()},
            value=rec.get("value"),
            user_attrs=dict(rec.get("user_attrs", {})),
            state=state,
        )
    )


def _load(out: Path, settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trials of an existing study file, refused when it was made with other settings."""
    if not out.is_file():
        return []
    doc = read_json(out)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SupernasError(
            f"{out} is not a study file of `supernas bench tune`: use another --out"
        )
    want = json.loads(json.dumps(dict(settings)))
    have = doc.get("settings", {})
    if have != want:
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        raise SupernasError(
            f"{out} was made with other settings ({', '.join(diff)} differ); use another "
            "--out or the same settings to resume it"
        )
    return list(doc.get("trials", []))


def _summary(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    done = [t for t in trials if t.get("value") is not None]
    return max(done, key=lambda t: t["value"]) if done else None


def tune(
    method: str,
    space: SearchSpace,
    data: Dataset,
    truth: Estimator,
    *,
    epochs: int,
    batch_size: int,
    trials: int,
    seed: int,
    out: str | Path,
    settings: Mapping[str, Any] | None = None,
    on_step: Callable[[], None] | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a TPE study of `method`'s hyperparameters; returns the study dict.

    Every trial uses the same `seed` for the supernet and the trainer, so trials differ only
    by their hyperparameters. The objective (maximised) is the truth's score of the last
    epoch's arch; each trial's `user_attrs` keep `final_arch`, `best_so_far` and the whole
    `trajectory`. A trial whose training fails (e.g. a diverging loss) is stored with
    value None and its error, and counts as done. `settings` (what the numbers depend on)
    are stored and a study file made with others is refused.
    """
    import optuna
    import torch

    from supernas.supernet import build_supernet
    from supernas.train import Recipe, get_trainer

    params_space = search_space(method)
    if trials < 1:
        raise SupernasError(f"need at least 1 trial, got {trials}")
    out = Path(out)
    settings = {
        "method": method,
        "space": space.name,
        "space_options": dict(space.options),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        **dict(settings or {}),
    }
    records = _load(out, settings)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for rec in records:
        _retell(study, params_space, rec)

    def save() -> dict[str, Any]:
        doc = {
            "format": FORMAT,
            "settings": json.loads(json.dumps(settings)),
            "search_space": {name: p.to_dict() for name, p in params_space.items()},
            "trials": records,
            "best": _summary(records),
        }
        write_json(out, doc)
        return doc

    doc = save()
    for number in range(len(records), trials):
        trial = _sample(study, params_space, seed, number)
        lr, opts = split_params(trial.params)
        recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr if lr is not None else 0.05)
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"number": number, "params": dict(trial.params)}
        try:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                supernet = build_supernet(space)
            trainer = get_trainer(method, recipe=recipe, seed=seed, **opts)
            history = trainer.fit(supernet, data, on_step=on_step)
            traj = anytime_trajectory(history, truth, space)
        except SupernasError as exc:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            rec.update(value=None, user_attrs={"error": str(exc)})
        else:
            value = float(traj[-1]["score"])
            attrs = {
                "final_arch": traj[-1]["arch"],
                "best_so_far": traj[-1]["best_so_far"],
                "trajectory": traj,
            }
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            if math.isfinite(value):
                study.tell(trial, value)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            rec.update(value=value if math.isfinite(value) else None, user_attrs=attrs)
        rec["seconds"] = time.perf_counter() - t0
        records.append(rec)
        doc = save()
        if on_trial is not None:
            on_trial(rec)
    return doc
