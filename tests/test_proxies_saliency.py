"""Gradient/saliency and Jacobian proxies against values worked out independently.

Hand references: numpy forward/backward of a fixed Linear-ReLU-Linear MLP (closed-form
softmax cross-entropy gradients, a finite-difference Hessian-gradient product, the
closed-form synflow of the |W| network), np.corrcoef for the Jacobian proxies, and
explicit autograd on a 1-conv net for fisher's spatial sums.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supernas.proxies import get_proxy
from supernas.supernet import build_network

NAMES = ("grad_norm", "snip", "grasp", "fisher", "plain", "l2_norm", "synflow", "jacov", "epe_nas")
CE = nn.CrossEntropyLoss()
K = 1e-5

# Fixed MLP 3 -> 4 -> 3 and a batch of 6 (classes 0,0,0,1,1,2: one singleton class).
W1 = np.array([[0.5, -0.3, 0.8], [-0.6, 0.9, 0.1], [0.2, 0.4, -0.7], [0.7, -0.2, 0.3]])
B1 = np.array([0.1, -0.2, 0.05, 0.0])
W2 = np.array([[0.3, -0.5, 0.6, 0.2], [-0.4, 0.7, 0.1, -0.3], [0.5, 0.2, -0.6, 0.4]])
B2 = np.array([0.05, -0.1, 0.02])
X = np.array(
    [
        [1.0, 0.5, -0.2],
        [-0.3, 0.8, 1.2],
        [0.7, -1.1, 0.4],
        [0.2, 0.3, 0.9],
        [-1.0, 0.6, -0.5],
        [0.9, 1.3, 0.1],
    ]
)
LABELS = np.array([0, 0, 0, 1, 1, 2])


class WithUnused(nn.Module):
    """The MLP plus a weight layer its forward never calls: that weight gets no gradient."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.unused = net, nn.Linear(2, 2).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp(extra_unused: bool = False) -> nn.Module:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3)).double()
    with torch.no_grad():
        for layer, w, b in ((net[0], W1, B1), (net[2], W2, B2)):
            layer.weight.copy_(torch.tensor(w))
            layer.bias.copy_(torch.tensor(b))
    return WithUnused(net) if extra_unused else net


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(X), torch.tensor(LABELS)


def np_forward_backward(w1: np.ndarray, w2: np.ndarray) -> dict[str, np.ndarray]:
    """Forward and closed-form backward of mean softmax cross-entropy."""
    h = X @ w1.T + B1
    r = np.maximum(h, 0)
    o = r @ w2.T + B2
    p = np.exp(o - o.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_o = (p - np.eye(3)[LABELS]) / len(X)
    d_h = (d_o @ w2) * (h > 0)
    return {"h": h, "o": o, "d_o": d_o, "d_h": d_h, "g1": d_h.T @ X, "g2": d_o.T @ r}


def test_grad_norm_snip_plain_l2_by_hand() -> None:
    f = np_forward_backward(W1, W2)
    g1, g2 = f["g1"], f["g2"]
    expected = {
        "grad_norm": np.linalg.norm(g1) + np.linalg.norm(g2),
        "snip": np.abs(g1 * W1).sum() + np.abs(g2 * W2).sum(),
        "plain": (g1 * W1).sum() + (g2 * W2).sum(),
        "l2_norm": np.linalg.norm(W1) + np.linalg.norm(W2),
    }
    for name, value in expected.items():
        got = get_proxy(name)(mlp(), batch(), CE)
        assert got == pytest.approx(value, rel=1e-9), name
        # A weight layer that gets no gradient contributes nothing (l2_norm counts it).
        if name != "l2_norm":
            assert get_proxy(name)(mlp(extra_unused=True), batch(), CE) == pytest.approx(got)


def test_grasp_by_finite_difference_hessian() -> None:
    f = np_forward_backward(W1, W2)
    g1, g2 = f["g1"], f["g2"]
    eps = 1e-6  # Hg by central differences of the closed-form gradient along g
    plus = np_forward_backward(W1 + eps * g1, W2 + eps * g2)
    minus = np_forward_backward(W1 - eps * g1, W2 - eps * g2)
    hg1 = (plus["g1"] - minus["g1"]) / (2 * eps)
    hg2 = (plus["g2"] - minus["g2"]) / (2 * eps)
    expected = -(W1 * hg1).sum() - (W2 * hg2).sum()
    assert get_proxy("grasp")(mlp(), batch(), CE) == pytest.approx(expected, rel=1e-6)
    assert get_proxy("grasp")(mlp(extra_unused=True), batch(), CE) == pytest.approx(expected)


def test_fisher_mlp_by_hand() -> None:
    f = np_forward_backward(W1, W2)
    # Per channel: 0.5 * mean_n (a * dL/da)^2, times the layer's fan-in (zero-cost broadcast).
    expected = 3 * (0.5 * ((f["h"] * f["d_h"]) ** 2).mean(0)).sum()
    expected += 4 * (0.5 * ((f["o"] * f["d_o"]) ** 2).mean(0)).sum()
    assert get_proxy("fisher")(mlp(), batch(), CE) == pytest.approx(expected, rel=1e-9)
    assert get_proxy("fisher")(mlp(extra_unused=True), batch(), CE) == pytest.approx(expected)


def test_fisher_conv_spatial_sum_and_inplace_relu() -> None:
    torch.manual_seed(0)
    conv, fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 3 * 3, 4)
    x, y = torch.randn(5, 1, 5, 5), torch.tensor([0, 1, 2, 3, 0])
    # Explicit autograd: keep the conv output and the logits, read their gradients.
    a = F.conv2d(x, conv.weight, conv.bias)
    a.retain_grad()
    o = fc(torch.relu(a).flatten(1))
    o.retain_grad()
    F.cross_entropy(o, y).backward()
    g_conv = (a * a.grad).sum((2, 3))  # (N, C): summed over spatial positions
    expected = (
        9 * (0.5 * g_conv.pow(2).mean(0)).sum() + 18 * (0.5 * (o * o.grad).pow(2).mean(0)).sum()
    )
    # The proxy's net applies ReLU in place on the conv output: the hook must not see it.
    net = nn.Sequential(conv, nn.ReLU(inplace=True), nn.Flatten(), fc)
    assert get_proxy("fisher")(net, (x, y), CE) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_synflow_by_hand_and_bn_disabled() -> None:
    # |W| network on one all-ones example: h = |W1| 1 + |b1| > 0, R = sum(|W2| h + |b2|).
    a1, a2 = np.abs(W1), np.abs(W2)
    h = a1.sum(1) + np.abs(B1)
    d_w2 = np.tile(h, (3, 1))  # dR/dW2[i, j] = h_j
    d_w1 = np.outer(a2.sum(0), np.ones(3))  # dR/dW1[j, k] = sum_i |W2[i, j]| * 1
    expected = math.log((a1 * d_w1).sum() + (a2 * d_w2).sum())
    assert get_proxy("synflow")(mlp(), batch(), CE) == pytest.approx(expected, rel=1e-12)
    # A BN after the first layer is switched off: same value as without it.
    net = mlp()
    net.insert(1, nn.BatchNorm1d(4))
    assert get_proxy("synflow")(net, batch(), CE) == pytest.approx(expected, rel=1e-12)


