"""Pruning-based NAS: archs cut from one trained wide resnet18 by L1 filter pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from supernas.cli import app
from supernas.data import load_data
from supernas.errors import SupernasError
from supernas.estimate.pruning import PruningEstimator, prune_into, widest_arch
from supernas.space import get_space
from supernas.supernet import build_network

SPACE = get_space("resnet18", base_width=4, in_channels=1, num_classes=10)
runner = CliRunner()


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", max_train=129, max_val=64)


def wide_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_network(SPACE, widest_arch(SPACE))
    with torch.no_grad():  # non-trivial BN statistics, so copying them matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_widest_arch_prunes_to_itself_exactly() -> None:
    assert str(widest_arch(SPACE)) == "-".join(["k7w2"] * 8)
    wide = wide_net()
    same = prune_into(wide, build_network(SPACE, widest_arch(SPACE))).eval()
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(same(x), wide(x), rtol=0, atol=0)


def test_keeps_the_largest_l1_filters_and_crops_the_kernel() -> None:
    wide = wide_net()
    arch = SPACE.parse("k3w0.5-" + "-".join(["k5w1"] * 7))
    net = prune_into(wide, build_network(SPACE, arch))
    src = wide.blocks[0].branches["k7"]
    dst = net.blocks[0].branches["k3"]
    norms = src.conv1.weight.abs().sum((1, 2, 3)).tolist()
    mid = dst.conv1.out_channels
    keep = sorted(sorted(range(len(norms)), key=lambda i: -norms[i])[:mid])
    torch.testing.assert_close(dst.conv1.weight, src.conv1.weight[keep][:, :, 2:5, 2:5])
    torch.testing.assert_close(dst.conv2.weight, src.conv2.weight[:, keep][:, :, 2:5, 2:5])
    torch.testing.assert_close(dst.bn1.running_var, src.bn1.running_var[keep])
    torch.testing.assert_close(net.fc.weight, wide.fc.weight)
    with pytest.raises(SupernasError, match="wider"):
        prune_into(net, build_network(SPACE, widest_arch(SPACE)))


def test_estimator_is_deterministic_and_finetuning_helps(digits) -> None:
    wide = wide_net()
    archs = [SPACE.sample(i) for i in range(3)]
    a = PruningEstimator(SPACE, wide, digits, finetune_steps=0).score(archs)
    b = PruningEstimator(SPACE, wide, digits, finetune_steps=0).score(archs)
    assert a == b and all(0 <= v <= 1 for v in a)
    tuned = PruningEstimator(SPACE, wide, digits, finetune_steps=5, seed=1).score(archs[:1])
    again = PruningEstimator(SPACE, wide, digits, finetune_steps=5, seed=1).score(archs[:1])
    assert tuned == again
    with pytest.raises(SupernasError, match="resnet18"):
        PruningEstimator(get_space("nb201"), wide, digits).score([get_space("nb201").sample(0)])


def test_trust_cli_with_the_pruning_estimator(tmp_path: Path) -> None:
    opts = ["--space", "resnet18", "--space-opt", "base_width=4", "--data", "digits"]
    r = runner.invoke(
        app,
        ["retrain", *opts, "--arch", str(widest_arch(SPACE)), "--epochs", "1",
         "--batch-size", "43", "--out", str(tmp_path / "wide")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    table = tmp_path / "t.csv"
    rows = ["arch,seed,val_accuracy,test_accuracy,params,flops,train_seconds"]
    for i in range(4):
        for seed in range(2):
            acc = 0.5 + 0.1 * i + 0.01 * seed
            rows.append(f"{SPACE.sample(i)},{seed},{acc},{acc},1,1,1.0")
    table.write_text("\n".join(rows) + "\n")
    meta = {"space": "resnet18", "space_options": dict(SPACE.options), "data": "digits"}
    (tmp_path / "t.csv.meta.json").write_text(json.dumps(meta))
    r = runner.invoke(
        app,
        ["trust", "--estimator", f"pruning:{tmp_path / 'wide' / 'model.pt'}",
         "--table", str(table), "--out", str(tmp_path / "o"), "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "o" / "trust.json").read_text())
    assert doc["n"] == 4 if "n" in doc else doc["metrics"]["n"] == 4
    bad = runner.invoke(
        app,
        ["trust", "--estimator", f"pruning:{table}", "--table", str(table),
         "--out", str(tmp_path / "o2"), "-q"],
    )  # fmt: skip
    assert bad.exit_code == 2
