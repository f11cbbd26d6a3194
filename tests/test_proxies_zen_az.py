"""Zen-NAS and AZ-NAS proxies against hand computations on tiny nets, and on the spaces."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from supernas.proxies import Ensemble, get_proxy
from supernas.proxies import az_nas as az
from supernas.supernet import build_network

LOSS = nn.CrossEntropyLoss()
NB201_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
)
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
AZ_MEMBERS = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")
PER_NET = ("zen", *AZ_MEMBERS)


# ----------------------------------------------------------------------------- tiny nets
class ZenNet(nn.Module):
    """conv3x3 (1->2, no bias) - BN - ReLU - mean - Linear: the pre-GAP map is the ReLU's."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.relu = nn.ReLU()
        self.head = nn.Linear(2, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.relu(self.bn(self.conv(x))).mean((2, 3)))


class FixedMix(nn.Module):
    """y[:, o] = sum_c M[o, c] x[:, c] (optionally ReLU'd); M is a buffer: no re-init touches it."""

    def __init__(self, m: np.ndarray, relu: bool = False) -> None:
        super().__init__()
        self.register_buffer("m", torch.as_tensor(m, dtype=torch.float64))
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        y = torch.einsum("oc,bchw->bohw", self.m, x)
        return y.clamp_min(0) if self.relu else y


class StageNet(nn.Module):
    """Stages in a ModuleList (AZ-NAS's features: the input, then every stage's output)."""

    def __init__(self, stages: list[nn.Module], c_out: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c_out, 3)
        self.double()

    def forward(self, x: Tensor) -> Tensor:
        for s in self.stages:
            x = s(x)
        return self.head(x.mean((2, 3)))


def batch_of(x: Tensor) -> tuple[Tensor, Tensor]:
    return x, torch.zeros(x.shape[0], dtype=torch.long)


