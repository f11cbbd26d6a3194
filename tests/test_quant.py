"""Mixed-precision quantization search: STE, levels, float at 32 bits, extract, costs, run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from supernas.cli import app
from supernas.errors import SupernasError
from supernas.hardware import ArchCost, parse_constraint
from supernas.hardware.bits import count_bitops, count_model_bits
from supernas.space import get_space
from supernas.supernet import build_network, build_supernet
from supernas.supernet.fake_quant import QuantConv2d, quantize_act, quantize_weight


def small_space(**opts: int):
    return get_space("resnet18_quant", **{"base_width": 2, "in_channels": 1, **opts})


def test_space_round_trips_and_rejects_bad_text() -> None:
    space = small_space()
    assert space.size == 4**16
    arch = space.sample(3)
    assert space.parse(str(arch)) == arch
    assert str(space.parse("-".join(["w4a8"] * 8))) == "-".join(["w4a8"] * 8)
    with pytest.raises(SupernasError, match="w<bits>a<bits>"):
        space.parse("-".join(["k3w1"] * 8))
    with pytest.raises(SupernasError, match="not an option"):
        space.parse("-".join(["w3a8"] * 8))


def test_ste_gradient_is_identity_within_range() -> None:
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    quantize_weight(w, 2).backward(torch.arange(w.numel(), dtype=torch.float).view_as(w))
    assert torch.equal(w.grad, torch.arange(w.numel(), dtype=torch.float).view_as(w))
    alpha = torch.tensor(1.5, requires_grad=True)
    x = torch.tensor([-0.5, 0.1, 0.7, 1.2, 1.49, 2.0, 5.0], requires_grad=True)
    quantize_act(x, alpha, 4).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert alpha.grad is not None and alpha.grad > 0  # clipped inputs pull the clip up (PACT)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantized_values_take_at_most_2_to_the_bits_levels(bits: int) -> None:
    w = torch.randn(5, 8, 3, 3)
    q = quantize_weight(w, bits)
    for c in range(5):
        assert len(torch.unique(q[c])) <= 2**bits
    assert (q.abs().amax((1, 2, 3)) - w.abs().amax((1, 2, 3))).abs().max() < 1e-6
    a = quantize_act(torch.rand(1000) * 3, torch.tensor(2.0), bits)
    assert len(torch.unique(a)) <= 2**bits and a.min() >= 0 and a.max() <= 2.0 + 1e-6


def test_32_bits_is_exactly_float() -> None:
    w, x = torch.randn(4, 3, 3, 3), torch.randn(2, 3, 6, 6)
    assert quantize_weight(w, 32) is w
    assert quantize_act(x, torch.tensor(1.0), 32) is x
    conv = QuantConv2d(3, 4, 3, padding=1, bias=False)
    assert torch.equal(conv(x, 32), F.conv2d(x, conv.weight, None, 1, 1))
    space = small_space()
    net = build_network(space, space.parse("-".join(["w32a32"] * 8)))
    assert not any("alphas" in k for k in net.state_dict())  # no clip: nothing quantized


def test_extract_equals_the_supernet_for_sampled_bits() -> None:
    torch.manual_seed(0)
    space = small_space()
    sup = build_supernet(space).train()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        for seed in range(4):  # train-mode forwards move BN stats off their init
            sup(x * (seed + 1), space.sample(seed))
    sup.eval()
    for seed in range(10, 16):
        arch = space.sample(seed)
        net = sup.extract(arch)
        with torch.no_grad():
            torch.testing.assert_close(net(x), sup(x, arch), atol=1e-5, rtol=1e-5)
        assert set(net.state_dict()) < set(sup.state_dict())  # only this arch's clips


def test_model_bits_and_bitops_by_hand_on_a_tiny_net() -> None:
    conv = QuantConv2d(2, 3, 3, bias=False)
    conv.w_bits, conv.a_bits = 4, 8
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(12, 4))
    # conv: 54 weights at 4 bits; linear: 48 weights + 4 biases at 32 bits
    assert count_model_bits(net) == 54 * 4 + 52 * 32
    # conv on 4x4 -> 2x2: 3 * 2 * 2 outputs x 2 * 9 MACs each, at 4 x 8; linear 48 MACs float
    assert count_bitops(net, (2, 4, 4)) == 12 * 18 * 4 * 8 + 48 * 32 * 32


def test_arch_cost_of_the_space_matches_its_float_and_uniform_archs() -> None:
    space = small_space()
    cost = ArchCost(space, (1, 8, 8))
    full = space.parse("-".join(["w32a32"] * 8))
    assert cost.model_bits(full) == 32 * cost.params(full)
    assert cost.bitops(full) == 512 * cost.flops(full)  # 1024 x MACs
    arch = space.parse("-".join(["w4a8"] * 8))
    net = build_network(space, arch)
    block_w = sum(m.weight.numel() for m in net.blocks.modules() if isinstance(m, nn.Conv2d))
    # 16 clips (alphas, float) come with the 8-bit activations
    assert cost.params(arch) == cost.params(full) + 16
    assert cost.model_bits(arch) == 32 * cost.params(arch) - (32 - 4) * block_w
    for a in [arch, *(space.sample(seed) for seed in range(3))]:  # the affine fast path
        net = build_network(space, a)
        assert cost.model_bits(a) == count_model_bits(net)
        assert cost.bitops(a) == count_bitops(net, (1, 8, 8))
    assert cost.bitops(arch) < cost.bitops(full)
    assert cost.metric("bitops", arch) == cost.bitops(arch)
    c = parse_constraint("model_bits<=1M")
    assert (c.metric, c.value) == ("model_bits", 1e6)
    assert parse_constraint("bitops<1e9").metric == "bitops"


def test_run_quant_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    space = get_space("resnet18_quant", base_width=2, in_channels=1)
    limit = 32 * ArchCost(space, (1, 8, 8)).params(space.sample(0)) // 6
    args = ["run", "--quant", "--out", str(out), "--space-opt", "base_width=2"]
    args += ["--epochs", "1", "--budget", "4", "--top-k", "1", "--trust-n", "2"]
    args += ["--trust-seeds", "1", "--retrain-epochs", "1", "--max-train", "200", "--quiet"]
    r = CliRunner().invoke(app, [*args, "--constraint", f"model_bits<={limit}"])
    assert r.exit_code == 0, r.output
    for name in ("config.toml", "result.json", "best_model.pt", "best_arch.json", "report.md"):
        assert (out / name).is_file(), name
    res = json.loads((out / "result.json").read_text())
    assert res["space"] == "resnet18_quant"
    assert 0 < res["best_model_bits"] <= limit and res["best_bitops"] > 0
    assert 'space = "resnet18_quant"' in (out / "config.toml").read_text()
    bad = CliRunner().invoke(app, ["run", "--quant", "--space", "nb201", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--quant" in bad.output
