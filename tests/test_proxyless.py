"""ProxylessNAS and FBNet: mobilenetv2's forward_mixed, expected latency, both trainers.

The LUTs here are written by hand with the structure `build_lut` finds for these spaces
(mobilenetv2: 2 fixed ops, one op per block decided by that block's choice, 2 fixed ops;
nb201: per cell one op per edge decided by that edge's choice, fixed ops between), with
latencies that are multiples of 1/8 ms, so sums are exact in floating point. Measuring
a real LUT costs minutes on a loaded machine; tests/test_latency.py covers that path.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from typer.testing import CliRunner

from supernas.cli import app
from supernas.data import Dataset, load_data
from supernas.errors import SupernasError
from supernas.hardware import LatencyLUT
from supernas.hardware.expected import ExpectedLatency, load_lut, lut_digest
from supernas.hardware.ops import Position
from supernas.space import SearchSpace, get_space
from supernas.supernet import Supernet, build_supernet
from supernas.train import DARTSTrainer, FBNetTrainer, ProxylessTrainer, Recipe, get_trainer
from supernas.train.proxyless import GATE_EPS, binary_gate_grad

SMALL: dict[str, dict[str, Any]] = {"mobilenetv2": {"base_width": 4}, "nb201": {"C": 4, "N": 1}}
#: 128 train images in batches of 43, 43, 42: no batch of one.
RECIPE = Recipe(epochs=1, batch_size=43, lr=0.05)
#: The op a hand LUT makes fastest, per space.
FAST_OP = {"mobilenetv2": "k3e3", "nb201": "nor_conv_1x1"}


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return load_data("digits", max_train=128, max_val=64)


def space(name: str) -> SearchSpace:
    return get_space(name, in_channels=1, num_classes=10, **SMALL[name])


def supernet(name: str, seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    return build_supernet(space(name))


def batch(n: int = 6, seed: int = 0) -> Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def one_hot(sp: SearchSpace, arch: Any) -> list[Tensor]:
    return [
        nn.functional.one_hot(torch.tensor(i), len(c.options)).float()
        for i, c in zip(sp.encode(arch), sp.choices, strict=True)
    ]


def no_seconds(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in rec.items() if k != "seconds"} for rec in history]


def ms_of(op: str, c: int) -> float:
    """A hand latency: FAST_OP fastest, skip/none slowest (so only FAST_OP is below the
    mean); multiples of 1/8 so every sum is exact."""
    if op in FAST_OP.values():
        return 1.0 + c / 8
    if op in ("skip", "none"):
        return 8.0 + c / 8
    return 4.0 + len(op) / 8 + c / 8


def hand_lut(sp: SearchSpace, overhead: float = 0.375, joint: bool = False) -> LatencyLUT:
    """A LUT with build_lut's structure for `sp`; optionally one position on 2 choices."""
    per_cell = range(len(sp.choices))
    positions = [Position((), {(): "stem"})]
    entries = {"stem": {"median_ms": 2.25}, "head": {"median_ms": 0.5}}
    cells = 3 if sp.name == "nb201" else 1
    for cell in range(cells):
        for c in per_cell:
            keys = {}
            for j, op in enumerate(sp.choices[c].options):
                key = f"cell{cell}.c{c}.{op}"
                keys[(j,)] = key
                entries[key] = {"median_ms": ms_of(str(op), c)}
            positions.append(Position((c,), keys))
        positions.append(Position((), {(): "head"}))
    if joint:
        keys = {}
        for i in range(len(sp.choices[0].options)):
            for j in range(len(sp.choices[1].options)):
                keys[(i, j)] = f"joint{i}.{j}"
                entries[f"joint{i}.{j}"] = {"median_ms": (i + 2 * j) / 8}
        positions.append(Position((0, 1), keys))
    return LatencyLUT(
        sp.name, dict(sp.options), (1, 8, 8), "eager", 1, "cpu", entries, positions, overhead
    )


