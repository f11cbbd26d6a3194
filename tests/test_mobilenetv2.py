"""The mobilenetv2 space and supernet: arch strings, size, weight sharing, training, proxies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import supernas
from supernas.errors import SupernasError
from supernas.proxies import ProxyEstimator, proxy_batch
from supernas.space import Arch, SearchSpace, get_space
from supernas.supernet import build_network, build_supernet

#: Written out as the oracle: MobileNetV2's CIFAR layout at base_width 8 (a quarter of 32).
#: (in, out, stride) of the 16 searchable blocks; stem 8, fixed first block 8 -> 4, head 320.
LAYOUT_W8 = [
    (4, 6, 1), (6, 6, 1),
    (6, 8, 2), (8, 8, 1), (8, 8, 1),
    (8, 16, 2), (16, 16, 1), (16, 16, 1), (16, 16, 1),
    (16, 24, 1), (24, 24, 1), (24, 24, 1),
    (24, 40, 2), (40, 40, 1), (40, 40, 1),
    (40, 80, 1),
]  # fmt: skip
SKIPPABLE = [1, 3, 4, 6, 7, 8, 10, 11, 13, 14]
OPS = ["k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6"]
ARCH = "k3e3-skip-k5e6-k7e3-skip-k3e6-k5e3-skip-k7e6-k3e3-k5e6-skip-k7e3-k3e6-skip-k5e3"


def space(**opts: int) -> SearchSpace:
    return get_space("mobilenetv2", **{"base_width": 4, **opts})


def with_skips(sp: SearchSpace, seed: int) -> Arch:
    """A random arch with every other skippable block skipped, so skips are exercised."""
    values = list(sp.sample(seed).values)
    for i, b in enumerate(SKIPPABLE):
        if (i + seed) % 2:
            values[b] = "skip"
    return sp.arch(values)


def test_choices_and_size_by_hand() -> None:
    sp = get_space("mobilenetv2")
    assert len(sp.choices) == 16
    for b, c in enumerate(sp.choices):
        assert c.name == f"b{b}.op"
        assert list(c.options) == ([*OPS, "skip"] if b in SKIPPABLE else OPS)
    assert sp.size == 6**6 * 7**10 == 13_179_165_217_344
    # The width option never changes which archs exist (nor does rounding at tiny widths).
    for w in (1, 2, 3, 4, 8, 32):
        assert space(base_width=w).choices == sp.choices


def test_arch_string_round_trip() -> None:
    sp = space()
    arch = sp.parse(ARCH)
    assert str(arch) == ARCH
    assert arch.values[1] == "skip" and arch.values[0] == "k3e3"
    for seed in range(20):
        a = with_skips(sp, seed)
        assert sp.parse(str(a)) == a
        assert str(a).count("-") == 15


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("k3e3-k5e6", "has 2 blocks; mobilenetv2 needs 16"),
        (ARCH + "-k3e3", "has 17 blocks"),
        ("skip" + ARCH[4:], "block 0 cannot be skipped.*k3e3, k3e6"),
        (ARCH.replace("k7e3", "k4e3", 1), "'k4e3' is not an option.*k3e3, k3e6, k5e3"),
        (ARCH.replace("k7e3", "k7e4", 1), "'k7e4' is not an option"),
        (ARCH.replace("k7e3", "3x3", 1), "block 3 token '3x3' is not 'k<kernel>e<expansion>'"),
        (ARCH.replace("k7e3", "", 1), "block 3 token '' is not"),
    ],
)
def test_parse_errors(text: str, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        space().parse(text)


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ({"base_width": 0}, "base_width"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": 1}, "num_classes"),
        ({"base_width": 2.5}, "base_width"),
        ({"depth": 3}, "bad options"),
    ],
)
def test_bad_options(opts: dict, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        get_space("mobilenetv2", **opts)


def _hand_params(arch: Arch, cin: int, classes: int) -> int:
    """Stem conv+BN, fixed first block (dw 3x3 + BN, 1x1 + BN), MBConvs, head conv+BN, fc."""
    total = cin * 8 * 9 + 2 * 8 + (8 * 9 + 2 * 8) + (8 * 4 + 2 * 4)
    for op, (i, o, _) in zip(arch.values, LAYOUT_W8, strict=True):
        if op == "skip":
            continue
        k, e = int(op[1]), int(op[3])
        mid = e * i
        total += i * mid + 2 * mid + mid * k * k + 2 * mid + mid * o + 2 * o
    return total + 80 * 320 + 2 * 320 + 320 * classes + classes


@pytest.mark.parametrize("cin", [1, 3])
def test_standalone_param_count_by_hand(cin: int) -> None:
    sp = space(base_width=8, in_channels=cin, num_classes=7)
    arch = sp.parse(ARCH)
    net = build_network(sp, arch)
    assert sum(p.numel() for p in net.parameters()) == _hand_params(arch, cin, 7)
    # block 2 is k5e6 with 6 input channels: expanded to 36, depthwise 5x5
    assert net.blocks[2].dw.weight.shape == (36, 1, 5, 5)
    assert not list(net.blocks[1].parameters())  # a skipped block holds nothing


@pytest.mark.parametrize("cin", [1, 3])
@pytest.mark.parametrize("train", [False, True])
def test_supernet_matches_extract_on_32x32(cin: int, train: bool) -> None:
    torch.manual_seed(0)
    sp = space(in_channels=cin)
    sup = build_supernet(sp)
    sup.train()
    with torch.no_grad():  # move BN stats off their init, as training would
        for seed in range(3):
            sup(torch.randn(4, cin, 32, 32) * 2 + 0.5, sp.sample(seed))
    sup.train(train)
    x = torch.randn(4, cin, 32, 32)
    archs = [with_skips(sp, s) for s in range(3)]
    archs.append(sp.parse("-".join(["k7e6"] * 16)))  # the full width: the fast path
    archs.append(sp.parse("-".join("skip" if b in SKIPPABLE else "k3e3" for b in range(16))))
    for arch in archs:
        net = sup.extract(arch)
        assert net.training == train
        with torch.no_grad():
            want = sup(x, arch)
            got = net(x)
        assert got.shape == (4, 10)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_spos_step_grads_reach_only_the_path() -> None:
    torch.manual_seed(1)
    sp = space()
    sup = build_supernet(sp).train()
    arch = sp.parse(ARCH)
    F.cross_entropy(sup(torch.randn(4, 3, 32, 32), arch), torch.arange(4)).backward()
    got = {n for n, p in sup.named_parameters() if p.grad is not None}
    want = {n for n, _ in sup.extract(arch).named_parameters()}
    assert got == want
    assert not any(".blocks.1." in n or n.startswith("blocks.1.") for n in got)  # skipped
    assert {"blocks.0.expand.weight", "blocks.0.dw.weight"} <= got
    # block 0 is k3e3: only the centre 3x3 of its shared 7x7 depthwise kernel learns
    g = sup.blocks[0].dw.weight.grad
    assert g.shape[-2:] == (7, 7)
    assert g[:, :, 2:5, 2:5].abs().sum() > 0
    rest = g.clone()
    rest[:, :, 2:5, 2:5] = 0
    assert not rest.any()


def test_extract_takes_the_centre_of_the_shared_kernel() -> None:
    torch.manual_seed(3)
    sp = space()
    sup = build_supernet(sp)
    net = sup.extract(sp.parse(ARCH))  # block 0: k3e3, block 2: k5e6
    big = sup.blocks[0].dw.weight
    assert torch.equal(net.blocks[0].dw.weight, big[: net.blocks[0].dw.out_channels, :, 2:5, 2:5])
    assert torch.equal(net.blocks[2].dw.weight, sup.blocks[2].dw.weight[:, :, 1:6, 1:6])


def test_spos_epoch_on_digits_and_proxies() -> None:
    data = supernas.load_data("digits", max_train=200, max_val=100)
    sp = get_space("mobilenetv2", base_width=4, in_channels=1, num_classes=data.num_classes)
    torch.manual_seed(0)
    sup = build_supernet(sp)
    history = supernas.SPOSTrainer(supernas.Recipe(epochs=2, lr=0.1), seed=0).fit(sup, data)
    assert len(history) == 2
    assert all(math.isfinite(h["train_loss"]) for h in history)
    # Only "runs" here; with shared centre-cropped kernels SPOS on full digits reaches 48%
    # sampled-path train accuracy in 6 epochs (base_width 8), as resnet18 does.

    batch = proxy_batch(data, sp, batch_size=8, seed=0)
    archs = [with_skips(sp, s) for s in range(3)]
    names = ["params", "synflow", "grad_norm", "nwot", "zico"]
    table = ProxyEstimator(sp, names, batch, seed=0).score_table(archs)
    for name in names:
        assert len(table[name]) == 3 and np.isfinite(table[name]).all(), name
    # the same, with each network's weights taken from the trained supernet
    est = ProxyEstimator(sp, ["synflow"], batch, supernet=sup)
    assert all(math.isfinite(s) for s in est.score(archs))
