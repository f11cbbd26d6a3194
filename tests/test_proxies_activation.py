"""nwot, swap, reg_swap, meco and zico against hand-computed values, and on both spaces."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from supernas.proxies import get_proxy
from supernas.supernet import build_network

NAMES = ["nwot", "swap", "reg_swap", "meco", "zico"]
NB201_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
)
NB201_EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CE = nn.CrossEntropyLoss()


def _mlp(w1: list[list[float]], w2_out: int = 2) -> nn.Sequential:
    """Linear(no bias) - ReLU - Linear with the first layer's weights set by hand."""
    w = torch.tensor(w1)
    net = nn.Sequential(
        nn.Linear(w.shape[1], w.shape[0], bias=False), nn.ReLU(), nn.Linear(w.shape[0], w2_out)
    )
    with torch.no_grad():
        net[0].weight.copy_(w)
    return net


def _run(name: str, net: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, **kw) -> float:
    y = torch.zeros(x.shape[0], dtype=torch.long) if y is None else y
    return get_proxy(name)(net, (x, y), CE, **kw)


# ---- hand-computed values -------------------------------------------------------------


def test_nwot_hand_kernel() -> None:
    # Hidden units: x1, x2, x1 + x2 (no bias). Codes [pre-act > 0] for the 4 inputs:
    # (1,1)->111, (1,-1)->100 (x1+x2 = 0 is not > 0), (-1,1)->010, (-1,-1)->000.
    net = _mlp([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    # K_H = N_A - Hamming, N_A = 3.
    k = np.array([[3, 1, 1, 0], [1, 3, 1, 2], [1, 1, 3, 2], [0, 2, 2, 3]], dtype=float)
    assert _run("nwot", net, x) == pytest.approx(math.log(np.linalg.det(k)), rel=1e-12)


def test_nwot_singular_is_minus_inf() -> None:
    net = _mlp([[1.0, 0.0], [0.0, 1.0]])
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5]])  # rows 0 and 1: identical codes
    assert _run("nwot", net, x) == -math.inf


def test_nwot_hooks_inplace_relu_input() -> None:
    # An in-place ReLU overwrites its input: the codes must still come from the
    # pre-activations, so an in-place net scores as the out-of-place one.
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    b = copy.deepcopy(a)
    b[1].inplace = b[3].inplace = True
    x = torch.randn(6, 3)
    assert _run("nwot", a, x) == _run("nwot", b, x)


def test_swap_hand_patterns() -> None:
    # 1x1 conv, channels x and -x, two positions; samples (1,1), (-1,-1), (2,2).
    # Post-ReLU patterns over the 3 samples: ch0 at both positions [1,0,1],
    # ch1 at both positions [0,1,0]: 4 neurons, 2 distinct patterns.
    conv = nn.Conv2d(1, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    x = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0, 2.0]).view(3, 1, 1, 2)
    assert _run("swap", net, x) == 2.0
    x = torch.tensor([1.0, 2.0, -1.0, 3.0, 0.5, -1.0]).view(3, 1, 1, 2)
    # ch0: [1,0,1], [1,1,0]; ch1: [0,1,0], [0,0,1]: all 4 distinct.
    assert _run("swap", net, x) == 4.0


def test_swap_matches_numpy_unique_beyond_63_samples() -> None:
    # 70 samples: the patterns span two packed words; compare with numpy on the explicit
    # post-ReLU activations of both ReLU layers.
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 2))
    with torch.no_grad():
        net[0].weight.mul_(torch.randint(0, 2, net[0].weight.shape))  # force duplicate patterns
    x = torch.randn(70, 3)
    with torch.no_grad():
        h1 = torch.relu(net[0](x))
        h2 = torch.relu(net[2](h1))
    bits = np.concatenate([(h1 > 0).numpy(), (h2 > 0).numpy()], axis=1).T  # (neurons, samples)
    expected = np.unique(bits, axis=0).shape[0]
    assert expected < bits.shape[0]  # the case exercises duplicates
    assert _run("swap", net, x) == float(expected)