# -- mobilenetv2 forward_mixed -----------------------------------------------------------
@pytest.mark.parametrize("training", [True, False])
def test_one_hot_forward_mixed_is_forward(training: bool) -> None:
    net = supernet("mobilenetv2").train(training)
    x = batch()
    archs = [net.space.sample(s) for s in range(3)]
    archs.append(net.space.parse("-".join(str(c.options[-1]) for c in net.space.choices)))
    assert "skip" in str(archs[-1])
    for arch in archs:
        torch.testing.assert_close(
            net.forward_mixed(x, one_hot(net.space, arch)), net(x, arch), rtol=0, atol=0
        )


def test_soft_forward_mixed_is_the_hand_written_sum() -> None:
    net = supernet("mobilenetv2").eval()
    g = torch.Generator().manual_seed(2)
    weights = [torch.rand(len(c.options), generator=g).softmax(0) for c in net.space.choices]
    x = batch(seed=1)
    h = net.first(net.stem(x))
    for block, c, w in zip(net.blocks, net.space.choices, weights, strict=True):
        outs = []
        for op in c.options:
            if op == "skip":
                outs.append(h)
            else:
                k, e = str(op)[1:].split("e")
                outs.append(block(h, int(k), int(e) * block.expand.in_channels))
        h = sum(wj * o for wj, o in zip(w, outs, strict=True))
    ref = net.fc(net.head(h).mean((2, 3)))
    torch.testing.assert_close(net.forward_mixed(x, weights), ref)


def count_block_calls(net: Supernet) -> list[int]:
    """Calls per MBBlock (each call is one op of that block), via forward hooks."""
    calls = [0] * len(net.blocks)
    for b, block in enumerate(net.blocks):
        block.register_forward_hook(lambda *_a, b=b: calls.__setitem__(b, calls[b] + 1))
    return calls


def test_zero_weights_do_not_run_and_grad_zeros_still_reach_alpha() -> None:
    net = supernet("mobilenetv2").train()
    calls = count_block_calls(net)
    weights = []
    for b, c in enumerate(net.space.choices):  # block b: ops 0 and 1 live (b odd: only 0)
        w = torch.zeros(len(c.options))
        w[0] = 0.7 if b % 2 else 1.0
        if b % 2:
            w[1] = 0.3
        weights.append(w)
    net.forward_mixed(batch(), weights)
    assert calls == [2 if b % 2 else 1 for b in range(16)]
    # GDAS-style zero weights that require grad: ops still skipped, alpha gets a gradient.
    calls[:] = [0] * 16
    alphas = [torch.zeros(len(c.options), requires_grad=True) for c in net.space.choices]
    hard = [
        nn.functional.one_hot(torch.tensor(0), len(a)) - a.softmax(0).detach() + a.softmax(0)
        for a in alphas
    ]
    net.forward_mixed(batch(), hard).square().sum().backward()
    assert calls == [1] * 16
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in alphas)
    # All weights of a non-skippable block zero: zeros of the block's output shape.
    x = torch.randn(2, 4, 8, 8)
    block = net.blocks[2]  # 24 -> 32 channels at width 1.0, stride 2
    out = block.forward_mixed(x, [(3, 12)], torch.zeros(1), [True])
    assert out.shape == (2, block.project.out_channels, 4, 4) and not out.any()


def test_forward_mixed_errors() -> None:
    net = supernet("mobilenetv2")
    with pytest.raises(SupernasError, match="needs 16 weight vectors"):
        net.forward_mixed(batch(), [torch.ones(6)] * 3)
    with pytest.raises(SupernasError, match="1-D weight of 6"):
        net.forward_mixed(batch(), [torch.ones(7)] * 16)


# -- expected latency ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mobilenetv2", "nb201"])
@pytest.mark.parametrize("joint", [False, True])
def test_one_hot_expected_latency_is_the_lut_prediction(name: str, joint: bool) -> None:
    sp = space(name)
    lut = hand_lut(sp, joint=joint)
    expected = ExpectedLatency.from_lut(lut, sp)
    assert len(expected.joint) == int(joint)
    for seed in range(5):
        arch = sp.sample(seed)
        assert float(expected(one_hot(sp, arch))) == lut.predict(arch)  # exact
    # Linear in each p_c: its gradient is L_c (plus the joint table contracted).
    probs = [torch.rand(len(c.options)).softmax(0).requires_grad_() for c in sp.choices]
    expected(probs).backward()
    c = len(sp.choices) - 1
    cells = 3 if name == "nb201" else 1
    want = torch.tensor([cells * ms_of(str(op), c) for op in sp.choices[c].options])
    torch.testing.assert_close(probs[c].grad, want.float())
    torch.testing.assert_close(expected.option_latency(c), want.double())


