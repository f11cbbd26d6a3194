"""`supernas run`: train the supernet, search, retrain the top-k, check trust, write the run folder.

Each stage writes its own file in the run folder (train.json, search.json, retrain.json,
trust.json) and skips its work when that file says it is done, so a killed run started
again with `resume=True` goes on from the stage (and the arch) it was in.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernas.bench import rank_report
from supernas.config import RunConfig
from supernas.console import RunLog, progress_bar
from supernas.data import Dataset, load_data
from supernas.errors import SupernasError
from supernas.estimate import SupernetEstimator, train_arch
from supernas.hardware import ArchCost, parse_constraint
from supernas.hardware.cost import check_satisfiable
from supernas.hyper import model_for
from supernas.io import read_json, write_json, write_text
from supernas.search import STRATEGIES, SearchResult, Trial, get_strategy, run_search
from supernas.space import SPACES, Arch, SearchSpace, get_space
from supernas.supernet import Supernet
from supernas.train import TRAINERS, get_trainer, load_supernet, with_lut
from supernas.train.spos import sample_constrained

LUT_NEEDED = (
    "a latency_ms constraint needs a latency lookup table: build one with "
    "`supernas hardware lut ... --out lut.json` and pass --lut lut.json"
)


def make_constraint(
    space: SearchSpace,
    input_shape: tuple[int, ...],
    constraints: list[str],
    cost: ArchCost | None = None,
    lut: str | Path | None = None,
):
    """A predicate over archs from strings like 'params<=2e5', or None when unconstrained.

    `latency_ms` constraints need a latency LUT (`supernas hardware lut`) for this space.
    """
    parsed = [parse_constraint(c) for c in constraints]
    needs_lut = any(c.metric == "latency_ms" for c in parsed)
    if needs_lut and lut is None and (cost is None or cost.lut is None):
        raise SupernasError(LUT_NEEDED)
    cost = cost or ArchCost(space, input_shape, lut=lut)
    if not parsed:
        return None, cost
    check_satisfiable(cost, parsed)  # one clear line now, not a failure deep in training

    def feasible(arch: Arch) -> bool:
        return all(c.check(cost, arch) for c in parsed)

    return feasible, cost


def build_space(config: RunConfig, data: Dataset) -> SearchSpace:
    opts = {
        "in_channels": data.in_channels,
        "num_classes": data.num_classes,
        **config.resolved_space_options(),
    }
    space = get_space(config.space, **opts)
    if config.model:  # a user's network: fail now if it does not fit the data
        from supernas.nn import check_fits

        check_fits(space, data.input_shape, data.num_classes)
    return space


class Run:
    """One run folder and its stages. Use `Run(config, out).execute()`."""

    def __init__(
        self, config: RunConfig, out: str | Path, *, resume: bool = False, quiet: bool = False
    ) -> None:
        self.config = config
        self.out = Path(out)
        self.resume = resume
        self.quiet = quiet
        self._resumed = False

    # -- folder --------------------------------------------------------------------------
    def _load_config(self) -> None:
        """With --resume, the saved config wins; a used folder without --resume is an error."""
        cfg_path = self.out / "config.toml"
        if cfg_path.exists():
            if not self.resume:
                raise SupernasError(
                    f"{self.out} already holds a run; pass --resume to continue it, "
                    "or choose another --out"
                )
            self.config = RunConfig.load(cfg_path)
            self._resumed = True
        elif self.out.exists() and any(self.out.iterdir()):
            raise SupernasError(f"{self.out} exists and is not a supernas run folder")

    def _validate(self) -> None:
        """Check every registry name before any work or any file is written."""
        cfg = self.config
        if cfg.model:  # --model file.py:factory replaces --space; resume finds it by full path
            from supernas.nn import register_model_file

            name, spec = register_model_file(cfg.model)
            cfg = self.config = dataclasses.replace(cfg, space=name, model=spec)
        SPACES.get(cfg.space)
        STRATEGIES.get(cfg.strategy)
        TRAINERS.get(cfg.method)
        parsed = [parse_constraint(c) for c in cfg.constraints]
        if any(c.metric == "latency_ms" for c in parsed) and not cfg.lut:
            raise SupernasError(LUT_NEEDED)

    def path(self, name: str) -> Path:
        return self.out / name

    def _done(self, name: str) -> dict[str, Any] | None:
        p = self.path(name)
        if p.is_file():
            obj = read_json(p)
            if obj.get("done"):
                return obj
        return None

    # -- stages --------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        t_all = time.perf_counter()
        self._load_config()
        self._validate()
        cfg = self.config
        t0 = time.perf_counter()
        data = load_data(
            cfg.data,
            data_dir=cfg.data_dir or None,
            max_train=cfg.max_train,
            max_val=cfg.max_val,
            image_size=cfg.image_size,
        )
        space = build_space(cfg, data)
        feasible, cost = make_constraint(
            space, data.input_shape, cfg.constraints, lut=cfg.lut or None
        )
        if not (self.out / "config.toml").exists():
            write_text(self.out / "config.toml", cfg.to_toml())
        self.log = RunLog(self.out / "log.txt", quiet=self.quiet)
        if self.resume and self._resumed:
            self.log(f"resuming the run in {self.out} with its saved config.toml")
        s = data.summary()
        self.log(
            f"data {s['name']}: train {s['train']}, val {s['val']}, test {s['test']}, "
            f"input {tuple(s['input_shape'])}, {s['num_classes']} classes, "
            f"train class counts {s['train_class_counts']}"
        )
        self.log(f"space {space.name} ({space.size:,} archs), options {space.options}")
        seconds = {"data": time.perf_counter() - t0}

        supernet, seconds["train"] = self.train_stage(space, data, feasible)
        estimator = SupernetEstimator(
            supernet, data, recal_batches=cfg.recal_batches, seed=cfg.seed
        )
        search, seconds["search"] = self.search_stage(space, estimator, feasible)
        retrained, seconds["retrain"] = self.retrain_stage(space, data, search, cost)
        trust, seconds["trust"] = self.trust_stage(space, data, estimator, feasible)
        seconds["total"] = time.perf_counter() - t_all
        return self.finish(space, data, search, retrained, trust, seconds)

    def train_stage(self, space: SearchSpace, data: Dataset, feasible) -> tuple[Supernet, float]:
        cfg = self.config
        done = self._done("train.json")
        if done:
            self.log("supernet: already trained, loading supernet.pt")
            supernet, _ = load_supernet(self.path("supernet.pt"))
            return supernet, done["seconds"]
        t0 = time.perf_counter()
        options = with_lut(cfg.method, cfg.method_options, cfg.lut)
        trainer = get_trainer(
            cfg.method, recipe=cfg.supernet, seed=cfg.seed, constraint=feasible, **options
        )
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            supernet = model_for(trainer, space)  # a supernet, or the smash/ghn hypernet
        nparams = sum(p.numel() for p in supernet.parameters())
        self.log(
            f"supernet: {nparams:,} parameters, training with {cfg.method} for "
            f"{cfg.supernet.epochs} epochs"
        )
        steps = cfg.supernet.epochs * -(-len(data.x_train) // cfg.supernet.batch_size)
        with progress_bar("train supernet", steps, not self.quiet) as advance:
            history = trainer.fit(
                supernet,
                data,
                checkpoint=self.path("supernet.pt"),
                on_step=advance,
                on_epoch=lambda r: self._log_epoch(r),
            )
        # summed over epochs, so a training resumed after a kill still reports its whole time
        seconds = sum(h["seconds"] for h in history) or time.perf_counter() - t0
        write_json(
            self.path("train.json"),
            {"done": True, "method": cfg.method, "history": history, "seconds": seconds},
        )
        return supernet, seconds

    def _log_epoch(self, rec: dict[str, Any]) -> None:
        with open(self.path("log.txt"), "a") as f:
            f.write(
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} epoch {rec['epoch']}: "
                f"loss {rec['train_loss']:.4f}, sampled-path acc {rec['train_accuracy']:.3f}\n"
            )

    def search_stage(
        self, space: SearchSpace, estimator: SupernetEstimator, feasible
    ) -> tuple[SearchResult, float]:
        cfg = self.config
        done = self._done("search.json")
        if done:
            self.log("search: already done")
            return SearchResult.from_json(done["result"]), done["seconds"]
        t0 = time.perf_counter()
        strategy = get_strategy(
            cfg.strategy,
            space,
            seed=cfg.seed,
            constraint=feasible,
            **cfg.resolved_strategy_options(),
        )
        state_path = self.path("search_state.json")
        previous, prior_seconds = None, 0.0
        if state_path.is_file():
            state = read_json(state_path)
            prior_seconds = float(state.get("seconds", 0.0))
            strategy.load_state_dict(state["strategy"])
            previous = SearchResult.from_json(state["result"])
            self.log(f"search: resuming after {len(previous.trials)} evaluations")
        self.log(
            f"search: {cfg.strategy} over {space.size:,} archs, budget {cfg.budget}"
            + (f", constraints {cfg.constraints}" if cfg.constraints else "")
        )
        trials: list[Trial] = list(previous.trials) if previous else []

        def checkpoint(trial: Trial) -> None:
            trials.append(trial)
            write_json(
                state_path,
                {
                    "strategy": strategy.state_dict(),
                    "result": SearchResult(list(trials)).to_json(),
                    "seconds": prior_seconds + time.perf_counter() - t0,
                },
            )

        with progress_bar("search", cfg.budget, not self.quiet) as advance:
            for _ in trials:
                advance()

            def on_trial(trial: Trial) -> None:
                checkpoint(trial)
                advance()

            result = run_search(
                strategy, estimator.score, cfg.budget, on_trial=on_trial, resume=previous
            )
        seconds = prior_seconds + time.perf_counter() - t0
        write_json(
            self.path("search.json"),
            {
                "done": True,
                "strategy": cfg.strategy,
                "result": result.to_json(),
                "seconds": seconds,
            },
        )
        best = result.best
        self.log(f"search: best estimate {best.value:.4f} for {best.arch}")
        return result, seconds

    def retrain_stage(
        self, space: SearchSpace, data: Dataset, search: SearchResult, cost: ArchCost
    ) -> tuple[list[dict[str, Any]], float]:
        cfg = self.config
        path = self.path("retrain.json")
        state = read_json(path, missing={"records": [], "seconds": 0.0})
        if state.get("done"):
            self.log("retrain: already done")
            return state["records"], state["seconds"]
        top = search.top_k(cfg.top_k)
        records = state["records"]
        self.log(f"retrain: top-{len(top)} archs from scratch, {cfg.retrain.epochs} epochs each")
        with progress_bar("retrain top-k", len(top), not self.quiet) as advance:
            for i, trial in enumerate(top):
                if i < len(records):
                    advance()
                    continue
                t0 = time.perf_counter()
                model, res = train_arch(space, trial.arch, data, cfg.retrain, seed=cfg.seed)
                save_model(self.path(f"models/top{i}.pt"), model)
                records.append(
                    {
                        "rank": i,
                        "arch": str(trial.arch),
                        "estimate": trial.value,
                        "val_accuracy": res.val_accuracy,
                        "test_accuracy": res.test_accuracy,
                        "params": cost.params(trial.arch),
                        "flops": cost.flops(trial.arch),
                        "model_bits": cost.model_bits(trial.arch),
                        "bitops": cost.bitops(trial.arch),
                        "seconds": res.seconds,
                        "model": f"models/top{i}.pt",
                    }
                )
                state["seconds"] += time.perf_counter() - t0
                write_json(path, {"done": False, "records": records, "seconds": state["seconds"]})
                self.log(
                    f"retrain {i}: {trial.arch} val {res.val_accuracy:.4f} "
                    f"test {res.test_accuracy:.4f}"
                )
                advance()
        write_json(path, {"done": True, "records": records, "seconds": state["seconds"]})
        return records, state["seconds"]

    def trust_stage(
        self, space: SearchSpace, data: Dataset, estimator: SupernetEstimator, feasible
    ) -> tuple[dict[str, Any], float]:
        """Train a random sample standalone and rank-correlate it with the supernet's estimates.

        Each arch is trained with `trust_seeds` seeds (seed, seed+1, ...). `test_accuracy` is
        the first seed's, as before; the Kendall tau between two seeds' accuracies is the
        noise ceiling: the rank agreement that no estimator can be expected to beat.
        """
        cfg = self.config
        path = self.path("trust.json")
        state = read_json(path, missing={"records": [], "seconds": 0.0})
        if state.get("done") or cfg.trust_n == 0:
            return state, state.get("seconds", 0.0)
        archs = trust_sample(space, cfg.trust_n, cfg.seed, feasible)
        records = state["records"]
        self.log(
            f"trust: {len(archs)} random archs trained from scratch ({cfg.retrain.epochs} "
            f"epochs, {cfg.trust_seeds} seed(s) each) vs their supernet estimates"
        )
        with progress_bar("trust check", len(archs) * cfg.trust_seeds, not self.quiet) as advance:
            for i, arch in enumerate(archs):
                if i == len(records):
                    records.append({"arch": str(arch), "estimate": estimator.score([arch])[0]})
                rec = records[i]
                # records of runs from before trust_seeds hold the first seed's numbers only
                vals = rec.setdefault("seed_val_accuracies", _first_seed(rec, "val_accuracy"))
                tests = rec.setdefault("seed_test_accuracies", _first_seed(rec, "test_accuracy"))
                for _ in range(len(tests)):
                    advance()
                for s in range(len(tests), cfg.trust_seeds):
                    t0 = time.perf_counter()
                    _, res = train_arch(space, arch, data, cfg.retrain, seed=cfg.seed + s)
                    vals.append(res.val_accuracy)
                    tests.append(res.test_accuracy)
                    rec["val_accuracy"], rec["test_accuracy"] = vals[0], tests[0]
                    state["seconds"] += time.perf_counter() - t0
                    write_json(
                        path, {"done": False, "records": records, "seconds": state["seconds"]}
                    )
                    advance()
        metrics = rank_report(
            [r["estimate"] for r in records], [r["test_accuracy"] for r in records]
        )
        truths = [r["test_accuracy"] for r in records]
        ceiling = noise_ceiling([r["seed_test_accuracies"] for r in records])
        state = {
            "done": True,
            "records": records,
            "seconds": state["seconds"],
            **metrics,
            # how far apart the truths are, in test images: below a few, ranks are noise
            "truth_range": [min(truths), max(truths)],
            "truth_spread_images": round((max(truths) - min(truths)) * len(data.x_test)),
            "seeds": cfg.trust_seeds,
            "noise_ceiling_tau": ceiling,
        }
        write_json(path, state)
        self.log(
            f"trust: Kendall tau {fmt(metrics['kendall_tau'])}, Spearman rho "
            f"{fmt(metrics['spearman_rho'])} over n={metrics['n']} archs; noise ceiling "
            f"(seed-to-seed tau) {fmt(ceiling) if cfg.trust_seeds > 1 else 'not measured'}"
        )
        return state, state["seconds"]

    def finish(
        self,
        space: SearchSpace,
        data: Dataset,
        search: SearchResult,
        retrained: list[dict[str, Any]],
        trust: dict[str, Any],
        seconds: dict[str, float],
    ) -> dict[str, Any]:
        from supernas.report import write_html_report, write_report

        cfg = self.config
        best = max(retrained, key=lambda r: (r["val_accuracy"], -r["rank"]))
        shutil.copyfile(self.path(best["model"]), self.path("best_model.pt.tmp"))
        self.path("best_model.pt.tmp").replace(self.path("best_model.pt"))
        arch = space.parse(best["arch"])
        write_json(
            self.path("best_arch.json"),
            {
                **arch.to_json(),
                "space_options": space.options,
                "input_shape": list(data.input_shape),  # what `supernas export` feeds it
            },
        )
        result = {
            "space": space.name,
            "space_options": space.options,
            "dataset": data.name,
            "seed": cfg.seed,
            "best_arch": best["arch"],
            "best_estimate": best["estimate"],
            "best_val_accuracy": best["val_accuracy"],
            "best_test_accuracy": best["test_accuracy"],
            "best_params": best["params"],
            "best_flops": best["flops"],
            # a run resumed from before these metrics existed has no value for them
            "best_model_bits": best.get("model_bits"),
            "best_bitops": best.get("bitops"),
            "top_k": retrained,
            "search": {
                "strategy": cfg.strategy,
                "budget": cfg.budget,
                "evaluations": len(search.trials),
                "constraints": cfg.constraints,
            },
            "trust": {
                "kendall_tau": trust.get("kendall_tau", math.nan),
                "spearman_rho": trust.get("spearman_rho", math.nan),
                "n": trust.get("n", 0),
                "truth_range": trust.get("truth_range"),
                "truth_spread_images": trust.get("truth_spread_images"),
                "seeds": trust.get("seeds", 1),
                "noise_ceiling_tau": trust.get("noise_ceiling_tau", math.nan),
                "estimate": "supernet val accuracy (inherited weights, BN recalibrated)",
                "truth": "standalone test accuracy (retrain recipe)",
            },
            "seconds": seconds,
        }
        write_json(self.path("result.json"), result)
        history = read_json(self.path("train.json"))["history"]
        write_report(self.out, result, history, search, trust)
        write_html_report(self.out)
        self.log(
            f"best arch {best['arch']}: estimate {best['estimate']:.4f}, retrained test "
            f"accuracy {best['test_accuracy']:.4f}; trust tau "
            f"{fmt(result['trust']['kendall_tau'])} (n={result['trust']['n']}); "
            f"{seconds['total']:.0f} s"
        )
        return result


def trust_sample(space: SearchSpace, n: int, seed: int, feasible) -> list[Arch]:
    """n distinct random archs, drawn with a seed of their own so they never depend on search."""
    rng = np.random.default_rng([seed, 7919])
    archs: list[Arch] = []
    for _ in range(100 * n):
        a = sample_constrained(space, rng, feasible)
        if a not in archs:
            archs.append(a)
        if len(archs) == n:
            break
    return archs


def _first_seed(rec: dict[str, Any], key: str) -> list[float]:
    return [rec[key]] if key in rec else []


def noise_ceiling(seed_accuracies: list[list[float]]) -> float:
    """Mean Kendall tau between the archs' accuracies under each pair of training seeds.

    NaN with fewer than two seeds (or two archs): the ceiling was not measured.
    """
    from itertools import combinations

    from supernas.bench import kendall_tau

    seeds = min((len(a) for a in seed_accuracies), default=0)
    if seeds < 2 or len(seed_accuracies) < 2:
        return math.nan
    taus = [
        kendall_tau([a[i] for a in seed_accuracies], [a[j] for a in seed_accuracies])
        for i, j in combinations(range(seeds), 2)
    ]
    taus = [t for t in taus if not math.isnan(t)]
    return float(np.mean(taus)) if taus else math.nan


def save_model(path: Path, model: torch.nn.Module) -> None:
    from supernas.io import save_checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    # a plain state dict, as users expect of best_model.pt; save_checkpoint writes atomically
    save_checkpoint(path, dict(model.state_dict()))


def fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


__all__ = ["Run", "build_space", "load_model", "make_constraint", "trust_sample"]


def load_model(run_dir: str | Path) -> torch.nn.Module:
    """The found network of a finished run: best_arch.json + best_model.pt, in eval mode."""
    from supernas.nn import register_run_model
    from supernas.supernet import build_network

    run_dir = Path(run_dir)
    register_run_model(run_dir)  # a run on a user's network (--model): register it first
    info = read_json(run_dir / "best_arch.json")
    space = get_space(info["space"], **info.get("space_options", {}))
    model = build_network(space, Arch.from_json(info))
    path = run_dir / "best_model.pt"
    if not path.is_file():
        raise SupernasError(f"{path} not found: has the run finished?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SupernasError(f"cannot load {path}: {first}") from None
    return model.eval()
