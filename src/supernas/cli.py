"""The `supernas` command line (typer + rich). Bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from supernas.cli_options import (
    ConstraintOpt,
    DataDirOpt,
    DataOpt,
    ImageSizeOpt,
    LutOpt,
    MaxTrainOpt,
    MaxValOpt,
    QuietOpt,
    SeedOpt,
    SpaceOptOpt,
    StrategyOptOpt,
)
from supernas.cli_worker import ColumnOpt, StorageOpt, StudyOpt, TableOpt, WorkersOpt
from supernas.errors import SupernasError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="supernas: one-shot neural architecture search with a trust report in every run.",
)
out_console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn SupernasError (bad input) into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SupernasError as exc:
            err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _space_options(items: list[str] | None) -> dict[str, Any]:
    """KEY=VALUE items (space or strategy options) as a dict with typed values."""
    from supernas.config import parse_option

    return dict(parse_option(s) for s in items or [])


def _int_list(text: str, option: str) -> list[int]:
    """'0,20,100' as [0, 20, 100]; anything else is one clear error naming the option."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SupernasError(f"{option} takes comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise SupernasError(f"{option} values must be >= 0, got {text!r}")
    return values


def _constraints(
    items: list[str] | None, max_params: float | None, max_flops: float | None
) -> list[str]:
    from supernas.hardware import parse_constraint

    out = list(items or [])
    if max_params is not None:
        out.append(f"params<={max_params:g}")
    if max_flops is not None:
        out.append(f"flops<={max_flops:g}")
    for c in out:
        parse_constraint(c)  # validate early: one clear line before any work
    return out


def _load_data(data: str, data_dir: str, max_train: int, max_val: int, image_size: int = 0) -> Any:
    from supernas.data import load_data

    return load_data(
        data,
        data_dir=data_dir or None,
        max_train=max_train,
        max_val=max_val,
        image_size=image_size,
    )