def test_expected_latency_errors(tmp_path: Path) -> None:
    sp = space("mobilenetv2")
    lut = hand_lut(sp)
    with pytest.raises(SupernasError, match="latency LUT is for"):
        ExpectedLatency.from_lut(lut, space("nb201"))
    del lut.entries["head"]
    with pytest.raises(SupernasError, match="lacks op head"):
        ExpectedLatency.from_lut(lut, sp)
    with pytest.raises(SupernasError, match="16 probability vectors"):
        ExpectedLatency.from_lut(hand_lut(sp))([torch.ones(3)])
    full = hand_lut(sp)
    full.save(tmp_path / "lut.json")
    loaded = load_lut(tmp_path / "lut.json")
    assert loaded is not None and lut_digest(loaded) == lut_digest(full)
    assert load_lut(None) is None and lut_digest(None) is None
    with pytest.raises(SupernasError, match="lut must be"):
        load_lut(3)  # type: ignore[arg-type]


# -- proxyless' two-path gradient ---------------------------------------------------------
def test_binary_gate_grad_is_the_double_sum() -> None:
    g = torch.tensor([0.3, -1.2], dtype=torch.float64)
    p = torch.tensor([0.25, 0.75], dtype=torch.float64)
    want = [sum(g[j] * p[j] * (float(i == j) - p[i]) for j in range(2)) for i in range(2)]
    torch.testing.assert_close(binary_gate_grad(g, p), torch.stack(want))
    # Two candidates: equal and opposite, p0 p1 (g0 - g1).
    assert float(binary_gate_grad(g, p)[0]) == pytest.approx(0.25 * 0.75 * 1.5)


def test_proxyless_arch_grad_matches_its_formula_on_nb201() -> None:
    """Gate gradients by central differences of the val loss (float64, eval-mode BN)."""
    net = supernet("nb201").double().eval()
    sp = net.space
    alphas = [torch.tensor([0.1, 0.0, 0.5, 1.0, -0.3], dtype=torch.float64) for _ in range(6)]
    alphas = [a.requires_grad_() for a in alphas]
    xv = batch(8, seed=5).double()
    yv = torch.arange(8) % 10
    loss_fn = nn.CrossEntropyLoss()
    step = SimpleNamespace(supernet=net, alphas=alphas, val=(xv, yv), loss_fn=loss_fn)
    tr = ProxylessTrainer(seed=0)
    tr.init_alphas(sp, torch.Generator().manual_seed(0))
    tr.sample_gen = torch.Generator().manual_seed(11)
    gates, pairs = tr.sample_gates(alphas)
    tr.sample_gen = torch.Generator().manual_seed(11)  # the same draws inside arch_grads
    grads, loss = tr.arch_grads(step)

    def val_loss(gs: list[Tensor]) -> float:
        with torch.no_grad():
            return float(loss_fn(net.forward_mixed(xv, gs), yv))

    base = [g.detach().clone() for g in gates]
    assert float(loss) == pytest.approx(val_loss(base), rel=1e-12)
    live = [g.clone().requires_grad_() for g in base]
    gate_grads = torch.autograd.grad(loss_fn(net.forward_mixed(xv, live), yv), live)
    h = 1e-6
    for c, (pair, grad) in enumerate(zip(pairs, grads, strict=True)):
        assert pair is not None
        idx, p = pair
        assert base[c][idx[0]] == 1.0 and base[c][idx[1]] == GATE_EPS
        assert sorted(p.tolist()) == pytest.approx(
            sorted(alphas[c].detach()[idx].softmax(0).tolist())
        )
        g = gate_grads[c][idx]
        # dL/dg of both gates (the inactive one's included) by central differences: loose,
        # as a step of h crosses ReLU kinks; autograd's value is the exact one.
        fd = []
        for j in idx:
            plus = [t.clone() for t in base]
            minus = [t.clone() for t in base]
            plus[c][j] += h
            minus[c][j] -= h
            fd.append((val_loss(plus) - val_loss(minus)) / (2 * h))
        torch.testing.assert_close(torch.tensor(fd, dtype=torch.float64), g, rtol=1e-2, atol=1e-7)
        want = torch.zeros(5, dtype=torch.float64)
        for a, i in enumerate(idx):  # dL/dalpha_i = sum_j dL/dg_j p_j (delta_ij - p_i)
            want[i] = sum(g[b] * p[b] * (float(a == b) - p[a]) for b in range(2))
        torch.testing.assert_close(grad, want, rtol=1e-9, atol=1e-15)
        assert int((grad != 0).sum()) <= 2  # only the two sampled candidates move


