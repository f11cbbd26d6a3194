"""The command line: listings, the end-to-end run (tiny budget), stage by stage, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from supernas import load_model
from supernas.cli import app

runner = CliRunner()
TINY = [
    "--space-opt",
    "base_width=2",
    "--epochs",
    "1",
    "--budget",
    "4",
    "--top-k",
    "2",
    "--trust-n",
    "3",
    "--retrain-epochs",
    "1",
    "--quiet",
]


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_spaces_json_lists_both_spaces_with_sizes() -> None:
    r = invoke("spaces", "--json")
    assert r.exit_code == 0, r.output
    sizes = {s["name"]: s["size"] for s in json.loads(r.stdout)}
    assert sizes["resnet18"] == 43046721 and sizes["nb201"] == 15625


def test_list_json_prints_every_registry() -> None:
    r = invoke("list", "--json")
    reg = json.loads(r.stdout)
    assert set(reg) == {"spaces", "trainers", "hypernets", "proxies", "strategies", "datasets"}
    assert "spos" in reg["trainers"] and "evolution" in reg["strategies"]
    assert "digits" in reg["datasets"] and "params" in reg["proxies"]


def test_run_end_to_end_writes_the_run_folder_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = invoke("run", "--out", str(out), *TINY)
    assert r.exit_code == 0, r.output
    for name in (
        "config.toml",
        "log.txt",
        "result.json",
        "best_model.pt",
        "best_arch.json",
        "report.md",
        "trust_scatter.png",
        "supernet.pt",
    ):
        assert (out / name).is_file(), name
    res = json.loads((out / "result.json").read_text())
    assert res["space"] == "resnet18" and res["dataset"] == "digits"
    assert 0 <= res["best_test_accuracy"] <= 1
    assert set(res["trust"]) >= {"kendall_tau", "spearman_rho", "n"} and res["trust"]["n"] == 3
    assert set(res["seconds"]) >= {"train", "search", "retrain", "trust", "total"}
    assert "Kendall tau" in (out / "report.md").read_text()
    # the saved model is the standalone best arch and reproduces the reported test accuracy
    from supernas import load_data
    from supernas.train import evaluate

    model = load_model(out)
    acc, _ = evaluate(model, load_data("digits").batches("test", 512))
    assert acc == pytest.approx(res["best_test_accuracy"])
    # a used folder is refused without --resume; with it, finished stages are not redone
    r2 = invoke("run", "--out", str(out), *TINY)
    assert r2.exit_code == 2 and "--resume" in r2.output
    r3 = invoke("run", "--out", str(out), "--resume", "--quiet")
    assert r3.exit_code == 0, r3.output
    res3 = json.loads((out / "result.json").read_text())
    assert res3["best_arch"] == res["best_arch"] and res3["trust"] == res["trust"]


def test_run_with_another_strategy_and_its_options(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = invoke(
        "run", "--out", str(out), *TINY, "--strategy", "tpe", "--strategy-opt", "n_startup_trials=2"
    )
    assert r.exit_code == 0, r.output
    saved = (out / "config.toml").read_text()
    assert 'strategy = "tpe"' in saved and "n_startup_trials = 2" in saved
    assert "population" not in saved  # evolution's defaults stay with evolution
    search = json.loads((out / "search.json").read_text())["result"]
    assert len(search["trials"]) == 4


def test_run_resumes_after_a_kill_mid_retrain(tmp_path: Path) -> None:
    """A run killed mid-retrain (retrain.json not done) finishes with the same result."""
    out = tmp_path / "run"
    assert invoke("run", "--out", str(out), *TINY).exit_code == 0
    full = json.loads((out / "result.json").read_text())
    state = json.loads((out / "retrain.json").read_text())
    state["done"], state["records"] = False, state["records"][:1]
    (out / "retrain.json").write_text(json.dumps(state))
    for name in ("trust.json", "result.json"):
        (out / name).unlink()
    assert invoke("run", "--out", str(out), "--resume", "--quiet").exit_code == 0
    again = json.loads((out / "result.json").read_text())
    assert again["best_arch"] == full["best_arch"]
    assert again["top_k"][1]["test_accuracy"] == full["top_k"][1]["test_accuracy"]
    assert again["trust"]["kendall_tau"] == full["trust"]["kendall_tau"] or (
        again["trust"]["kendall_tau"] != again["trust"]["kendall_tau"]
    )


def test_run_from_a_toml_config_respects_constraints(tmp_path: Path) -> None:
    cfg = tmp_path / "nb.toml"
    cfg.write_text(
        """
