"""Hardware cost: FLOPs against hand formulas, meta-device counts against CPU counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supernas.errors import SupernasError
from supernas.hardware import ArchCost, Constraint, count_flops, count_params, parse_constraint
from supernas.space import get_space
from supernas.supernet import SUPERNETS, build_network

#: ResNet-18 block out-channel multipliers and strides, written out as the oracle.
MULTS = (1, 1, 2, 2, 4, 4, 8, 8)
STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)

SMALL = {
    "resnet18": {"base_width": 4},
    "nb201": {"C": 4, "N": 1},
    "mobilenetv2": {"base_width": 4},
    "vit": {"embed_dim": 8, "depth": 2},
}


@pytest.mark.parametrize(
    ("conv", "shape", "hout"),
    [
        (nn.Conv2d(3, 8, 3, padding=1, bias=False), (3, 10, 10), 10),
        (nn.Conv2d(4, 6, 5, stride=2, padding=2), (4, 9, 9), 5),
        (nn.Conv2d(5, 7, 1), (5, 6, 6), 6),
    ],
)
def test_conv_flops_are_two_macs_per_output(conv: nn.Conv2d, shape: tuple, hout: int) -> None:
    k = conv.kernel_size[0]
    want = 2 * conv.in_channels * conv.out_channels * k * k * hout * hout
    assert count_flops(conv, shape) == want


def test_linear_and_sequential_flops_and_params() -> None:
    lin = nn.Linear(20, 7)
    assert count_flops(lin, (20,)) == 2 * 20 * 7
    assert count_params(lin) == 20 * 7 + 7
    seq = nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(12, 4))
    assert count_flops(seq, (2, 4, 4)) == 2 * 2 * 3 * 9 * 2 * 2 + 2 * 12 * 4
    assert count_params(seq) == 2 * 3 * 9 + 12 * 4 + 4


def test_count_flops_restores_train_mode() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    count_flops(net, (1, 5, 5))
    assert net.training
    assert int(net[1].num_batches_tracked) == 0  # counted in eval mode: stats untouched


@pytest.mark.parametrize("name", SUPERNETS.names())
def test_arch_cost_on_meta_equals_cpu(name: str) -> None:
    space = get_space(name, **SMALL.get(name, {}))
    shape = (space.options.get("in_channels", 3), 16, 16)
    meta, cpu = ArchCost(space, shape), ArchCost(space, shape, device="cpu")
    for seed in range(3):
        arch = space.sample(seed)
        assert meta.params(arch) == cpu.params(arch)
        assert meta.flops(arch) == cpu.flops(arch) > 0
        assert meta.params(arch) == count_params(build_network(space, arch))


def test_arch_cost_meta_is_cheap_for_huge_widths() -> None:
    space = get_space("resnet18", base_width=1024, stem="imagenet")
    arch = space.arch({n: 7 if n.endswith("kernel") else 2.0 for n in space.names})
    cost = ArchCost(space, (3, 64, 64))
    assert cost.params(arch) > 2e9  # would need > 8 GB on the CPU
    assert cost.flops(arch) > 0


def test_resnet18_flops_hand_formula_for_one_arch() -> None:
    space = get_space("resnet18", base_width=2, num_classes=5)
    arch = space.parse("-".join(["k3w1"] * 8))
    size, total, prev = 8, 2 * 3 * 2 * 9 * 8 * 8, 2
    for mult, stride in zip(MULTS, STRIDES, strict=True):
        out = 2 * mult
        size = (size - 1) // stride + 1
        total += 2 * (prev * out * 9 + out * out * 9) * size * size
        if stride != 1 or prev != out:
            total += 2 * prev * out * size * size
        prev = out
    total += 2 * prev * 5
    assert ArchCost(space, (3, 8, 8)).flops(arch) == total


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("params<=1e6", Constraint("params", "<=", 1e6)),
        (" flops < 300M ", Constraint("flops", "<", 3e8)),
        ("params>=2.5k", Constraint("params", ">=", 2500.0)),
        ("FLOPS>1G", Constraint("flops", ">", 1e9)),
        ("params<100", Constraint("params", "<", 100.0)),
    ],
)
def test_parse_constraint(text: str, want: Constraint) -> None:
    assert parse_constraint(text) == want


@pytest.mark.parametrize("text", ["", "params", "params=5", "latency<3", "params<=x", "<=5"])
def test_bad_constraint_lists_the_valid_form(text: str) -> None:
    with pytest.raises(SupernasError, match="params<=1e6"):
        parse_constraint(text)


def test_constraint_check_uses_arch_cost() -> None:
    space = get_space("nb201", C=4, N=1)
    cost = ArchCost(space, (3, 8, 8))
    arch = space.sample(0)
    n = cost.params(arch)
    assert parse_constraint(f"params<={n}").check(cost, arch)
    assert not parse_constraint(f"params<{n}").check(cost, arch)
    assert parse_constraint(f"flops>={cost.flops(arch)}").check(cost, arch)
    assert not parse_constraint("flops>1e15").check(cost, arch)
    with pytest.raises(SupernasError):
        ArchCost(space, (3, 8, 8), device="cuda")
    with pytest.raises(SupernasError):
        cost.params(get_space("resnet18", base_width=4).sample(0))
    assert torch.empty(1).device.type == "cpu"  # meta counting leaves the default device
