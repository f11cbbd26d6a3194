"""Choice blocks in a user's own network: the supernet path equals the extracted network."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import supernas as sn
from supernas import nn as snn
from supernas.cli import app
from supernas.data import Dataset, load_data
from supernas.errors import SupernasError
from supernas.hardware import count_params
from supernas.nn.choice import Sliced

NAME = "test_nn_tinycnn"


class TinyCNN(nn.Module):
    """Three choices: a shared width, the stem's kernel, and the op of the middle layer."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        width = sn.ValueChoice([4, 8, 12], name="width")
        self.stem = snn.Conv2d(
            in_channels, width, sn.ValueChoice([3, 5], name="kernel"), bias=False
        )
        self.bn = snn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.op = sn.LayerChoice(
            {
                "conv3": nn.Sequential(
                    snn.Conv2d(width, width, 3, bias=False), snn.BatchNorm2d(width), nn.ReLU()
                ),
                "conv5": nn.Sequential(
                    snn.Conv2d(width, width, 5, bias=False), snn.BatchNorm2d(width), nn.ReLU()
                ),
                "skip": nn.Identity(),
            },
            name="op",
        )
        self.head = snn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.stem(x)))
        return self.head(self.op(x).mean((2, 3)))


class HandCNN(nn.Module):
    """The oracle: one arch of TinyCNN written by hand with plain torch layers."""

    def __init__(self, width: int, kernel: int, op: str, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.op: nn.Module = nn.Identity()
        if op != "skip":
            k = int(op[-1])
            self.op = nn.Sequential(
                nn.Conv2d(width, width, k, padding=k // 2, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.stem(x)))
        return self.head(self.op(x).mean((2, 3)))


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def small_digits() -> Dataset:
    return load_data("digits", max_train=200, max_val=100)


@pytest.fixture
def supernet() -> snn.ModelSupernet:
    """A supernet whose BN statistics were moved by train-mode forwards of several paths."""
    torch.manual_seed(0)
    sup = sn.as_supernet(TinyCNN(), NAME, in_channels=1, num_classes=10).train()
    with torch.no_grad():
        for i in range(6):
            sup(images(seed=10 + i) * 2 + 0.5, sup.space.sample(i))
    return sup


def test_space_of_lists_the_choices_in_module_order() -> None:
    space = sn.space_of(TinyCNN(), "mine")
    assert space.name == "mine"
    assert [(c.name, c.options) for c in space.choices] == [
        ("width", (4, 8, 12)),
        ("kernel", (3, 5)),
        ("op", ("conv3", "conv5", "skip")),
    ]
    assert space.size == 18
    arch = space.arch({"width": 8, "kernel": 5, "op": "skip"})
    assert str(arch) == "width=8,kernel=5,op=skip"
    assert space.parse(str(arch)) == arch
    assert sn.space_of(TinyCNN()).name == "tinycnn"


def test_default_names_come_from_module_paths_and_class_names() -> None:
    w = sn.ValueChoice([2, 4])  # one object in two layers: one choice, named at first use
    model = nn.Sequential(
        snn.Conv2d(1, w, sn.ValueChoice([1, 3])),
        snn.BatchNorm2d(w),
        sn.LayerChoice([nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1), nn.Identity()]),
    )
    space = sn.space_of(model)
    assert [(c.name, c.options) for c in space.choices] == [
        ("0.out", (2, 4)),
        ("0.kernel", (1, 3)),
        ("2", ("Conv2d_0", "Conv2d_1", "Identity")),
    ]


def test_a_shared_name_is_one_choice_and_a_clash_is_an_error() -> None:
    model = nn.Sequential(
        snn.Conv2d(1, sn.ValueChoice([2, 4], name="w"), 3),
        snn.BatchNorm2d(sn.ValueChoice([2, 4], name="w")),
    )
    assert sn.space_of(model).names == ("w",)
    clash = nn.Sequential(
        snn.Conv2d(1, sn.ValueChoice([2, 4], name="w"), 3),
        snn.BatchNorm2d(sn.ValueChoice([2, 8], name="w")),
    )
    with pytest.raises(SupernasError, match="named 'w' but differ"):
        sn.space_of(clash)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_extract_matches_the_supernet_for_every_arch(
    supernet: snn.ModelSupernet, mode: str
) -> None:
    supernet.train(mode == "train")
    x = images(seed=1)
    for arch in supernet.space.enumerate():
        net = supernet.extract(arch)
        assert net.training == (mode == "train")
        with torch.no_grad():
            want = supernet(x, arch)
            got = net(x)
        assert got.shape == (6, 10)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_train_step_moves_the_same_bn_statistics(supernet: snn.ModelSupernet) -> None:
    """Train mode: same loss, and the standalone BN stats are the slice of the supernet's."""
    arch = supernet.space.arch({"width": 8, "kernel": 3, "op": "conv5"})
    net = supernet.extract(arch).train()
    supernet.train()
    x, y = images(seed=2), torch.arange(6) % 10
    torch.testing.assert_close(F.cross_entropy(net(x), y), F.cross_entropy(supernet(x, arch), y))
    full = supernet.model
    for mine, theirs in ((net.bn, full.bn), (net.op[1], full.op.candidates["conv5"][1])):
        c = mine.num_features
        assert c == 8 < theirs.num_features
        torch.testing.assert_close(mine.running_mean, theirs.running_mean[:c])
        torch.testing.assert_close(mine.running_var, theirs.running_var[:c])
        assert int(mine.num_batches_tracked) == int(theirs.num_batches_tracked)


@pytest.mark.parametrize("width,kernel,op", [(4, 3, "skip"), (8, 5, "conv3"), (12, 3, "conv5")])
def test_extracted_network_is_the_hand_written_one(
    supernet: snn.ModelSupernet, width: int, kernel: int, op: str
) -> None:
    arch = supernet.space.arch({"width": width, "kernel": kernel, "op": op})
    net = supernet.extract(arch).eval()
    assert not any(isinstance(m, sn.LayerChoice | Sliced) for m in net.modules())
    assert not any(isinstance(v, sn.ValueChoice) for m in net.modules() for v in vars(m).values())
    hand = HandCNN(width, kernel, op)
    assert count_params(net) == count_params(hand)
    hand.load_state_dict(net.state_dict())  # strict: same keys and shapes
    hand.eval()
    x = images(seed=3)
    torch.testing.assert_close(hand(x), net(x))
    if (width, kernel, op) == (8, 5, "conv3"):  # stem + bn + conv3 + bn + head, by hand
        assert count_params(net) == 1 * 8 * 25 + 16 + 8 * 8 * 9 + 16 + (8 * 10 + 10)


def test_nested_and_reused_blocks_extract_to_the_same_network() -> None:
    """A choice inside a candidate, and one LayerChoice object used twice (shared weights)."""
    torch.manual_seed(5)
    inner = sn.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh()}, name="act")
    outer = sn.LayerChoice(
        {"conv": nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), inner), "skip": nn.Identity()},
        name="op",
    )
    shared = sn.LayerChoice([nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 3, padding=1)], name="twice")
    model = nn.Sequential(outer, shared, nn.ReLU(), shared)
    sup = sn.as_supernet(model, "test_nn_nested").eval()
    assert sup.space.names == ("op", "act", "twice")
    x = images(seed=6)
    for arch in sup.space.enumerate():
        net = sup.extract(arch)
        assert net[1] is net[3]  # still one module: the weights stay shared
        torch.testing.assert_close(net(x), sup(x, arch))