[run]
space = "nb201"
budget = 6
top_k = 2
trust_n = 2
constraints = ["params<=12000"]

[space_options]
C = 4
N = 1

[supernet]
epochs = 1

[retrain]
epochs = 1
"""
    )
    out = tmp_path / "run"
    r = invoke("run", "--config", str(cfg), "--out", str(out), "--quiet")
    assert r.exit_code == 0, r.output
    res = json.loads((out / "result.json").read_text())
    assert res["space"] == "nb201" and res["best_arch"].startswith("|")
    assert all(t["params"] <= 12000 for t in res["top_k"])
    search = json.loads((out / "search.json").read_text())["result"]
    from supernas import Arch, ArchCost, get_space

    space = get_space("nb201", C=4, N=1, in_channels=1)
    cost = ArchCost(space, (1, 8, 8))
    assert all(cost.params(Arch.from_json(t["arch"])) <= 12000 for t in search["trials"])
    saved = (out / "config.toml").read_text()
    assert "C = 4" in saved and "params<=12000" in saved


def test_stage_by_stage_train_search_retrain(tmp_path: Path) -> None:
    r = invoke(
        "train",
        "--space",
        "nb201",
        "--space-opt",
        "C=4",
        "--space-opt",
        "N=1",
        "--epochs",
        "1",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "supernet.pt").is_file()
    r = invoke(
        "search",
        "--supernet",
        str(tmp_path / "supernet.pt"),
        "--budget",
        "5",
        "--top-k",
        "2",
        "--out",
        str(tmp_path / "search.json"),
        "--quiet",
        "--constraint",
        "params<=1e9",
    )
    assert r.exit_code == 0, r.output
    top = json.loads((tmp_path / "search.json").read_text())["top_k"]
    assert len(top) == 2
    r = invoke(
        "retrain",
        "--arch",
        top[0]["arch"],
        "--supernet",
        str(tmp_path / "supernet.pt"),
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "retrained"),
    )
    assert r.exit_code == 0, r.output
    state = torch.load(tmp_path / "retrained" / "model.pt", weights_only=True)
    assert isinstance(state, dict) and state


def test_multifidelity_hyperband_on_digits(tmp_path: Path) -> None:
    out = tmp_path / "mf.json"
    r = invoke(
        "multifidelity",
        "--space",
        "nb201",
        "--space-opt",
        "C=2",
        "--space-opt",
        "N=1",
        "--max-epochs",
        "3",
        "--budget",
        "12",
        "--max-train",
        "300",
        "--out",
        str(out),
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert 0 < res["spent"] <= 12 and res["top_k"]
    assert all(0 <= t["val_accuracy"] <= 1 for t in res["top_k"])


def test_retrain_on_a_folder_of_images(tmp_path: Path) -> None:
    from PIL import Image

    for k, name in enumerate(["ants", "bees"]):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (10 + i % 3, 10), (120 * k, 60, i)).save(
                tmp_path / "imgs" / name / f"{i}.png"
            )
    r = invoke(
        "retrain",
        "--space",
        "nb201",
        "--space-opt",
        "C=2",
        "--space-opt",
        "N=1",
        "--arch",
        get_nb201_arch(),
        "--data",
        str(tmp_path / "imgs"),
        "--image-size",
        "8",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "out"),
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    assert res["dataset"] == "imgs" and 0 <= res["test_accuracy"] <= 1


def get_nb201_arch() -> str:
    from supernas import get_space

    return str(get_space("nb201").sample(0))


def test_train_takes_trainer_options_and_names_bad_ones(tmp_path: Path) -> None:
    base = ["train", "--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1"]
    base += ["--max-train", "86", "--max-val", "43", "--batch-size", "43", "--epochs", "1"]
    r = invoke(*base, "--method", "darts", "--trainer-opt", "order=2", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    ckpt = torch.load(tmp_path / "supernet.pt", weights_only=True)
    assert ckpt["trainer"]["order"] == 2
    r = invoke(
        *base, "--method", "darts", "--trainer-opt", "nosuch=1", "--out", str(tmp_path / "b")
    )
    assert r.exit_code == 2
    assert "bad options for trainer 'darts'" in r.output and "nosuch" in r.output


def test_train_proxyless_gets_the_lut_of_its_latency_loss(tmp_path: Path) -> None:
    from supernas.hardware import build_lut
    from supernas.space import get_space

    space = get_space("nb201", C=4, N=1, in_channels=1)
    lut = build_lut(space, (1, 8, 8), calibration=0, warmup=0, repeats=2, rounds=1)
    lut.save(tmp_path / "lut.json")
    r = invoke(
        "train", "--method", "proxyless", "--space", "nb201", "--space-opt", "C=4",
        "--space-opt", "N=1", "--max-train", "86", "--max-val", "43", "--batch-size", "43",
        "--epochs", "1", "--lut", str(tmp_path / "lut.json"), "--out", str(tmp_path / "sn"),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    ckpt = torch.load(tmp_path / "sn" / "supernet.pt", weights_only=True)
    assert ckpt["trainer"]["lut"] is not None  # the LUT's digest: a resume checks it


def test_greedy_pool_search_starts_from_a_greedynas_supernets_pool(tmp_path: Path) -> None:
    from supernas.space import Arch, get_space
    from supernas.train import read_pool

    data = ["--max-train", "86", "--max-val", "43", "--batch-size", "43"]
    space = ["--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1"]
    r = invoke("train", "--method", "greedynas", *space, *data, "--epochs", "1",
               "--trainer-opt", "pool_size=6", "--out", str(tmp_path), "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    pool = [a for a, _ in read_pool(tmp_path / "supernet.pt")]
    assert pool
    out = str(tmp_path / "s.json")
    r = invoke("search", "--supernet", str(tmp_path / "supernet.pt"), *data, "--budget", "3",
               "--strategy", "greedy_pool", "--out", out, "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    trials = json.loads((tmp_path / "s.json").read_text())["result"]["trials"]
    sp = get_space("nb201", C=4, N=1, in_channels=1)
    asked = [str(sp.validate(Arch.from_json(t["arch"]))) for t in trials]
    assert asked == pool[:3]  # the warm-up replays the pool, best first


def test_run_with_a_hypernet_method_and_its_options(tmp_path: Path) -> None:
    out = tmp_path / "run"
    nb201 = ["--space", "nb201", "--space-opt", "C=2", "--space-opt", "N=1"]
    args = [*nb201, *TINY[2:], "--method", "ghn", "--trainer-opt", "archs_per_step=1"]
    r = invoke("run", "--out", str(out), *args)
    assert r.exit_code == 0, r.output
    saved = (out / "config.toml").read_text()
    assert 'method = "ghn"' in saved and "archs_per_step = 1" in saved
    assert json.loads((out / "train.json").read_text())["method"] == "ghn"
    from supernas.io import load_checkpoint

    trainer = load_checkpoint(out / "supernet.pt")["trainer"]
    assert trainer["name"] == "ghn" and trainer["archs_per_step"] == 1
    res = json.loads((out / "result.json").read_text())
    assert res["space"] == "nb201" and 0 <= res["best_test_accuracy"] <= 1
    bad = invoke("run", "--out", str(tmp_path / "bad"), *nb201, "--method", "nosuch")
    assert bad.exit_code == 2 and "valid:" in bad.output and "ghn" in bad.output