# -- listing -----------------------------------------------------------------------------
@app.command()
@friendly
def spaces(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List the registered search spaces with their sizes."""
    from supernas.space import SPACES, get_space

    rows = []
    for name in SPACES.names():
        s = get_space(name)
        rows.append(
            {"name": name, "size": s.size, "description": s.description, "options": s.options}
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("space", "size", "description")
    for r in rows:
        table.add_row(r["name"], f"{r['size']:,}", r["description"])
    out_console.print(table)


def registries() -> dict[str, list[str]]:
    from supernas.data import list_datasets
    from supernas.hyper import list_hypernets
    from supernas.proxies import list_proxies
    from supernas.search import list_strategies
    from supernas.space import list_spaces
    from supernas.train import list_trainers

    return {
        "spaces": list_spaces(),
        "trainers": list_trainers(),
        "hypernets": list_hypernets(),
        "proxies": list_proxies(),
        "strategies": list_strategies(),
        "datasets": list_datasets(),
    }


@app.command("list")
@friendly
def list_(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List every registry: spaces, trainers, hypernets, proxies, strategies, datasets."""
    reg = registries()
    if as_json:
        print(json.dumps(reg, indent=2))
        return
    for kind, names in reg.items():
        out_console.print(f"[bold]{kind}[/bold]: {', '.join(names) or '(none yet)'}")


# -- the main job ------------------------------------------------------------------------
@app.command()
@friendly
def run(
    out: Annotated[Path, typer.Option("--out", help="run folder")] = Path("runs/default"),
    config: Annotated[Path | None, typer.Option("--config", help="TOML config file")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out")] = False,
    space: Annotated[str | None, typer.Option("--space")] = None,
    space_opt: SpaceOptOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="your own network with choice blocks: path/to/file.py:factory "
            "(replaces --space; --space-opt goes to the factory)",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="digits, fashion-mnist, PATH.npz or a folder of images"),
    ] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir")] = None,
    max_train: Annotated[int | None, typer.Option("--max-train")] = None,
    max_val: Annotated[int | None, typer.Option("--max-val")] = None,
    image_size: Annotated[int | None, typer.Option("--image-size")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="supernet epochs")] = None,
    method: Annotated[
        str | None,
        typer.Option("--method", help="supernet trainer or hypernet (spos, fairnas, ghn, ...)"),
    ] = None,
    trainer_opt: Annotated[
        list[str] | None,
        typer.Option("--trainer-opt", help="KEY=VALUE trainer option (repeatable)"),
    ] = None,
    strategy: Annotated[str | None, typer.Option("--strategy")] = None,
    strategy_opt: StrategyOptOpt = None,
    budget: Annotated[
        int | None, typer.Option("--budget", help="archs evaluated by search")
    ] = None,
    constraint: ConstraintOpt = None,
    max_params: Annotated[float | None, typer.Option("--max-params")] = None,
    max_flops: Annotated[float | None, typer.Option("--max-flops")] = None,
    lut: LutOpt = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", help="archs retrained from scratch")
    ] = None,
    trust_n: Annotated[
        int | None, typer.Option("--trust-n", help="random archs in the trust check")
    ] = None,
    trust_seeds: Annotated[
        int | None,
        typer.Option("--trust-seeds", help="seeds per trust arch (2+ measures the noise ceiling)"),
    ] = None,
    retrain_epochs: Annotated[int | None, typer.Option("--retrain-epochs")] = None,
    quant: Annotated[
        bool,
        typer.Option("--quant", help="mixed-precision quantization search (resnet18_quant)"),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a supernet, search, retrain the top-k and check trust; write a run folder."""
    import dataclasses

    from supernas.config import RunConfig
    from supernas.pipeline import Run

    if model and space:
        raise SupernasError("give --model (your own network) or --space, not both")
    if quant:  # per-block weight/activation bits of a fixed ResNet-18 (docs/quantization.md)
        if model or (space and space != "resnet18_quant"):
            raise SupernasError("--quant searches the resnet18_quant space: drop --space/--model")
        space = "resnet18_quant"
    cfg = RunConfig.load(config) if config else RunConfig()
    changes: dict[str, Any] = {}
    for key, val in (
        ("space", space),
        ("model", model),
        ("data", data),
        ("data_dir", data_dir),
        ("max_train", max_train),
        ("max_val", max_val),
        ("image_size", image_size),
        ("lut", str(lut) if lut else None),
        ("seed", seed),
        ("method", method),
        ("strategy", strategy),
        ("budget", budget),
        ("top_k", top_k),
        ("trust_n", trust_n),
        ("trust_seeds", trust_seeds),
    ):
        if val is not None:
            changes[key] = val
    if space_opt:
        changes["space_options"] = {**cfg.space_options, **_space_options(space_opt)}
    if trainer_opt:
        changes["method_options"] = {**cfg.method_options, **_space_options(trainer_opt)}
    if strategy_opt:
        changes["strategy_options"] = {**cfg.strategy_options, **_space_options(strategy_opt)}
    cons = _constraints(constraint, max_params, max_flops)
    if cons:
        changes["constraints"] = cons
    if epochs is not None:
        changes["supernet"] = dataclasses.replace(cfg.supernet, epochs=epochs)
    if retrain_epochs is not None:
        changes["retrain"] = dataclasses.replace(cfg.retrain, epochs=retrain_epochs)
    cfg = dataclasses.replace(cfg, **changes)
    result = Run(cfg, out, resume=resume, quiet=quiet).execute()
    _print_result(result, out)


def _print_result(result: dict[str, Any], out: Path) -> None:
    from supernas.pipeline import fmt

    t = result["trust"]
    table = Table(
        title=f"supernas run: {result['space']} on {result['dataset']}", show_header=False
    )
    table.add_row("best arch", result["best_arch"])
    table.add_row("supernet estimate (val)", f"{result['best_estimate']:.4f}")
    table.add_row("retrained test accuracy", f"{result['best_test_accuracy']:.4f}")
    table.add_row("params / FLOPs", f"{result['best_params']:,} / {result['best_flops']:,}")
    if result["space"] == "resnet18_quant" and result.get("best_model_bits") is not None:
        table.add_row(
            "model bits / BitOPs", f"{result['best_model_bits']:,} / {result['best_bitops']:,}"
        )
    table.add_row("trust Kendall tau", f"{fmt(t['kendall_tau'])} (n={t['n']})")
    table.add_row("trust Spearman rho", fmt(t["spearman_rho"]))
    ceiling = t.get("noise_ceiling_tau")
    table.add_row(
        "noise ceiling (seed-to-seed tau)",
        "not measured (--trust-seeds 1)" if ceiling is None else fmt(ceiling),
    )
    table.add_row("seconds", f"{result['seconds']['total']:.0f}")
    table.add_row("run folder", str(out))
    out_console.print(table)


# -- stage by stage ----------------------------------------------------------------------
@app.command()
@friendly
def train(
    out: Annotated[Path, typer.Option("--out", help="folder for supernet.pt")],
    space: Annotated[str, typer.Option("--space")] = "resnet18",
    space_opt: SpaceOptOpt = None,
    method: Annotated[str, typer.Option("--method", help="supernet trainer")] = "spos",
    trainer_opt: Annotated[
        list[str] | None,
        typer.Option("--trainer-opt", help="KEY=VALUE trainer option, e.g. order=2 (repeatable)"),
    ] = None,
    data: DataOpt = "digits",
    data_dir: DataDirOpt = "",
    max_train: MaxTrainOpt = 0,
    max_val: MaxValOpt = 0,
    image_size: ImageSizeOpt = 0,
    epochs: Annotated[int, typer.Option("--epochs")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    lr: Annotated[float, typer.Option("--lr")] = 0.1,
    constraint: ConstraintOpt = None,
    max_params: Annotated[float | None, typer.Option("--max-params")] = None,
    max_flops: Annotated[float | None, typer.Option("--max-flops")] = None,
    lut: LutOpt = None,
    seed: SeedOpt = 0,
    quiet: QuietOpt = False,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help="under torchrun: gloo (CPU) or nccl (GPU, default there)"),
    ] = None,
) -> None:
    """Train a supernet and write OUT/supernet.pt (resumes if it exists).

    Under torchrun (several processes) each batch is split across them; see docs/scaling.md.
    """
    from supernas.config import RunConfig
    from supernas.console import progress_bar
    from supernas.io import write_json
    from supernas.pipeline import build_space, make_constraint
    from supernas.supernet import build_supernet
    from supernas.train import Recipe, get_trainer, with_lut
    from supernas.train.distributed import init_from_env, shutdown

    cons = _constraints(constraint, max_params, max_flops)
    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr)
    ds = _load_data(data, data_dir, max_train, max_val, image_size)
    cfg = RunConfig(space=space, space_options=_space_options(space_opt))
    sp = build_space(cfg, ds)
    feasible, _ = make_constraint(sp, ds.input_shape, cons, lut=lut)
    import torch

    par = init_from_env(backend)  # under torchrun: join the process group, pick the device
    torch.manual_seed(seed)
    supernet = build_supernet(sp).to(par.device)
    topts = with_lut(method, _space_options(trainer_opt), lut)
    trainer = get_trainer(method, recipe=recipe, seed=seed, constraint=feasible, **topts)
    if hasattr(trainer, "build"):  # smash/ghn train a hypernetwork, not the supernet
        supernet = trainer.build(sp).to(par.device)
    steps = epochs * -(-len(ds.x_train) // batch_size)
    try:
        with progress_bar("train supernet", steps, not quiet and par.is_writer) as advance:
            history = trainer.fit(
                supernet, ds, checkpoint=out / "supernet.pt", on_step=advance, parallel=par
            )
    finally:
        shutdown(par)
    if not par.is_writer:
        return  # rank 0 alone writes and reports
    # Differentiable trainers (darts, gdas) choose the arch themselves; random_ws returns None.
    derive = getattr(trainer, "derive", None)
    derived = derive() if derive is not None else None
    result: dict[str, Any] = {
        "done": True,
        "method": method,
        "space": sp.name,
        "space_options": sp.options,
        "data": data,
        "constraints": cons,
        "history": history,
    }
    if derived is not None:
        result["arch"] = str(derived)
        result["alphas"] = trainer.alphas()
    write_json(out / "train.json", result)
    last = history[-1]
    out_console.print(
        f"wrote {out / 'supernet.pt'}: {epochs} epochs, final sampled-path "
        f"train accuracy {last['train_accuracy']:.3f}"
    )
    if derived is not None:
        out_console.print(
            f"derived arch ({method}): {derived}", markup=False, highlight=False, soft_wrap=True
        )


@app.command()
@friendly
def search(
    supernet: Annotated[
        Path | None, typer.Option("--supernet", help="supernet.pt from `supernas train`")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="the checkpoint's own network: path/to/file.py:factory"),
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option("--proxy", help="zero-shot instead: score archs with this proxy"),
    ] = None,
    space: Annotated[str, typer.Option("--space", help="with --proxy: the space")] = "resnet18",
    space_opt: SpaceOptOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="with --proxy")] = 64,
    data: DataOpt = "digits",
    data_dir: DataDirOpt = "",
    max_train: MaxTrainOpt = 0,
    max_val: MaxValOpt = 0,
    image_size: ImageSizeOpt = 0,
    strategy: Annotated[
        str | None, typer.Option("--strategy", help="default: evolution, nsga2 with --minimize")
    ] = None,
    strategy_opt: StrategyOptOpt = None,
    budget: Annotated[int, typer.Option("--budget")] = 100,
    top_k: Annotated[int, typer.Option("--top-k")] = 5,
    constraint: ConstraintOpt = None,
    max_params: Annotated[float | None, typer.Option("--max-params")] = None,
    max_flops: Annotated[float | None, typer.Option("--max-flops")] = None,
    objective: Annotated[
        str, typer.Option("--objective", help="maximised: accuracy (val, inherited weights)")
    ] = "accuracy",
    minimize: Annotated[
        list[str] | None,
        typer.Option("--minimize", help="also minimise params, flops or latency_ms: Pareto front"),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", help="one search per target, e.g. 'latency_ms<=5' (repeatable)"),
    ] = None,
    lut: LutOpt = None,
    recal_batches: Annotated[int, typer.Option("--recal-batches")] = 8,
    seed: SeedOpt = 0,
    out: Annotated[Path | None, typer.Option("--out", help="write the result JSON here")] = None,
    quiet: QuietOpt = False,
    workers: WorkersOpt = None,
    storage: StorageOpt = None,
    study: StudyOpt = "supernas",
    table: TableOpt = None,
    column: ColumnOpt = None,
) -> None:
    """Search a trained supernet (val accuracy after BN recalibration), or zero-shot with
    --proxy (untrained networks scored by a zero-cost proxy on one batch).

    Plain: the top-k. With --minimize: the Pareto front of accuracy against cost, with its
    hypervolume. With --target: train once, deploy many, one best arch per target.
    With --workers/--storage: many workers on one Optuna study (docs/scaling.md).
    """
    if workers is not None or storage or table:
        from supernas.cli_worker import distributed_search

        data_opts = {"data": data, "data_dir": data_dir, "max_train": max_train}
        data_opts |= {"max_val": max_val, "image_size": image_size}
        data_opts |= {"recal_batches": recal_batches, "seed": seed}
        return distributed_search(
            supernet=supernet,
            table=table,
            column=column,
            data=data_opts,
            strategy=strategy,
            strategy_options=_space_options(strategy_opt),
            budget=budget,
            top_k=top_k,
            seed=seed,
            workers=workers,
            storage=storage,
            study=study,
            out=out,
            quiet=quiet,
            unsupported={"--proxy": proxy, "--model": model, "--minimize": minimize}
            | {"--target": target, "--constraint": constraint, "--lut": lut}
            | {"--max-params": max_params, "--max-flops": max_flops},
        )
    from supernas.console import progress_bar
    from supernas.deploy import deploy_many, pareto_search
    from supernas.estimate import SupernetEstimator
    from supernas.hardware import ArchCost
    from supernas.io import write_json
    from supernas.pipeline import make_constraint
    from supernas.search import get_strategy, run_search
    from supernas.train import load_supernet

    if objective != "accuracy":
        raise SupernasError(f"unknown objective {objective!r}; valid: accuracy")
    if (supernet is None) == (proxy is None):
        raise SupernasError("give either --supernet (trained) or --proxy (zero-shot)")
    if minimize and target:
        raise SupernasError("use either --minimize (a Pareto front) or --target, not both")
    cons = _constraints(constraint, max_params, max_flops)
    sopts = _space_options(strategy_opt)
    for t in target or []:
        _constraints([t], None, None)
    est: Any
    if model or supernet is not None:  # a supernet of the user's own network (run --model)
        from supernas.nn import register_model_file, register_run_model

        if model:
            register_model_file(model)
        else:  # a run folder's supernet.pt: its config.toml names the network
            register_run_model(Path(supernet).parent)
    if supernet is not None:
        net, ckpt = load_supernet(supernet)
        sp = net.space
        if strategy == "greedy_pool" and "pool" not in sopts and ckpt.get("pool"):
            sopts["pool"] = [a for a, _ in ckpt["pool"]]  # GreedyNAS: start from its pool
        ds = _load_data(data, data_dir, max_train, max_val, image_size)
        _check_data_fits(sp, ds)
        input_shape = ds.input_shape
        from supernas.estimate import HypernetEstimator
        from supernas.hyper import HyperSupernet

        est_cls = HypernetEstimator if isinstance(net, HyperSupernet) else SupernetEstimator
        est = est_cls(net, ds, recal_batches=recal_batches, seed=seed)
    else:
        from supernas.cli_proxies import _space
        from supernas.proxies import ProxyEstimator, proxy_batch

        sp, ds = _space(space, _space_options(space_opt), data, data_dir)
        batch = proxy_batch(ds or data, sp, batch_size=batch_size, seed=seed)
        input_shape = tuple(batch[0].shape[1:])
        est = ProxyEstimator(sp, proxy, batch, seed=seed)
    cost = ArchCost(sp, input_shape, lut=lut)
    feasible, _ = make_constraint(sp, input_shape, cons, cost=cost)
    if minimize:
        strat_name = strategy or "nsga2"
        with progress_bar("pareto search", budget, not quiet) as advance:
            est.on_arch = advance
            res = pareto_search(
                sp,
                est.score,
                cost,
                minimize,
                strategy=strat_name,
                budget=budget,
                seed=seed,
                constraint=feasible,
                strategy_options=sopts,
            )
        _write_front(res, out)
        table = Table("arch", "estimate", *minimize, title=f"Pareto front ({strat_name})")
        for r in res["front"]:
            table.add_row(r["arch"], f"{r['estimate']:.4f}", *(f"{r[m]:,.4g}" for m in minimize))
        out_console.print(table)
        out_console.print(f"hypervolume {res['hypervolume']:.6g} (reference {res['reference']})")
        return
    if target:
        strat_name = strategy or "evolution"
        rows = deploy_many(
            sp,
            est.score,
            cost,
            target,
            strategy=strat_name,
            budget=budget,
            seed=seed,
            constraint=feasible,
            strategy_options=sopts,
        )
        if out:
            write_json(
                out,
                {"strategy": strat_name, "budget": budget, "constraints": cons, "targets": rows},
            )
        table = Table(
            "target",
            "best arch",
            "estimate",
            "at",
            "params",
            "flops",
            title="train once, deploy many",
        )
        for r in rows:
            if r["best_arch"] is None:
                table.add_row(r["target"], "(none feasible)", "", "", "", "")
            else:
                table.add_row(
                    r["target"],
                    r["best_arch"],
                    f"{r['estimate']:.4f}",
                    f"{r['metric']} {r['value']:,.4g}",
                    f"{r['params']:,}",
                    f"{r['flops']:,}",
                )
        out_console.print(table)
        return
    strat_name = strategy or "evolution"
    strat = get_strategy(strat_name, sp, seed=seed, constraint=feasible, **sopts)
    with progress_bar("search", budget, not quiet) as advance:
        result = run_search(strat, est.score, budget, on_trial=lambda t: advance())
    top = result.top_k(top_k)
    if out:
        write_json(
            out,
            {
                "strategy": strat_name,
                "budget": budget,
                "constraints": cons,
                "top_k": [{"arch": str(t.arch), "estimate": t.value} for t in top],
                "result": result.to_json(),
            },
        )
    table = Table("rank", "arch", f"estimate ({proxy or 'val acc'})")
    for i, t in enumerate(top):
        table.add_row(str(i), str(t.arch), f"{t.value:.4f}")
    out_console.print(table)


def _write_front(res: dict[str, Any], out: Path | None) -> None:
    """result JSON, the front as CSV, and a PNG of estimate vs the first minimised metric."""
    import csv
    import io

    from supernas.io import write_json, write_text
    from supernas.report.plots import pareto_plot

    if out is None:
        return
    write_json(out, res)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["arch", "estimate", *res["minimize"]])
    w.writeheader()
    w.writerows(res["front"])
    write_text(out.with_suffix(".front.csv"), buf.getvalue())
    pareto_plot(out.with_suffix(".front.png"), res["evaluated"], res["front"], res["minimize"][0])


def _check_data_fits(space: Any, ds: Any) -> None:
    opts = space.options
    if opts.get("in_channels") not in (None, ds.in_channels) or opts.get("num_classes") not in (
        None,
        ds.num_classes,
    ):
        raise SupernasError(
            f"the supernet was built for {opts.get('in_channels')} input channels and "
            f"{opts.get('num_classes')} classes; the data has {ds.in_channels} and {ds.num_classes}"
        )


@app.command()
@friendly
def retrain(
    arch: Annotated[str, typer.Option("--arch", help="arch string, e.g. from `supernas search`")],
    out: Annotated[Path, typer.Option("--out", help="folder for model.pt, arch.json, result.json")],
    space: Annotated[str, typer.Option("--space")] = "resnet18",
    space_opt: SpaceOptOpt = None,
    supernet: Annotated[
        Path | None, typer.Option("--supernet", help="take space and options from this checkpoint")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="the checkpoint's own network: path/to/file.py:factory"),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option(
            "--init-from", help="start from the weights this smash/ghn checkpoint generates"
        ),
    ] = None,
    compare_steps: Annotated[
        str,
        typer.Option(
            "--compare-steps",
            help="with --init-from: first report val accuracy after each of these numbers of "
            "fine-tuning steps (e.g. 0,20,100) from generated vs random init",
        ),
    ] = "",
    data: DataOpt = "digits",
    data_dir: DataDirOpt = "",
    max_train: MaxTrainOpt = 0,
    max_val: MaxValOpt = 0,
    image_size: ImageSizeOpt = 0,
    epochs: Annotated[int, typer.Option("--epochs")] = 15,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    lr: Annotated[float, typer.Option("--lr")] = 0.1,
    seed: SeedOpt = 0,
) -> None:
    """Train one arch from scratch; write its weights, arch JSON and accuracies."""
    from supernas.config import RunConfig
    from supernas.estimate import train_arch
    from supernas.hardware import ArchCost
    from supernas.io import load_checkpoint, write_json
    from supernas.pipeline import build_space, save_model
    from supernas.space import get_space
    from supernas.train import Recipe

    if compare_steps and init_from is None:
        raise SupernasError("--compare-steps compares with a hypernet's init: give --init-from")
    steps_list = _int_list(compare_steps, "--compare-steps")
    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr)
    ds = _load_data(data, data_dir, max_train, max_val, image_size)
    supernet = supernet or init_from  # a hypernet checkpoint also names the space
    if model or supernet is not None:  # a supernet of the user's own network (run --model)
        from supernas.nn import register_model_file, register_run_model

        if model:
            register_model_file(model)
        else:  # a run folder's supernet.pt: its config.toml names the network
            register_run_model(Path(supernet).parent)
    if supernet is not None:
        ckpt = load_checkpoint(supernet)
        sp = get_space(ckpt["space"], **ckpt["space_options"])
        _check_data_fits(sp, ds)
    else:
        sp = build_space(RunConfig(space=space, space_options=_space_options(space_opt)), ds)
    a = sp.parse(arch)
    compared: list[dict[str, Any]] = []
    if init_from is not None:
        from supernas.hyper.finetune import compare_init, init_from_hypernet, load_hypernet
        from supernas.train import train_model

        hyper = load_hypernet(init_from)
        for k in steps_list:
            compared.append(compare_init(hyper, a, ds, steps=k, recipe=recipe, seed=seed))
            c = compared[-1]
            out_console.print(
                f"after {k} fine-tuning steps: val accuracy {c['hypernet']:.4f} from the "
                f"hypernet's weights, {c['random']:.4f} from random init"
            )
        model = init_from_hypernet(hyper, a)
        res = train_model(model, ds, recipe, seed=seed)
    else:
        model, res = train_arch(sp, a, ds, recipe, seed=seed)
    cost = ArchCost(sp, ds.input_shape)
    save_model(out / "model.pt", model)
    write_json(out / "arch.json", {**a.to_json(), "space_options": sp.options})
    result = {
        "arch": str(a),
        "space": sp.name,
        "dataset": ds.name,
        **res.to_dict(),
        "params": cost.params(a),
        "flops": cost.flops(a),
        "recipe": recipe.to_dict(),
    }
    if compared:
        result["init_compare"] = compared
    write_json(out / "result.json", result)
    out_console.print(
        f"{a}: val accuracy {res.val_accuracy:.4f}, test accuracy "
        f"{res.test_accuracy:.4f} ({res.seconds:.1f} s); wrote {out}"
    )


@app.command()
@friendly
def multifidelity(
    space: Annotated[str, typer.Option("--space")] = "resnet18",
    space_opt: SpaceOptOpt = None,
    data: DataOpt = "digits",
    data_dir: DataDirOpt = "",
    max_train: MaxTrainOpt = 0,
    max_val: MaxValOpt = 0,
    image_size: ImageSizeOpt = 0,
    strategy: Annotated[
        str, typer.Option("--strategy", help="hyperband or successive_halving")
    ] = "hyperband",
    max_epochs: Annotated[int, typer.Option("--max-epochs", help="the full fidelity")] = 27,
    min_epochs: Annotated[int, typer.Option("--min-epochs")] = 1,
    eta: Annotated[int, typer.Option("--eta", help="keep 1/eta of the runs at each rung")] = 3,
    budget: Annotated[int, typer.Option("--budget", help="total epochs over all runs")] = 300,
    extrapolate: Annotated[
        bool, typer.Option(help="stop runs whose extrapolated learning curve cannot win")
    ] = True,
    constraint: ConstraintOpt = None,
    max_params: Annotated[float | None, typer.Option("--max-params")] = None,
    max_flops: Annotated[float | None, typer.Option("--max-flops")] = None,
    lut: LutOpt = None,
    lr: Annotated[float, typer.Option("--lr")] = 0.1,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    top_k: Annotated[int, typer.Option("--top-k")] = 5,
    seed: SeedOpt = 0,
    out: Annotated[Path | None, typer.Option("--out", help="write the result JSON here")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Multi-fidelity search with standalone training: epochs are the fidelity.

    Successive halving / Hyperband (Li et al. 2018) train many archs briefly and only the
    best longer; learning-curve extrapolation stops runs that cannot catch up.
    """
    from supernas.config import RunConfig
    from supernas.console import progress_bar
    from supernas.estimate import val_curve
    from supernas.io import write_json
    from supernas.pipeline import build_space, make_constraint
    from supernas.search import get_multifidelity, run_multifidelity
    from supernas.train import Recipe

    cons = _constraints(constraint, max_params, max_flops)
    ds = _load_data(data, data_dir, max_train, max_val, image_size)
    sp = build_space(RunConfig(space=space, space_options=_space_options(space_opt)), ds)
    feasible, _ = make_constraint(sp, ds.input_shape, cons, lut=lut)
    strat = get_multifidelity(
        strategy,
        sp,
        seed=seed,
        constraint=feasible,
        max_resource=max_epochs,
        min_resource=min_epochs,
        eta=eta,
        extrapolate=extrapolate,
    )
    Recipe(epochs=max_epochs, lr=lr, batch_size=batch_size)  # validate before any work

    def objective(arch, epochs: int):
        return val_curve(sp, arch, ds, Recipe(epochs=epochs, lr=lr, batch_size=batch_size), seed)

    with progress_bar(f"{strategy} (epochs)", budget, not quiet) as advance:
        result = run_multifidelity(strat, objective, budget, on_run=lambda r: advance(r.cost))
    top = result.to_search_result().top_k(top_k)
    if out:
        write_json(
            out,
            {
                "strategy": strategy,
                "space": sp.name,
                "space_options": sp.options,
                "dataset": ds.name,
                "budget_epochs": budget,
                "spent": result.spent,
                "early_stops": result.early_stops,
                "top_k": [{"arch": str(t.arch), "val_accuracy": t.value} for t in top],
                "result": result.to_json(),
            },
        )
    table = Table(
        "rank",
        "arch",
        f"val acc @ {max_epochs} epochs",
        title=f"{strategy}: {result.spent} epochs spent, {len(result.runs)} runs, "
        f"{result.early_stops} stopped early",
    )
    for i, t in enumerate(top):
        table.add_row(str(i), str(t.arch), f"{t.value:.4f}")
    out_console.print(table)


def _add_subapps() -> None:
    import supernas.cli_export  # noqa: F401  (registers `export` and `report`)
    from supernas import (
        cli_proxies,  # noqa: F401  (registers `proxies` and `correlate`)
        cli_trust,  # noqa: F401  (registers `trust`)
    )
    from supernas.cli_bench import bench_app
    from supernas.cli_hardware import hardware_app

    app.add_typer(bench_app, name="bench")
    app.add_typer(hardware_app, name="hardware")
    from supernas.cli_worker import worker

    app.command("worker")(friendly(worker))


_add_subapps()


def main() -> None:
    try:
        app()
    except SupernasError as exc:  # raised outside a command (e.g. while parsing)
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    # `python -m supernas.cli`: this file runs as __main__, but the sub-apps (proxies, trust,
    # export, ...) register on the imported `supernas.cli`, so run that module's app.
    from supernas.cli import main as _main

    _main()