def test_proxyless_latency_gradient_is_exact() -> None:
    sp = space("nb201")
    net = supernet("nb201").double().eval()
    alphas = [(0.1 * torch.randn(5, dtype=torch.float64)).requires_grad_() for _ in range(6)]
    step = SimpleNamespace(
        supernet=net,
        alphas=alphas,
        val=(batch(8).double(), torch.arange(8)),
        loss_fn=nn.CrossEntropyLoss(),
    )
    lut = hand_lut(sp)
    got = {}
    for key, opts in (("plain", {}), ("lat", {"lut": lut, "latency_weight": 2.0})):
        tr = ProxylessTrainer(seed=0, **opts)
        tr.init_alphas(sp, torch.Generator().manual_seed(0))
        tr.sample_gen = torch.Generator().manual_seed(4)
        got[key] = tr.arch_grads(step)
    expected = ExpectedLatency.from_lut(lut, sp)
    uniform = [torch.full((5,), 0.2) for _ in range(6)]
    term = 2.0 * expected([a.softmax(0) for a in alphas]) / expected(uniform)
    ref = torch.autograd.grad(term, alphas)
    for g0, g1, r in zip(got["plain"][0], got["lat"][0], ref, strict=True):
        torch.testing.assert_close(g1 - g0, r)
    assert float(got["lat"][1] - got["plain"][1]) == pytest.approx(float(term.detach()))


# -- trainers -----------------------------------------------------------------------------
CASES = [
    ("proxyless", "mobilenetv2", True),
    ("proxyless", "nb201", False),
    ("fbnet", "mobilenetv2", True),
    ("fbnet", "nb201", False),
]


@pytest.mark.parametrize(("method", "name", "with_lut"), CASES)
def test_each_trainer_fits_and_derives(
    method: str, name: str, with_lut: bool, tiny: Dataset
) -> None:
    net = supernet(name)
    opts = {"lut": hand_lut(net.space)} if with_lut else {}
    tr = get_trainer(method, recipe=RECIPE, seed=0, **opts)
    steps: list[int] = []
    history = tr.fit(net, tiny, on_step=lambda: steps.append(1))
    assert len(history) == 1 and len(steps) == 3
    rec = history[0]
    assert rec["train_loss"] > 0 and 0 <= rec["train_accuracy"] <= 1 and rec["arch_loss"] > 0
    arch = tr.derive()
    assert net.space.validate(str(arch)) == arch and rec["arch"] == str(arch)
    probs = tr.alphas()
    assert list(probs) == [c.name for c in net.space.choices] and rec["alphas"] == probs
    for c, p, v in zip(net.space.choices, probs.values(), arch.values, strict=True):
        assert sum(p) == pytest.approx(1.0) and c.options[p.index(max(p))] == v
    assert tr.config()["lut"] == (lut_digest(opts["lut"]) if with_lut else None)
    if method == "fbnet":
        assert rec["tau"] == 5.0


def test_same_seed_same_run(tiny: Dataset) -> None:
    runs = []
    for _ in range(2):
        net = supernet("nb201")
        tr = ProxylessTrainer(RECIPE, seed=3)
        runs.append((no_seconds(tr.fit(net, tiny)), net.state_dict(), tr.alphas()))
    (h1, s1, a1), (h2, s2, a2) = runs
    assert h1 == h2 and a1 == a2 and all(torch.equal(s1[k], s2[k]) for k in s1)
    other = ProxylessTrainer(RECIPE, seed=4)
    other.fit(supernet("nb201"), tiny)
    assert other.alphas() != a1


