"""resnet18's weight-sharing modes: extract agrees with the supernet in each, the parameter
counts follow the hand formulas, nested kernels are centre crops, and a step touches only
the weights of its path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from typer.testing import CliRunner

from supernas.cli import app
from supernas.errors import SupernasError
from supernas.io import load_checkpoint
from supernas.space import Arch, SearchSpace, get_space
from supernas.space.resnet18 import KERNELS, SHARINGS, WIDTHS
from supernas.supernet import Supernet, build_supernet
from supernas.train import Recipe, get_trainer, load_supernet, supernet_checkpoint
from supernas.train.loop import load_supernet_state

MULTS = (1, 1, 2, 2, 4, 4, 8, 8)
STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)


def space(sharing: str, base_width: int = 4, **opts: object) -> SearchSpace:
    return get_space("resnet18", base_width=base_width, sharing=sharing, **opts)


def supernet(sharing: str, seed: int = 0, **opts: object) -> Supernet:
    torch.manual_seed(seed)
    return build_supernet(space(sharing, **opts))


def batch(n: int = 6, seed: int = 0) -> Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def archs(sp: SearchSpace, k: int = 5) -> list[Arch]:
    return [sp.sample(seed) for seed in range(k)] + [sp.parse("-".join(["k3w0.5"] * 8))]


# -- extract == supernet -------------------------------------------------------------------
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("sharing", SHARINGS)
def test_extract_equals_the_supernet_path(sharing: str, training: bool) -> None:
    net = supernet(sharing)
    with torch.no_grad():  # move BN stats off their init, so eval mode checks them too
        for i, arch in enumerate(archs(net.space)):
            net.train()(batch(seed=10 + i) * 2 + 0.5, arch)
    net.train(training)
    x = batch(seed=1)
    for arch in archs(net.space):
        with torch.no_grad():
            want = net(x, arch)
            got = net.extract(arch)(x)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sharing", SHARINGS)
def test_forward_mixed_one_hot_is_forward_and_soft_weights_run(sharing: str) -> None:
    net = supernet(sharing).train()
    x = batch()
    for arch in archs(net.space, 3):
        idx = net.space.encode(arch)
        one_hot = [
            F.one_hot(torch.tensor(i), len(c.options)).float()
            for i, c in zip(idx, net.space.choices, strict=True)
        ]
        torch.testing.assert_close(net.forward_mixed(x, one_hot), net(x, arch))
    soft = [torch.rand(len(c.options)).softmax(0) for c in net.space.choices]
    out = net.forward_mixed(x, soft)
    assert out.shape == (6, 10) and torch.isfinite(out).all()


def test_modes_share_one_arch_space_and_validate_their_option() -> None:
    spaces = [space(s) for s in SHARINGS]
    assert all(s.choices == spaces[0].choices and s.size == spaces[0].size for s in spaces)
    assert "sharing" not in spaces[0].options  # the default stays out: old files still match
    assert spaces[2].options["sharing"] == "nested"
    with pytest.raises(SupernasError, match="unknown sharing 'both'"):
        space("both")


# -- parameter counts ----------------------------------------------------------------------
def conv_bn(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + 2 * cout


def branch(cin: int, mid: int, cout: int, k: int) -> int:
    return conv_bn(cin, mid, k) + conv_bn(mid, cout, k)


def expected_params(sharing: str, bw: int, cin: int = 3, classes: int = 10) -> int:
    """Stem + shortcuts + fc, plus each block's branches as the mode allocates them."""
    total = conv_bn(cin, bw, 3) + 8 * bw * classes + classes
    ins = [bw, *(m * bw for m in MULTS[:-1])]
    for c, m, s in zip(ins, MULTS, STRIDES, strict=True):
        out = m * bw
        if s != 1 or c != out:
            total += conv_bn(c, out, 1)
        mids = [max(1, round(w * out)) for w in WIDTHS]
        if sharing == "kernel":
            total += sum(branch(c, max(mids), out, k) for k in KERNELS)
        elif sharing == "independent":
            total += sum(branch(c, mid, out, k) for k in KERNELS for mid in mids)
        else:
            total += branch(c, max(mids), out, max(KERNELS))
    return total


@pytest.mark.parametrize("bw", [1, 4, 16])
def test_parameter_counts_follow_the_hand_formulas(bw: int) -> None:
    counts = {}
    for s in SHARINGS:
        net = build_supernet(space(s, base_width=bw))
        counts[s] = sum(p.numel() for p in net.parameters())
        assert counts[s] == expected_params(s, bw), s
    assert counts["independent"] > counts["kernel"] > counts["nested"]


def test_independent_holds_nine_exact_branches_a_block() -> None:
    net = supernet("independent")
    assert all(len(b.branches) == 9 for b in net.blocks)
    conv = net.blocks[2].branches["k5w0_5"].conv1  # block 2: 4 -> 8 channels, width 0.5
    assert conv.weight.shape == (4, 4, 5, 5)