# ----------------------------------------------------------------------------- zen
def _conv3x3(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cross-correlation, padding 1, stride 1: (B, 1, H, W) x (O, 1, 3, 3) -> (B, O, H, W)."""
    b, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((b, w.shape[0], h, wd))
    for i in range(h):
        for j in range(wd):
            patch = xp[:, 0, i : i + 3, j : j + 3]
            out[:, :, i, j] = np.einsum("bkl,okl->bo", patch, w[:, 0])
    return out


def test_zen_matches_hand_computation() -> None:
    net = ZenNet().double()
    shape = (3, 1, 4, 4)
    torch.manual_seed(7)
    score = get_proxy("zen")(net, batch_of(torch.ones(shape, dtype=torch.float64)), LOSS)

    # The same global-RNG draws in order: conv weight, head weight (both N(0,1)), x, eps.
    torch.manual_seed(7)
    w = torch.randn(2, 1, 3, 3, dtype=torch.float64).numpy()
    torch.randn(3, 2, dtype=torch.float64)  # the head's weight: drawn, unused pre-GAP
    x = torch.randn(shape, dtype=torch.float64).numpy()
    eps = torch.randn(shape, dtype=torch.float64).numpy()

    running_var = np.ones(2)
    feats = []
    for inp in (x, x + 0.01 * eps):
        h = _conv3x3(inp, w)
        mu, var = h.mean((0, 2, 3)), h.var((0, 2, 3))
        n = h.shape[0] * h.shape[2] * h.shape[3]
        running_var = 0.9 * running_var + 0.1 * var * n / (n - 1)  # BN stores unbiased var
        hn = (h - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
        feats.append(np.maximum(hn, 0))
    delta = np.abs(feats[0] - feats[1]).reshape(3, -1).sum(1).mean()
    expected = math.log(delta) + math.log(math.sqrt(running_var.mean()))
    assert score == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_zen_ignores_batch_content_but_not_its_shape() -> None:
    torch.manual_seed(0)
    net = ZenNet().double()
    xs = [torch.zeros(3, 1, 4, 4, dtype=torch.float64), torch.rand(3, 1, 4, 4).double()]
    scores = []
    for x in xs:
        torch.manual_seed(1)
        scores.append(get_proxy("zen")(copy.deepcopy(net), batch_of(x), LOSS))
    assert scores[0] == scores[1]


# ----------------------------------------------------------------------------- AZ-NAS
def _entropy(eig: np.ndarray) -> float:
    p = eig / eig.sum()
    return float(-(p * np.log(p + 1e-8)).sum())


def test_expressivity_and_progressivity_closed_form() -> None:
    # 4 samples (2 examples x 2 positions) of 2 channels: +-1 in every sign pattern, so the
    # input's channel covariance is I (entropy log 2).
    x = torch.zeros(2, 2, 1, 2, dtype=torch.float64)
    x[0, :, 0, 0] = torch.tensor([1.0, 1.0])
    x[0, :, 0, 1] = torch.tensor([1.0, -1.0])
    x[1, :, 0, 0] = torch.tensor([-1.0, 1.0])
    x[1, :, 0, 1] = torch.tensor([-1.0, -1.0])
    c, s = math.cos(0.7), math.sin(0.7)
    net = StageNet(
        [
            FixedMix(np.diag([1.0, 2.0])),  # covariance diag(1, 4): eigenvalues 1, 4
            FixedMix(np.array([[c, -s], [s, c]])),  # a rotation keeps the spectrum
            FixedMix(np.array([[1.0, 0.0], [0.0, 0.0]])),  # rank 1: entropy 0
        ],
        c_out=2,
    )
    torch.manual_seed(0)
    comps = az.az_nas_components(net, batch_of(x), LOSS, real_input=True)
    h_in = math.log(2.0)
    h_a = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    entropies = [h_in, h_a, h_a, 0.0]
    assert comps["expressivity"] == pytest.approx(sum(entropies), abs=1e-6)
    assert comps["progressivity"] == pytest.approx(min(np.diff(entropies)), abs=1e-6)
    assert comps["progressivity"] == pytest.approx(-h_a, abs=1e-6)


def test_expressivity_matches_numpy_eigenvalues() -> None:
    torch.manual_seed(3)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
    m = np.array([[1.0, 0.5, 0.0], [0.2, -1.0, 0.3], [0.0, 0.4, 2.0]])
    net = StageNet([FixedMix(m, relu=True)], c_out=3)
    comps = az.az_nas_components(net, batch_of(x), LOSS, real_input=True)

    def entropy_of(f: np.ndarray) -> float:
        rows = f.transpose(0, 2, 3, 1).reshape(-1, f.shape[1])
        return _entropy(np.clip(np.linalg.eigvalsh(np.cov(rows.T, bias=True)), 0, None))

    xn = x.numpy()
    f1 = np.maximum(np.einsum("oc,bchw->bohw", m, xn), 0)
    e = [entropy_of(xn), entropy_of(f1)]
    assert comps["expressivity"] == pytest.approx(sum(e), rel=1e-9)
    assert comps["progressivity"] == pytest.approx(e[1] - e[0], rel=1e-9)


def test_default_input_is_gaussian_drawn_after_the_init() -> None:
    # The authors score AZ-NAS on torch.randn inputs (trainloader=None), drawn after the
    # Kaiming re-init: the batch's content is ignored, only its shape is used.
    m = np.array([[1.0, 0.5, 0.0], [0.2, -1.0, 0.3], [0.0, 0.4, 2.0]])
    net = StageNet([FixedMix(m, relu=True), FixedMix(m.T)], c_out=3)
    shape = (4, 3, 5, 5)
    runs = []
    for x in (torch.zeros(shape, dtype=torch.float64), torch.rand(shape).double()):
        torch.manual_seed(2)
        runs.append(az.az_nas_components(copy.deepcopy(net), batch_of(x), LOSS))
    assert runs[0] == runs[1]

    torch.manual_seed(2)
    az.kaiming_fanin_init_(copy.deepcopy(net))  # the same draws as the init inside
    noise = torch.randn(shape, dtype=torch.float64)
    fed = az.az_nas_components(copy.deepcopy(net), batch_of(noise), LOSS, real_input=True)
    for key in ("expressivity", "progressivity", "complexity"):  # trainability's +-1 differ
        assert runs[0][key] == fed[key]


def _unshuffle(g: np.ndarray, s: int) -> np.ndarray:
    b, c, h, w = g.shape
    return (
        g.reshape(b, c, h // s, s, w // s, s)
        .transpose(0, 1, 3, 5, 2, 4)
        .reshape(b, c * s * s, h // s, w // s)
    )


def _hand_pair_score(stage: nn.Module, f_in: Tensor, g_out: Tensor) -> float:
    """-s - 1/s + 2 from the exact Jacobian (autograd.functional.jacobian) and the same g."""
    jac = torch.autograd.functional.jacobian(stage, f_in.detach())
    jac = jac.reshape(g_out.numel(), f_in.numel()).numpy()
    g_in = (jac.T @ g_out.numpy().ravel()).reshape(f_in.shape)
    go = g_out.numpy()
    if g_in.shape[2] != go.shape[2]:
        g_in = _unshuffle(g_in, g_in.shape[2] // go.shape[2])
    rows_in = g_in.transpose(0, 2, 3, 1).reshape(-1, g_in.shape[1])
    rows_out = go.transpose(0, 2, 3, 1).reshape(-1, go.shape[1])
    mat = rows_in.T @ rows_out / rows_out.shape[0]
    s = np.linalg.svd(mat, compute_uv=False).max()
    return float(-s - 1 / (s + 1e-6) + 2)


def test_trainability_matches_exact_jacobian(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[Tensor] = []
    original = az._rademacher_like

    def recording(t: Tensor) -> Tensor:
        g = original(t)
        drawn.append(g.detach().clone())
        return g

    monkeypatch.setattr(az, "_rademacher_like", recording)
    m = np.array([[1.0, -0.5], [0.3, 0.8], [-0.7, 0.2]])
    stages = [FixedMix(m, relu=True), nn.AvgPool2d(2)]  # channel mix + ReLU, then a reduction
    net = StageNet(stages, c_out=3)
    torch.manual_seed(5)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    comps = az.az_nas_components(net, batch_of(x), LOSS, real_input=True)

    f1 = stages[0](x)
    assert [tuple(g.shape) for g in drawn] == [(2, 3, 2, 2), (2, 3, 4, 4)]  # reverse order
    expected = np.mean(
        [_hand_pair_score(stages[1], f1, drawn[0]), _hand_pair_score(stages[0], x, drawn[1])]
    )
    assert comps["trainability"] == pytest.approx(expected, rel=1e-9)


def test_trainability_estimates_the_jacobian_gain() -> None:
    # A linear stage y = W x per position: the Jacobian block is W, singular values 2, 1,
    # 0.5; with 16 x 16 x 16 Rademacher samples the estimate of s_max = 2 is within ~3%.
    u, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    v, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    w = u @ np.diag([2.0, 1.0, 0.5]) @ v.T
    stage = FixedMix(w)
    one = torch.randn(1, 3, 1, 1, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(stage, one).reshape(3, 3).numpy()
    s_max = np.linalg.svd(jac, compute_uv=False).max()
    assert s_max == pytest.approx(2.0)
    torch.manual_seed(0)
    x = torch.randn(16, 3, 16, 16, dtype=torch.float64)
    comps = az.az_nas_components(StageNet([stage], c_out=3), batch_of(x), LOSS, real_input=True)
    assert comps["trainability"] == pytest.approx(-s_max - 1 / s_max + 2, abs=0.1)


def test_identity_stage_is_minus_inf() -> None:
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    comps = az.az_nas_components(StageNet([nn.Identity()], c_out=2), batch_of(x), LOSS)
    assert comps["trainability"] == -math.inf


def test_complexity_counts_flops_by_hand() -> None:
    # conv 3x3, 1 -> 2 channels, 4x4 output: 2 * (2 * 16) * 9 FLOPs; Linear 2 -> 3: 2 * 6.
    comps = az.az_nas_components(ZenNet(), batch_of(torch.randn(3, 1, 4, 4)), LOSS)
    assert comps["complexity"] == 2 * 2 * 16 * 9 + 2 * 2 * 3


def test_relu_fallback_on_an_mlp() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU())
    comps = az.az_nas_components(mlp, batch_of(torch.randn(16, 8)), LOSS)
    assert all(math.isfinite(v) for v in comps.values())


def test_rank_aggregate_by_hand() -> None:
    scores = np.array([[1.0, 5.0], [3.0, np.nan], [2.0, 5.0]])
    # column 0 ranks 1, 3, 2; column 1: the NaN ranks lowest (1), the tie shares (2 + 3) / 2.
    expected = np.log(np.array([[1, 2.5], [3, 1], [2, 2.5]]) / 3).sum(1)
    np.testing.assert_allclose(az.az_rank_aggregate(scores), expected)
    assert az.az_rank_aggregate(np.zeros((0, 4))).shape == (0,)


def test_az_nas_is_a_registered_ensemble() -> None:
    ens = get_proxy("az_nas")
    assert isinstance(ens, Ensemble)
    assert ens.members == AZ_MEMBERS and ens.combine is az.az_rank_aggregate
    assert ens.measure is not None
    x = torch.randn(2, 3, 32, 32)
    net = build_network("nb201", NB201_ARCH, C=4, N=1, num_classes=10)
    torch.manual_seed(0)
    measured = ens.measure(copy.deepcopy(net), batch_of(x), LOSS)
    assert set(measured) == set(AZ_MEMBERS)
    torch.manual_seed(0)
    comps = az.az_nas_components(copy.deepcopy(net), batch_of(x), LOSS)
    assert measured == {f"az_{k}": v for k, v in comps.items()}


# ----------------------------------------------------------------------------- the spaces
def _nb201(arch: str) -> nn.Module:
    return build_network("nb201", arch, C=4, N=1, num_classes=10)


def _resnet() -> nn.Module:
    return build_network(
        "resnet18",
        "k3w1-k3w1-k3w1-k3w1-k3w1-k3w1-k3w1-k3w1",
        base_width=4,
        in_channels=1,
        num_classes=10,
    )


@pytest.mark.parametrize("name", PER_NET)
@pytest.mark.parametrize("space", ["nb201", "resnet18"])
def test_runs_and_is_deterministic(name: str, space: str) -> None:
    net, x = (
        (_nb201(NB201_ARCH), torch.randn(4, 3, 32, 32))
        if space == "nb201"
        else (_resnet(), torch.randn(4, 1, 8, 8))
    )
    proxy = get_proxy(name)
    scores = []
    for _ in range(2):
        torch.manual_seed(11)
        scores.append(proxy(copy.deepcopy(net), batch_of(x), LOSS))
    assert isinstance(scores[0], float) and math.isfinite(scores[0])
    assert scores[0] == scores[1]


@pytest.mark.parametrize("name", PER_NET)
def test_disconnected_nb201_does_not_raise(name: str) -> None:
    torch.manual_seed(0)
    score = get_proxy(name)(_nb201(ALL_NONE), batch_of(torch.randn(4, 3, 32, 32)), LOSS)
    assert isinstance(score, float)
    if name in ("zen", "az_expressivity"):
        assert score == -math.inf  # the output ignores the input; features are all zero