@pytest.mark.parametrize("method", ["proxyless", "fbnet"])
def test_killed_training_resumes_exactly(method: str, tiny: Dataset, tmp_path: Path) -> None:
    recipe = Recipe(epochs=2, batch_size=43)
    lut = hand_lut(space("nb201"))
    straight = supernet("nb201")
    tr = get_trainer(method, recipe=recipe, seed=1, lut=lut)
    h_straight = tr.fit(straight, tiny, checkpoint=tmp_path / "a.pt")

    class Killed(Exception):
        pass

    def kill(rec: dict) -> None:
        raise Killed

    with pytest.raises(Killed):
        get_trainer(method, recipe=recipe, seed=1, lut=lut).fit(
            supernet("nb201"), tiny, checkpoint=tmp_path / "b.pt", on_epoch=kill
        )
    resumed = supernet("nb201", seed=9)
    tr2 = get_trainer(method, recipe=recipe, seed=1, lut=lut)
    h_resumed = tr2.fit(resumed, tiny, checkpoint=tmp_path / "b.pt")
    assert no_seconds(h_resumed) == no_seconds(h_straight)
    assert tr2.alphas() == tr.alphas()
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    if method == "fbnet":
        assert [r["tau"] for r in h_straight] == pytest.approx([5.0, 5.0 * 0.956])
    # Another LUT is another config: the checkpoint is refused.
    other = hand_lut(space("nb201"), overhead=1.0)
    with pytest.raises(SupernasError, match="different training config"):
        get_trainer(method, recipe=recipe, seed=1, lut=other).fit(
            supernet("nb201"), tiny, checkpoint=tmp_path / "b.pt"
        )


@pytest.mark.parametrize(("method", "name"), [("proxyless", "mobilenetv2"), ("fbnet", "nb201")])
def test_latency_term_pushes_alpha_to_the_fast_op(method: str, name: str, tiny: Dataset) -> None:
    net = supernet(name)
    lut = hand_lut(net.space)
    opts: dict[str, Any] = {"lut": lut, "arch_lr": 0.02, "arch_weight_decay": 0.0}
    if method == "proxyless":
        opts["latency_weight"] = 100.0
    else:
        opts.update(latency_loss="add", latency_weight=100.0)
    tr = get_trainer(method, recipe=RECIPE, seed=0, **opts)
    tr.fit(net, tiny)
    fast = sum(v == FAST_OP[name] for v in tr.derive().values)
    assert fast >= 0.75 * len(net.space.choices), tr.derive()
    expected = ExpectedLatency.from_lut(lut, net.space)
    uniform = [torch.full((len(c.options),), 1 / len(c.options)) for c in net.space.choices]
    now = [torch.tensor(p) for p in tr.alphas().values()]
    assert float(expected(now)) < float(expected(uniform))


def test_proxyless_alpha_step_keeps_the_sampled_pairs_mass(tiny: Dataset) -> None:
    """Adam with beta1 = 0 plus the paper's rescaling: without a latency term, each step
    moves probability only between the two sampled options, so logsumexp(alpha) per
    choice stays at its initial value while alpha itself moves."""

    class Capture(ProxylessTrainer):
        def init_alphas(self, space: SearchSpace, gen: torch.Generator) -> list[Tensor]:
            self.init = super().init_alphas(space, gen)
            return [a.clone() for a in self.init]

    tr = Capture(RECIPE, seed=2)
    tr.fit(supernet("nb201"), tiny)
    for a0, a in zip(tr.init, tr._alphas, strict=True):
        assert not torch.equal(a0, a.detach())
        assert float(a.detach().logsumexp(0)) == pytest.approx(float(a0.logsumexp(0)), abs=1e-6)


def test_fbnet_multiplicative_loss_is_the_papers() -> None:
    sp = space("mobilenetv2")
    tr = FBNetTrainer(lut=hand_lut(sp))
    tr.init_alphas(sp, torch.Generator().manual_seed(0))
    masks = [torch.full((len(c.options),), 1 / len(c.options)) for c in sp.choices]
    lat = float(ExpectedLatency.from_lut(hand_lut(sp))(masks))
    ce = torch.tensor(2.0)
    assert float(tr.arch_loss(ce, masks)) == pytest.approx(
        2.0 * 0.2 * torch.tensor(lat).log() ** 0.6
    )
    slow_unit = FBNetTrainer(lut=hand_lut(sp), latency_unit=1000.0)
    slow_unit.init_alphas(sp, torch.Generator())
    with pytest.raises(SupernasError, match="smaller latency_unit"):
        slow_unit.arch_loss(ce, masks)