def test_synflow_sum_beyond_float64_stays_finite() -> None:
    # A bias-free chain of L positive layers: each layer's sum of W*dR/dW equals R (Euler),
    # so synflow = log(L * R); R ~ 1e306 fits float64 but L * R does not.
    depth, d, c = 100, 4, 287.0
    net = nn.Sequential(*[nn.Linear(d, d, bias=False) for _ in range(depth)])
    for m in net:
        nn.init.constant_(m.weight, c)
    log_r = math.log(d) + depth * math.log(c * d)
    assert log_r < math.log(np.finfo(np.float64).max) < math.log(depth) + log_r
    got = get_proxy("synflow")(net, (torch.randn(2, d), torch.zeros(2, dtype=torch.long)), CE)
    assert got == pytest.approx(math.log(depth) + log_r, rel=1e-12)


def np_jacobian() -> np.ndarray:
    """Rows: d(sum of logits)/dx per example = W1^T diag(relu'(h)) W2^T 1."""
    h = X @ W1.T + B1
    return ((h > 0) * W2.sum(0)) @ W1


def test_jacov_by_hand() -> None:
    v = np.linalg.eigvalsh(np.corrcoef(np_jacobian()))
    expected = -np.sum(np.log(v + K) + 1 / (v + K))
    assert get_proxy("jacov")(mlp(), batch(), CE) == pytest.approx(expected, rel=1e-8)


def test_epe_nas_by_hand_with_singleton_class() -> None:
    jac = np_jacobian()
    s = [np.log(np.abs(np.corrcoef(jac[np.equal(LABELS, c)])) + K).sum() for c in (0, 1)]
    s.append(np.log(1 + K))  # class 2 has one example: its correlation matrix is [1]
    expected = sum(abs(v) for v in s)
    assert get_proxy("epe_nas")(mlp(), batch(), CE) == pytest.approx(expected, rel=1e-8)


def test_epe_nas_over_100_classes() -> None:
    # More than 100 outputs: s_c / n_c, singletons skipped, mean pairwise |s_c - s_c'|.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 101)).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 5, 5, 9, 9, 42])  # 42: a singleton class, skipped
    jac = torch.autograd.functional.jacobian(lambda t: net(t).sum(), x).numpy()
    y_np = y.numpy()
    s = [np.log(np.abs(np.corrcoef(jac[y_np == c])) + K).sum() / 3 for c in (0,)]
    s += [np.log(np.abs(np.corrcoef(jac[y_np == c])) + K).sum() / 2 for c in (5, 9)]
    expected = sum(abs(a - b) for a in s for b in s) / len(s)
    assert get_proxy("epe_nas")(net, (x, y), CE) == pytest.approx(expected, rel=1e-8)


NB201_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
)
NB201_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _score(name: str, space: str, arch: str, seed: int = 0) -> float:
    torch.manual_seed(seed)
    if space == "nb201":
        net = build_network("nb201", arch, C=4, N=1, num_classes=10)
        x = torch.randn(8, 3, 32, 32)
    else:
        net = build_network("resnet18", arch, base_width=4, in_channels=1, num_classes=10)
        x = torch.randn(8, 1, 8, 8)
    y = torch.randint(0, 10, (8,))
    return get_proxy(name)(net, (x, y), CE)


@pytest.mark.parametrize("name", NAMES)
def test_real_networks_float_and_deterministic(name: str) -> None:
    for space, arch in (("nb201", NB201_ARCH), ("resnet18", "-".join(["k3w1"] * 8))):
        a, b = _score(name, space, arch), _score(name, space, arch)
        assert isinstance(a, float) and math.isfinite(a), (space, a)
        assert a == b, space
    # A disconnected NB201 cell: the output ignores the input; any value but no exception.
    none = _score(name, "nb201", NB201_NONE)
    assert isinstance(none, float)
    if name == "synflow":
        assert none == float("-inf")
    if name in ("jacov", "epe_nas"):
        assert math.isnan(none)