def test_reg_swap_factor() -> None:
    net = _mlp([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # 6 + 6 + 2 = 14 parameters
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    s = _run("swap", copy.deepcopy(net), x)
    theta = 14 / 1e6
    assert _run("reg_swap", copy.deepcopy(net), x, mu=theta, sigma=1.0) == pytest.approx(s)
    got = _run("reg_swap", copy.deepcopy(net), x, mu=theta + 1e-3, sigma=1e-6)
    assert got == pytest.approx(s * math.exp(-1.0), rel=1e-9)


def test_meco_hand_correlation() -> None:
    # Identity 1x1 conv on sample 0 with channels (1,2,3) and (1,3,2): Pearson r = 0.5,
    # eigenvalues 0.5 and 1.5. Hooked modules: the Sequential and the conv (same map).
    conv = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(2).view(2, 2, 1, 1))
    x = torch.tensor(
        [[[[1.0, 2.0, 3.0]], [[1.0, 3.0, 2.0]]], [[[9.0, -1.0, 0.0]], [[0.0, 7.0, 1.0]]]]
    )
    assert _run("meco", nn.Sequential(conv), x) == pytest.approx(2 * 0.5, rel=1e-9)
    # A constant channel: NaN correlations are zeroed, so its eigenvalue 0 is the minimum.
    x3 = torch.tensor([[[[1.0, 2.0, 3.0]], [[4.0, 4.0, 4.0]]]])
    assert _run("meco", nn.Sequential(conv), x3) == 0.0


def test_zico_closed_form() -> None:
    # Linear(2 -> 1), w = (1, 0), MSE (mean over the half). Half 1: x=(1,0),(0,1), y=0:
    # g = mean of 2 r x = (1, 0). Half 2: x=(2,1),(0,1): g = (4, 2).
    # Element 0: mean|g| = 2.5, std = 1.5; element 1: mean 1, std 1. Sum 8/3.
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 1.0]])
    y = torch.zeros(4, 1)
    got = get_proxy("zico")(lin, (x, y), nn.MSELoss())
    assert got == pytest.approx(math.log(8 / 3), rel=1e-9)


def test_zico_skips_zero_std_elements() -> None:
    # Same gradient in both halves for element 1 (std 0): only element 0 counts.
    lin = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0]]))
    x = torch.tensor([[1.0, 1.0], [3.0, 1.0]])  # r = 1, 3: g = (2, 2) and (18, 6)
    y = torch.zeros(2, 1)
    got = get_proxy("zico")(lin, (x, y), nn.MSELoss())
    # element 0: (2, 18): mean 10, std 8 -> 1.25; element 1: (2, 6): mean 4, std 2 -> 2.
    assert got == pytest.approx(math.log(1.25 + 2.0), rel=1e-9)
    x = torch.tensor([[1.0, 1.0], [3.0, 1.0 / 3.0]])  # element 1: g = 2 and 2: std 0
    got = get_proxy("zico")(lin, (x, y), nn.MSELoss())
    assert got == pytest.approx(math.log(1.25), rel=1e-9)


# ---- the built-in spaces -------------------------------------------------------------


def _score(name: str, net: nn.Module, shape: tuple[int, ...], seed: int = 0) -> float:
    torch.manual_seed(seed)
    x = torch.randn(*shape)
    y = torch.randint(0, 10, (shape[0],))
    return get_proxy(name)(copy.deepcopy(net), (x, y), CE)


@pytest.mark.parametrize("name", NAMES)
def test_nb201_and_resnet18_deterministic(name: str) -> None:
    nb = build_network("nb201", NB201_ARCH, C=4, N=1, num_classes=10)
    rn = build_network(
        "resnet18",
        "k3w1-k3w1-k3w1-k3w1-k3w1-k3w1-k3w1-k3w1",
        base_width=4,
        in_channels=1,
        num_classes=10,
    )
    for net, shape in ((nb, (16, 3, 32, 32)), (rn, (16, 1, 8, 8))):
        a = _score(name, net, shape)
        assert isinstance(a, float) and math.isfinite(a)
        assert _score(name, net, shape) == a


@pytest.mark.parametrize("name", NAMES)
def test_disconnected_nb201_does_not_raise(name: str) -> None:
    net = build_network("nb201", NB201_EMPTY, C=4, N=1, num_classes=10)
    got = _score(name, net, (8, 3, 32, 32))
    assert isinstance(got, float)
    assert not (math.isinf(got) and got > 0)