def test_kernel_choice_crops_the_centre_of_the_largest_kernel() -> None:
    conv = snn.Conv2d(1, 1, sn.ValueChoice([1, 3, 5], name="k"), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(25.0).reshape(1, 1, 5, 5))
    sup = sn.as_supernet(nn.Sequential(conv), "test_nn_kernel")
    for k, want in (
        (5, torch.arange(25.0).reshape(5, 5)),
        (3, [[6, 7, 8], [11, 12, 13], [16, 17, 18]]),
        (1, [[12]]),
    ):
        plain = sup.extract(sup.space.arch({"k": k}))[0]
        assert isinstance(plain, nn.Conv2d) and plain.padding == (k // 2, k // 2)
        torch.testing.assert_close(plain.weight[0, 0], torch.as_tensor(want, dtype=torch.float32))
    x = images(2, seed=4)
    torch.testing.assert_close(
        sup(x, sup.space.arch({"k": 3})), F.conv2d(x, conv.weight[:, :, 1:4, 1:4], padding=1)
    )


def test_blocks_outside_a_supernet_call_and_bad_blocks_are_clear_errors() -> None:
    model = TinyCNN()
    with pytest.raises(SupernasError, match="no active value"):
        model(images())
    with pytest.raises(SupernasError, match="no active candidate"):
        model.op(images())
    with pytest.raises(SupernasError, match="no choice blocks"):
        sn.space_of(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(SupernasError, match="positive ints"):
        sn.ValueChoice([0, 2])
    with pytest.raises(SupernasError, match="at least one candidate"):
        sn.LayerChoice([])
    with pytest.raises(SupernasError, match="must be odd"):
        snn.Conv2d(1, 2, sn.ValueChoice([2, 3]))

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.depth = sn.ValueChoice([1, 2])

    with pytest.raises(SupernasError, match=r"only supernas\.nn\.Conv2d"):
        sn.space_of(Holder())
    # a plain-int in-size after a searched width: said at the layer, with the fix
    bad = nn.Sequential(snn.Conv2d(1, sn.ValueChoice([2, 4], name="w"), 3), snn.Conv2d(4, 2, 3))
    sup = sn.as_supernet(bad, "test_nn_bad")
    with pytest.raises(SupernasError, match=r"input has 2 .* expected 4"):
        sup(images(), sup.space.arch({"w": 2}))
    with pytest.raises(SupernasError, match="not an option"):
        sup(images(), "w=3")


def test_registered_model_rebuilds_from_a_checkpoint(small_digits: Dataset, tmp_path: Path) -> None:
    """SPOS trains it; load_supernet rebuilds it by name; build_network is train-from-scratch."""
    sn.register_model(NAME, TinyCNN)
    space = sn.get_space(NAME, in_channels=1, num_classes=10)
    assert space.options == {"in_channels": 1, "num_classes": 10}
    torch.manual_seed(0)
    sup = sn.build_supernet(space)
    history = sn.SPOSTrainer(sn.Recipe(epochs=1, batch_size=64, lr=0.05), seed=0).fit(
        sup, small_digits, checkpoint=tmp_path / "supernet.pt"
    )
    assert len(history) == 1 and history[0]["train_loss"] > 0
    loaded, _ = sn.load_supernet(tmp_path / "supernet.pt")
    x = small_digits.x_test[:8]
    arch = space.sample(1)
    torch.testing.assert_close(loaded(x, arch), sup(x, arch))
    fresh = sn.build_network(space, arch)
    assert count_params(fresh) == count_params(sup.extract(arch))
    with pytest.raises(SupernasError, match="unknown options"):
        sn.get_space(NAME, depth=3)
    with pytest.raises(SupernasError, match="already a registered space"):
        sn.register_model("resnet18", TinyCNN)


def test_estimators_and_strategies_work_unchanged(small_digits: Dataset) -> None:
    from supernas.proxies import ProxyEstimator, proxy_batch

    sn.register_model(NAME, TinyCNN)
    space = sn.get_space(NAME, in_channels=1, num_classes=10)
    sup = sn.build_supernet(space)
    estimator = sn.SupernetEstimator(sup, small_digits, recal_batches=2)
    result = sn.run_search(sn.get_strategy("evolution", space, seed=0), estimator.score, budget=4)
    assert len(result.trials) == 4 and 0 <= result.best.value <= 1
    proxies = ProxyEstimator(
        space, ["synflow", "params"], proxy_batch(small_digits, space, batch_size=16)
    )
    table = proxies.score_table([result.best.arch, space.sample(7)])
    assert all(len(v) == 2 for v in table.values())
    truth = sn.TrainFromScratch(space, small_digits, sn.Recipe(epochs=1, batch_size=64))
    assert 0 <= truth.score([result.best.arch])[0] <= 1


MODEL_FILE = """
import torch
from torch import nn

import supernas as sn
from supernas import nn as snn


class Net(nn.Module):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        w = sn.ValueChoice([4, 8], name="width")
        self.conv = snn.Conv2d(in_channels, w, sn.ValueChoice([3, 5], name="kernel"))
        self.op = sn.LayerChoice({"relu": nn.ReLU(), "tanh": nn.Tanh()}, name="act")
        self.head = snn.Linear(w, num_classes)

    def forward(self, x):
        return self.head(self.op(self.conv(x)).mean((2, 3)))


def build(num_classes=10):
    return Net(num_classes=num_classes)


def three_classes():
    return Net(num_classes=3)


def plain():
    return nn.Linear(2, 2)
"""


def test_cli_run_on_a_model_file(tmp_path: Path) -> None:
    path = tmp_path / "mynet.py"
    path.write_text(textwrap.dedent(MODEL_FILE))
    runner = CliRunner()
    common = ["--epochs", "1", "--budget", "4", "--top-k", "1", "--trust-n", "2"]
    common += ["--retrain-epochs", "1", "--max-train", "200", "--max-val", "100", "--quiet"]
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--model", f"{path}:build", "--out", str(out), *common])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    assert result["space"] == "mynet.build"
    assert result["best_arch"].startswith("width=")
    assert f'model = "{path}:build"' in (out / "config.toml").read_text()
    # a fresh process knows nothing of mynet.build: load_model registers it from config.toml
    code = (
        "import torch, supernas; "
        f"print(supernas.load_model({str(out)!r})(torch.zeros(2, 1, 8, 8)).shape)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "torch.Size([2, 10])" in proc.stdout, proc.stderr
    res = runner.invoke(app, ["run", "--out", str(out), "--resume", "--quiet"])  # saved config
    assert res.exit_code == 0, res.output
    search = ["search", "--supernet", str(out / "supernet.pt"), "--model", f"{path}:build"]
    search += ["--budget", "3", "--max-train", "200", "--max-val", "100", "--quiet"]
    res = runner.invoke(app, [*search, "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s.json").read_text())["top_k"][0]["arch"].startswith("width=")

    def error(spec: str, *more: str) -> str:
        args = ["run", "--model", spec, "--out", str(tmp_path / "x"), *common, *more]
        r = runner.invoke(app, args)
        assert r.exit_code == 2, r.output
        return " ".join(r.output.split())

    assert "model file not found" in error(str(tmp_path / "nope.py:build"))
    assert "factory 'missing' not found" in error(f"{path}:missing")
    assert "no choice blocks" in error(f"{path}:plain")
    assert "data has 10 classes" in error(f"{path}:three_classes")
    assert "path/to/file.py:factory" in error(str(path))
    assert "not both" in error(f"{path}:build", "--space", "nb201")