# -- nested: centre crops ------------------------------------------------------------------
def test_nested_small_kernels_are_the_centre_of_the_largest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = supernet("nested")
    assert all(list(b.branches) == ["k7"] for b in net.blocks)
    arch = net.space.parse("-".join(["k3w0.5"] * 4 + ["k5w1"] * 4))
    standalone = net.extract(arch)
    big = net.blocks[0].branches["k7"].conv1.weight
    small = standalone.blocks[0].branches["k3"].conv1.weight
    torch.testing.assert_close(small, big[:2, :, 2:5, 2:5], rtol=0, atol=0)
    big5 = net.blocks[7].branches["k7"].conv2.weight
    torch.testing.assert_close(
        standalone.blocks[7].branches["k5"].conv2.weight, big5[:, :32, 1:6, 1:6], rtol=0, atol=0
    )
    # the supernet's k3 path runs on a view of the k7 storage, and its gradient stays there
    seen: list[Tensor] = []
    real = F.conv2d

    def spy(inp: Tensor, weight: Tensor, *a: object, **k: object) -> Tensor:
        seen.append(weight)
        return real(inp, weight, *a, **k)

    monkeypatch.setattr(F, "conv2d", spy)
    net.train()(batch(), arch).square().sum().backward()
    monkeypatch.undo()
    centre = next(w for w in seen if w.shape == (2, 4, 3, 3))
    assert centre.untyped_storage().data_ptr() == big.untyped_storage().data_ptr()
    mask = torch.zeros_like(big, dtype=torch.bool)
    mask[:2, :, 2:5, 2:5] = True
    assert big.grad[mask].abs().sum() > 0 and not big.grad[~mask].any()


# -- a step touches only its path ----------------------------------------------------------
def touched_masks(net: Supernet, paths: list[Arch]) -> dict[str, Tensor]:
    """Per supernet parameter, the entries the standalone networks of `paths` are made of."""
    params = dict(net.named_parameters())
    masks = {k: torch.zeros_like(p, dtype=torch.bool) for k, p in params.items()}
    for arch in paths:
        for key, t in net.extract(arch).named_parameters():
            skey = net.source_key(key, arch)
            masks[skey][net.slice_of(skey, t.shape)] = True
    return masks


@pytest.mark.parametrize("sharing", SHARINGS)
def test_spos_steps_change_only_the_touched_weights(sharing: str) -> None:
    net = supernet(sharing).train()
    before = {k: p.detach().clone() for k, p in net.named_parameters()}
    paths = [net.space.sample(s) for s in (3, 4, 5)]
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)  # no weight decay
    y = torch.arange(6) % 10
    for arch in paths:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(batch(), arch), y).backward()
        opt.step()
    masks = touched_masks(net, paths)
    changed_any = False
    for key, p in net.named_parameters():
        moved = p.detach() != before[key]
        assert not moved[~masks[key]].any(), f"{key}: an entry off every path changed"
        changed_any |= bool(moved.any())
    assert changed_any
    if sharing == "independent":  # off-path branches are whole tensors left alone
        assert any(not m.any() for m in masks.values())


# -- checkpoints and the CLI ---------------------------------------------------------------
def test_a_checkpoint_of_another_mode_is_refused(tmp_path: Path) -> None:
    nested, kernel = supernet("nested"), supernet("kernel")
    with pytest.raises(SupernasError, match="sharing"):
        load_supernet_state(kernel, supernet_checkpoint(nested))
    with pytest.raises(SupernasError, match="sharing"):
        load_supernet_state(supernet("independent"), supernet_checkpoint(kernel))
    load_supernet_state(supernet("nested", seed=1), supernet_checkpoint(nested))


def test_fit_refuses_to_resume_a_checkpoint_of_another_mode(tmp_path: Path) -> None:
    import supernas

    data = supernas.load_data("digits", max_train=64, max_val=32)
    recipe = Recipe(epochs=1, batch_size=32, lr=0.05)

    def net(sharing: str) -> Supernet:
        return build_supernet(get_space("resnet18", base_width=2, in_channels=1, sharing=sharing))

    ckpt = tmp_path / "supernet.pt"
    get_trainer("spos", recipe=recipe).fit(net("nested"), data, checkpoint=ckpt)
    with pytest.raises(SupernasError, match="sharing"):
        get_trainer("spos", recipe=recipe).fit(net("kernel"), data, checkpoint=ckpt)
    loaded, _ = load_supernet(ckpt)
    assert loaded.space.options["sharing"] == "nested"


def test_cli_train_with_nested_sharing(tmp_path: Path) -> None:
    args = ["train", "--space", "resnet18", "--space-opt", "sharing=nested"]
    args += ["--space-opt", "base_width=2", "--epochs", "1", "--max-train", "64"]
    r = CliRunner().invoke(app, [*args, "--max-val", "32", "--out", str(tmp_path), "--quiet"])
    assert r.exit_code == 0, r.output
    ckpt = load_checkpoint(tmp_path / "supernet.pt")
    assert ckpt["space_options"]["sharing"] == "nested"
    loaded, _ = load_supernet(tmp_path / "supernet.pt")
    assert all(list(b.branches) == ["k7"] for b in loaded.blocks)
