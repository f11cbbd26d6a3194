"""Supernets: extract agrees with the supernet, BN bookkeeping is exact, sizes are NB201's."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace, get_space
from supernas.supernet import (
    SUPERNETS,
    Supernet,
    build_network,
    build_supernet,
    recalibrate_bn,
)
from supernas.supernet.resnet18 import SlicedBatchNorm2d

#: ResNet-18 block out-channel multipliers and strides, written out as the oracle.
MULTS = (1, 1, 2, 2, 4, 4, 8, 8)
STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)

#: Small options per space so that every test runs in well under a second per space.
SMALL: dict[str, dict[str, Any]] = {
    "resnet18": {"base_width": 4},
    "nb201": {"C": 4, "N": 1},
    "mobilenetv2": {"base_width": 4},
    "vit": {"embed_dim": 8, "depth": 2, "image_size": 8},
    "nb101": {"C": 5, "num_cells": 1},
    "nb101_s1": {"C": 5, "num_cells": 1},
    "nb101_s2": {"C": 5, "num_cells": 1},
    "nb101_s3": {"C": 5, "num_cells": 1},
    "resnet50": {"max_channels": 32},  # no supernet; its networks, for the proxy tests
}
#: Spaces whose choices each take any option independently (fair paths, controllers,
#: one-shot training); nb101's raw cells are constrained graphs, resnet50 has no supernet.
TRAIN_SPACES = ["resnet18", "nb201", "mobilenetv2", "vit", "nb101_s1"]
NAMES = SUPERNETS.names()
IMAGE = 8


def small_space(name: str) -> SearchSpace:
    return get_space(name, **SMALL.get(name, {}))


def batch(space: SearchSpace, n: int = 6, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, space.options.get("in_channels", 3), IMAGE, IMAGE, generator=g)


def archs(space: SearchSpace, k: int = 4) -> list[Arch]:
    return [space.sample(seed) for seed in range(k)]


def bn_modules(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    return {
        n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    }


def bn_inputs(model: nn.Module, run: Any) -> dict[str, list[Tensor]]:
    """Run `run()` and return, per BN module that saw input, each input it saw."""
    seen: dict[str, list[Tensor]] = {}
    handles = [
        m.register_forward_pre_hook(lambda _m, inp, n=n: seen.setdefault(n, []).append(inp[0]))
        for n, m in bn_modules(model).items()
    ]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return seen


@pytest.fixture(scope="module", params=NAMES)
def trained(request: pytest.FixtureRequest) -> Supernet:
    """A supernet whose BN stats were moved by train-mode forwards of several paths."""
    torch.manual_seed(0)
    net = build_supernet(small_space(request.param))
    net.train()
    with torch.no_grad():
        for i, arch in enumerate(archs(net.space, 6)):
            net(batch(net.space, seed=i + 10) * 2 + 0.5, arch)
    return net.eval()


def test_extract_matches_supernet_in_eval(trained: Supernet) -> None:
    x = batch(trained.space, seed=1)
    for arch in archs(trained.space):
        with torch.no_grad():
            want = trained(x, arch)
            got = trained.extract(arch)(x)
        assert got.shape == (x.shape[0], trained.space.options["num_classes"])
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_extract_is_a_slice_of_the_supernet(trained: Supernet) -> None:
    src = trained.state_dict()
    for arch in archs(trained.space):
        net = trained.extract(arch)
        assert not net.training
        dst = net.state_dict()
        assert set(dst) <= set(src)
        # a path is smaller: fewer tensors, or (every weight shared, as vit) smaller ones
        sizes = sum(t.numel() for t in dst.values()), sum(src[k].numel() for k in dst)
        assert len(dst) < len(src) or sizes[0] < sizes[1]
        for key, t in dst.items():
            s = src[key][trained.slice_of(key, t.shape)] if t.dim() else src[key]
            assert torch.equal(t, s), key


@pytest.mark.parametrize("name", NAMES)
def test_spos_step_grads_are_the_standalone_grads(name: str) -> None:
    """Train mode: same loss, and each standalone grad is the slice of the supernet grad."""
    torch.manual_seed(1)
    sup = build_supernet(small_space(name)).train()
    x, y = batch(sup.space), torch.arange(6) % sup.space.options["num_classes"]
    for arch in archs(sup.space, 2):
        sup.zero_grad(set_to_none=True)
        net = sup.extract(arch)
        loss_sup = F.cross_entropy(sup(x, arch), y)
        loss_net = F.cross_entropy(net(x), y)
        torch.testing.assert_close(loss_net, loss_sup, atol=1e-5, rtol=1e-5)
        loss_sup.backward()
        loss_net.backward()
        params = dict(sup.named_parameters())
        chosen = dict(net.named_parameters())
        for key, p in params.items():
            if key not in chosen:
                assert p.grad is None, f"{key} is off the path but got a gradient"
                continue
            g, where = chosen[key].grad, sup.slice_of(key, chosen[key].shape)
            torch.testing.assert_close(g, p.grad[where], atol=1e-5, rtol=1e-4)
            rest = p.grad.clone()
            rest[where] = 0
            assert not rest.any(), f"{key}: gradient outside the chosen width"


@pytest.mark.parametrize("name", NAMES)
def test_train_forward_moves_only_the_chosen_paths_bn_stats(name: str) -> None:
    torch.manual_seed(2)
    sup = build_supernet(small_space(name)).train()
    arch = sup.space.sample(3)
    before = {k: v.clone() for k, v in sup.state_dict().items() if "running" in k or "batches" in k}
    seen = bn_inputs(sup, lambda: sup(batch(sup.space), arch))
    after = sup.state_dict()
    for name_, bn in bn_modules(sup).items():
        keys = [f"{name_}.{b}" for b in ("running_mean", "running_var", "num_batches_tracked")]
        if name_ not in seen:
            for k in keys:
                assert torch.equal(after[k], before[k]), f"{k} changed off the path"
            continue
        c = seen[name_][0].shape[1]
        assert after[keys[2]] == before[keys[2]] + 1
        for k in keys[:2]:
            assert not torch.equal(after[k][:c], before[k][:c]), f"{k} did not move"
            assert torch.equal(after[k][c:], before[k][c:]), f"{k} moved beyond {c} channels"
        if c < bn.num_features:
            assert isinstance(bn, SlicedBatchNorm2d)


def _check_recalibrated(model: nn.Module, seen: dict[str, list[Tensor]], k: int) -> None:
    assert seen
    bns = bn_modules(model)
    for name, inputs in seen.items():
        assert len(inputs) == k, name
        c = inputs[0].shape[1]
        mean = torch.stack([t.mean((0, 2, 3)) for t in inputs]).mean(0)
        var = torch.stack([t.transpose(0, 1).reshape(c, -1).var(1) for t in inputs]).mean(0)
        bn = bns[name]
        torch.testing.assert_close(bn.running_mean[:c], mean, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(bn.running_var[:c], var, atol=1e-5, rtol=1e-4)
        assert int(bn.num_batches_tracked) == k
        assert not bn.running_mean[c:].any()  # reset, and not touched by this path
        assert bn.momentum == 0.1  # restored after recalibration


@pytest.mark.parametrize("name", NAMES)
def test_recalibrate_bn_is_the_average_of_batch_stats(name: str) -> None:
    torch.manual_seed(3)
    space = small_space(name)
    k = 4
    batches = [batch(space, seed=20 + i) * (1 + i) + i for i in range(k)]
    # A standalone network, and one supernet path (sliced BN for resnet18's width 0.5).
    net = build_network(space, space.sample(4)).eval()
    seen = bn_inputs(net, lambda: recalibrate_bn(net, batches))
    assert not net.training
    _check_recalibrated(net, seen, k)

    sup = build_supernet(space).eval()
    arch = space.sample(5)
    if name == "resnet18":
        arch = space.arch({n: 0.5 if n.endswith("width") else 5 for n in space.names})
    seen = bn_inputs(sup, lambda: recalibrate_bn(sup, batches, lambda x: sup(x, arch)))
    _check_recalibrated(sup, seen, k)


def test_nb201_all_conv3x3_has_nb201_param_count() -> None:
    space = get_space("nb201")
    arch = space.arch(["nor_conv_3x3"] * 6)
    net = build_network(space, arch)
    assert sum(p.numel() for p in net.parameters()) == 1_531_546


def test_nb201_none_and_parameter_free_edges_hold_no_parameters() -> None:
    space = get_space("nb201", C=4, N=1)
    arch = space.parse("|none~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|none~1|none~2|")
    net = build_network(space, arch)
    assert not [n for n, _ in net.named_parameters() if ".edges." in n]
    out = net(batch(space))
    assert out.shape == (6, 10)


def _resnet18_params(space: SearchSpace, arch: Arch) -> int:
    """Hand count: stem conv+BN, per block conv1/bn1/conv2/bn2 (+ 1x1 shortcut), then fc."""
    w, cin = space.options["base_width"], space.options["in_channels"]
    total = cin * w * 9 + 2 * w
    prev = w
    for b, (mult, stride) in enumerate(zip(MULTS, STRIDES, strict=True)):
        out, k, width = mult * w, arch.values[2 * b], arch.values[2 * b + 1]
        mid = max(1, round(width * out))
        total += prev * mid * k * k + 2 * mid + mid * out * k * k + 2 * out
        if stride != 1 or prev != out:
            total += prev * out + 2 * out
        prev = out
    return total + prev * space.options["num_classes"] + space.options["num_classes"]


def test_resnet18_standalone_param_count_matches_hand_formula() -> None:
    space = get_space("resnet18", base_width=4)
    arch = space.parse("k3w0.5-k5w1-k7w2-k3w1-k5w0.5-k7w1-k3w2-k5w0.5")
    net = build_network(space, arch)
    assert sum(p.numel() for p in net.parameters()) == _resnet18_params(space, arch)
    # base_width 4, block 0 width 0.5: mid = 2 channels.
    assert net.blocks[0].branches["k3"].conv1.weight.shape == (2, 4, 3, 3)


def test_resnet18_imagenet_stem_runs_and_extracts() -> None:
    space = get_space("resnet18", base_width=2, stem="imagenet")
    sup = build_supernet(space).eval()
    arch = space.sample(7)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(sup.extract(arch)(x), sup(x, arch), atol=1e-5, rtol=1e-5)


def test_sliced_bn_matches_a_narrow_bn() -> None:
    """Train then eval, momentum and cumulative: a sliced BN acts as a BN of c channels."""
    torch.manual_seed(4)
    wide, narrow = SlicedBatchNorm2d(7), nn.BatchNorm2d(3)
    with torch.no_grad():
        wide.weight.uniform_(0.5, 2)
        wide.bias.uniform_(-1, 1)
        narrow.weight.copy_(wide.weight[:3])
        narrow.bias.copy_(wide.bias[:3])
    for momentum in (0.1, None):
        wide.momentum = narrow.momentum = momentum
        for bn in (wide, narrow):
            bn.train()
        for i in range(3):
            x = torch.randn(5, 3, 4, 4) * (i + 1) + i
            torch.testing.assert_close(wide(x), narrow(x))
        for bn in (wide, narrow):
            bn.eval()
        x = torch.randn(5, 3, 4, 4)
        torch.testing.assert_close(wide(x), narrow(x))
        torch.testing.assert_close(wide.running_var[:3], narrow.running_var)
    assert torch.equal(wide.running_mean[3:], torch.zeros(4))
    with pytest.raises(ValueError):
        wide(torch.randn(2, 8, 3, 3))


def test_unknown_space_and_foreign_arch_are_clear_errors() -> None:
    with pytest.raises(SupernasError, match="nosuch"):
        build_supernet("nosuch")
    sup = build_supernet(small_space("resnet18"))
    foreign = small_space("nb201").sample(0)
    x = batch(sup.space)
    with pytest.raises(SupernasError, match="nb201"):
        sup(x, foreign)
    with pytest.raises(SupernasError, match="nb201"):
        sup.extract(foreign)
    with pytest.raises(SupernasError):
        build_network(sup.space, foreign)
    nb = build_supernet(small_space("nb201"))
    with pytest.raises(SupernasError, match="resnet18"):
        nb(x, sup.space.sample(0))
