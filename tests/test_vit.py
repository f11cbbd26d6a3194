"""The vit space and its weight-entangled supernet: extract, sizes, strings, training, proxies."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import supernas
from supernas.errors import SupernasError
from supernas.proxies import ProxyEstimator, list_proxies, proxy_batch
from supernas.space import Arch, SearchSpace, get_space
from supernas.supernet import build_network, build_supernet

#: Proxies that need nn.ReLU activations or 4-D stage features: a ViT leaves them undefined.
UNDEFINED_ON_VIT = {"nwot", "swap", "reg_swap", "az_trainability"}


def small(**options: object) -> SearchSpace:
    return get_space("vit", **{"embed_dim": 8, "depth": 2, **options})


def _hand_params(space: SearchSpace, arch: Arch) -> int:
    """Stem conv+BN, patchify conv, positions; per layer 2 LNs, q/k/v, proj, MLP; LN, head."""
    o = space.options
    d, p, cin, c = o["embed_dim"], o["patch_size"], o["in_channels"], o["num_classes"]
    grid = o["image_size"] // p
    total = 0
    if o["stem"] == "conv":
        mid = d // 2
        total += cin * mid * 9 + 2 * mid
        cin = mid
    total += cin * d * p * p + d + grid * grid * d
    for i in range(o["depth"]):
        q = round(arch.values[3 * i + 1] * d)
        h = round(arch.values[3 * i + 2] * d)
        total += 2 * d + 3 * (d * q + q) + q * d + d + 2 * d + d * h + h + h * d + d
    return total + 2 * d + d * c + c


@pytest.mark.parametrize("stem", ["conv", "patch"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("side", [32, 8])
def test_supernet_matches_extract_in_eval_and_train(stem: str, channels: int, side: int) -> None:
    """32x32 uses the learned positions as they are; 8x8 interpolates them to a 2x2 grid."""
    torch.manual_seed(0)
    space = get_space("vit", embed_dim=16, depth=3, in_channels=channels, stem=stem)
    sup = build_supernet(space)
    x = torch.randn(4, channels, side, side)
    for seed in range(4):
        arch = space.sample(seed)
        for training in (False, True):
            sup.train(training)
            net = sup.extract(arch)
            assert net.training is training
            with torch.no_grad():
                want = sup(x, arch)
                got = net(x)
            assert got.shape == (4, 10)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_heads_share_every_weight() -> None:
    """Archs that differ only in heads extract identical tensors (heads only reshape)."""
    space = small()
    sup = build_supernet(space)
    nets = [sup.extract(space.parse(f"h{h}q1m2-h{h}q0.5m4")) for h in (1, 2, 4)]
    states = [n.state_dict() for n in nets]
    for key, t in states[0].items():
        assert all(torch.equal(t, s[key]) for s in states[1:]), key
    x = torch.randn(2, 3, 8, 8)
    outs = [n.eval()(x) for n in nets]
    assert not torch.allclose(outs[0], outs[2])  # the same weights, attended differently


def test_standalone_param_count_matches_hand_count() -> None:
    for stem in ("conv", "patch"):
        space = get_space("vit", stem=stem)
        arch = space.parse("h1q0.5m1-h2q1m2-h4q0.5m4-h4q1m1")
        net = build_network(space, arch)
        assert sum(p.numel() for p in net.parameters()) == _hand_params(space, arch)
    # embed_dim 32, layer 0: qkv x0.5 = 16 wide, MLP x1 = 32 hidden.
    assert net.layers[0].q.weight.shape == (16, 32)
    assert net.layers[0].fc1.weight.shape == (32, 32)
    assert net.layers[2].fc1.weight.shape == (128, 32)


def test_space_size_and_options() -> None:
    space = get_space("vit")
    assert space.size == 18**4 == 104_976
    assert small().size == 18**2
    assert get_space("vit", depth=6).size == 18**6
    assert space.options == {
        "embed_dim": 32,
        "depth": 4,
        "patch_size": 4,
        "image_size": 32,
        "in_channels": 3,
        "num_classes": 10,
        "stem": "conv",
    }
    assert get_space("vit", **space.options).size == space.size


def test_arch_string_round_trip() -> None:
    space = get_space("vit")
    text = "h2q0.5m4-h4q1m2-h1q1m1-h4q0.5m4"
    arch = space.parse(text)
    assert str(arch) == text
    assert arch.values[:3] == (2, 0.5, 4.0)
    for seed in range(20):
        a = space.sample(seed)
        assert space.parse(str(a)) == a


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("h2q1m4-h4q1m2", "has 2 layers; this vit space has depth 4"),
        ("-".join(["h1q1m1"] * 5), "has 5 layers"),
        ("-".join(["h1q1m1"] * 3 + ["h3q1m1"]), "'3' is not an option.*options: 1, 2, 4"),
        ("-".join(["h1q1m1"] * 3 + ["h1q0.25m1"]), "'0.25' is not an option.*0.5, 1"),
        ("-".join(["h1q1m1"] * 3 + ["h1q1m3"]), "'3' is not an option.*options: 1, 2, 4"),
        ("-".join(["h1q1m1"] * 3 + ["h1m1q1"]), "is not 'h<heads>q<qkv ratio>m<mlp ratio>'"),
    ],
)
def test_parse_errors(text: str, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        get_space("vit").parse(text)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"embed_dim": 12}, "multiple of 8"),
        ({"embed_dim": 0}, "embed_dim must be a positive integer"),
        ({"depth": 0}, "depth"),
        ({"num_classes": 1}, "num_classes"),
        ({"image_size": 30}, "not a multiple of patch_size"),
        ({"stem": "huge"}, "unknown stem"),
        ({"in_channels": True}, "in_channels"),
    ],
)
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(SupernasError, match=match):
        get_space("vit", **options)


def test_input_smaller_than_a_patch_is_a_clear_error() -> None:
    space = small(patch_size=8, image_size=32)
    with pytest.raises(SupernasError, match="smaller than one 8x8 patch"):
        build_supernet(space)(torch.randn(2, 3, 4, 4), space.sample(0))


def test_archs_of_another_depth_are_refused() -> None:
    arch = get_space("vit", depth=2).sample(0)
    with pytest.raises(SupernasError, match="has 12 choices, got 6 values"):
        build_supernet(small(depth=4)).extract(arch)


def test_spos_epoch_on_digits() -> None:
    data = supernas.load_data("digits", max_train=200, max_val=100)
    space = small(in_channels=1, num_classes=data.num_classes, image_size=8)
    torch.manual_seed(0)
    sup = build_supernet(space)
    history = supernas.SPOSTrainer(supernas.Recipe(epochs=1), seed=0).fit(sup, data)
    assert len(history) == 1
    with torch.no_grad():
        loss = F.cross_entropy(sup.eval()(data.x_val[:8], space.sample(1)), data.y_val[:8])
    assert math.isfinite(float(loss))


@pytest.mark.parametrize("stem", ["conv", "patch"])
def test_every_proxy_runs_or_is_counted_undefined(stem: str) -> None:
    space = small(in_channels=1, image_size=8, stem=stem)
    batch = proxy_batch("digits", space, batch_size=8)
    archs = [space.sample(i) for i in range(2)]
    est = ProxyEstimator(space, list_proxies(), batch, seed=0)
    table = est.score_table(archs)
    undefined = {name for name, vals in table.items() if any(math.isnan(v) for v in vals)}
    assert undefined <= UNDEFINED_ON_VIT, undefined
    assert all(est.warnings[name] >= 1 for name in undefined)
    assert "az_trainability" in undefined  # stage features are (batch, tokens, dim)
    if stem == "patch":  # no nn.ReLU at all: no activation pattern to score
        assert {"nwot", "swap"} <= undefined
    assert math.isfinite(table["params"][0]) and math.isfinite(table["synflow"][0])