def test_proxyless_step_holds_one_path_darts_all(tiny: Dataset) -> None:
    """Ops run per block: proxyless 1 per weight step + 2 per alpha step (+ the inactive
    op once more, recomputed in the backward instead of kept); darts all."""
    net = supernet("mobilenetv2")
    calls = count_block_calls(net)
    tr = ProxylessTrainer(RECIPE, seed=0)
    tr.fit(net, tiny)
    assert calls == [3 * 4] * 16  # 3 steps x (1 + 2 + 1)
    calls[:] = [0] * 16
    net.forward_mixed(batch(), tr.mixed_weights(tr._alphas, arch_step=False))
    assert calls == [1] * 16  # the weight step alone: one path
    calls[:] = [0] * 16
    darts = DARTSTrainer()
    net.forward_mixed(batch(), darts.mixed_weights(tr._alphas, arch_step=False))
    assert calls == [len(c.options) for c in net.space.choices]


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(SupernasError, match="does not support params/FLOPs"):
        ProxylessTrainer(constraint=lambda a: True)
    with pytest.raises(SupernasError, match="latency_weight"):
        ProxylessTrainer(latency_weight=-1.0)
    with pytest.raises(SupernasError, match="latency_loss"):
        FBNetTrainer(latency_loss="pow")
    with pytest.raises(SupernasError, match="tau0"):
        FBNetTrainer(tau_decay=1.5)
    with pytest.raises(SupernasError, match="call fit"):
        ProxylessTrainer().derive()


def test_cli_train_proxyless(tmp_path: Path) -> None:
    args = ["train", "--method", "proxyless", "--space", "nb201", "--space-opt", "C=4"]
    args += ["--space-opt", "N=1", "--data", "digits", "--max-train", "86", "--max-val", "43"]
    args += ["--batch-size", "43", "--epochs", "1", "--out", str(tmp_path), "--quiet"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "train.json").read_text())
    assert get_space("nb201", **res["space_options"]).parse(res["arch"])
    assert res["arch"] in r.output and res["history"][-1]["arch"] == res["arch"]


@pytest.mark.parametrize("name", ["nb201", "mobilenetv2"])
def test_probe_gates_give_the_same_gate_gradients_without_the_inactive_graph(name: str) -> None:
    """The alpha step's memory saving changes no gradient: same dL/dg, same loss."""
    from supernas.supernet.base import probe_gates

    sp = space(name)
    net = supernet(name)
    net.eval()  # fixed BN statistics: the two forwards see identical ops
    x, y = batch(), torch.arange(6) % 10

    def gates() -> list[Tensor]:
        out = []
        for c in sp.choices:
            g = torch.zeros(len(c.options))
            g[0], g[-1] = 1.0, GATE_EPS
            out.append(g.requires_grad_())
        return out

    plain = gates()
    loss = nn.functional.cross_entropy(net.forward_mixed(x, plain), y)
    want = torch.autograd.grad(loss, plain, allow_unused=True)
    probed = gates()
    with probe_gates(GATE_EPS):
        loss2 = nn.functional.cross_entropy(net.forward_mixed(x, probed), y)
    got = torch.autograd.grad(loss2, probed, retain_graph=True, allow_unused=True)
    assert loss2.item() == pytest.approx(loss.item(), abs=1e-7)
    assert sum(g is not None for g in got) > 0
    for g, w, p in zip(got, want, probed, strict=True):  # None: no gradient, i.e. zero
        g = torch.zeros_like(p) if g is None else g
        w = torch.zeros_like(p) if w is None else w
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-10)

    # fewer bytes saved for backward: the inactive ops' internals are not kept
    def saved_bytes(probe: bool) -> int:
        total = [0]

        def pack(t: Tensor) -> Tensor:
            total[0] += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            if probe:
                with probe_gates(GATE_EPS):
                    net.forward_mixed(x, gates())
            else:
                net.forward_mixed(x, gates())
        return total[0]

    assert saved_bytes(True) < 0.8 * saved_bytes(False)
