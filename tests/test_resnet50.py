"""The resnet50 channel space: 21^49 networks, exact size, search works, enumeration refuses."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from supernas.cli import app
from supernas.errors import SupernasError
from supernas.hardware import ArchCost, count_params
from supernas.search import get_strategy
from supernas.space import get_space
from supernas.space.resnet50 import CHANNELS, KERNELS, NUM_CONVS, STAGES
from supernas.supernet import build_network, build_supernet

SPACE = get_space("resnet50", in_channels=1, num_classes=10)


def smallest() -> str:
    return "-".join(["k3c16"] * NUM_CONVS)


def test_size_is_exact_and_about_the_talks_order() -> None:
    assert NUM_CONVS == 49 and len(SPACE.choices) == 98
    assert SPACE.size == 21**49 == math.prod([len(KERNELS) * len(CHANNELS)] * NUM_CONVS)
    assert isinstance(SPACE.size, int) and 10**64 < SPACE.size < 10**65


def test_max_channels_caps_the_widths() -> None:
    small = get_space("resnet50", max_channels=32)
    assert small.size == 6**49 and small.choices[1].options == (16, 32)
    with pytest.raises(SupernasError, match="max_channels must be one of 32, 64"):
        get_space("resnet50", max_channels=48)


def test_exhaustive_and_enumerate_refuse_and_name_the_size() -> None:
    with pytest.raises(SupernasError, match=r"61,481,639.*about 6\.1e\+64"):
        get_strategy("exhaustive", SPACE, seed=0)
    with pytest.raises(SupernasError, match=r"about 6\.1e\+64"):
        next(SPACE.enumerate())


def test_network_params_by_hand_and_forward() -> None:
    arch = SPACE.parse(smallest())
    net = build_network(SPACE, arch)
    conv = 16 * 16 * 9 + 2 * 16  # a 3x3 conv 16->16 and its BN
    # stem (1->16) + 48 convs 16->16 + 3 stride-2 projections (16->16, 1x1) + fc
    want = (1 * 16 * 9 + 2 * 16) + 48 * conv + 3 * (16 * 16 + 2 * 16) + (16 * 10 + 10)
    assert count_params(net) == want
    assert sum(STAGES) == 16
    out = net(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_evolution_runs_on_it_with_a_cost_objective() -> None:
    """Fewer params is better: a short regularized evolution improves on its first archs."""
    cost = ArchCost(SPACE, (1, 8, 8))
    strat = get_strategy("evolution", SPACE, seed=0, population=8, sample_size=3)
    values = []
    for _ in range(40):
        arch = strat.ask()
        assert arch is not None and arch in SPACE
        v = -float(cost.params(arch))
        strat.tell(arch, v)
        values.append(v)
    assert max(values[-8:]) > max(values[:8])
    assert SPACE.mutate(SPACE.sample(0), 1) in SPACE


def test_no_supernet_is_a_clear_error() -> None:
    with pytest.raises(SupernasError, match="no weight-sharing supernet"):
        build_supernet(SPACE)


def test_cli_lists_it_with_its_size() -> None:
    r = CliRunner().invoke(app, ["spaces", "--json"])
    assert r.exit_code == 0, r.output
    assert "resnet50" in r.output and str(21**49) in r.output.replace(",", "")
