"""Latency: ONNX export checked against torch, LUT coverage and sums, cost metric, CLI.

No timing assertions here (the machine is shared): how good the LUT is lives in
benchmarks/latency_lut.py. Timings use few repeats to keep the suite fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from typer.testing import CliRunner

from supernas.cli import app
from supernas.errors import SupernasError
from supernas.hardware import (
    ArchCost,
    LatencyLUT,
    build_lut,
    decompose,
    export_onnx,
    measure_latency,
    parse_constraint,
    validate_lut,
)
from supernas.hardware import latency as latency_mod
from supernas.space import get_space
from supernas.supernet import build_network

TINY = {
    "resnet18": ({"base_width": 4}, (3, 16, 16)),
    "nb201": ({"C": 4, "N": 1}, (3, 8, 8)),
    "mobilenetv2": ({"base_width": 4}, (3, 8, 8)),
    "vit": ({"embed_dim": 8, "depth": 2, "image_size": 8}, (3, 8, 8)),
}
FAST = {"warmup": 0, "repeats": 2, "rounds": 1}
NB201_ARCH = (
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|"
)
runner = CliRunner()


def tiny(name: str):
    opts, shape = TINY[name]
    return get_space(name, **opts), shape


@pytest.fixture(scope="module")
def luts() -> dict[str, LatencyLUT]:
    out = {}
    for name in TINY:
        space, shape = tiny(name)
        out[name] = build_lut(space, shape, calibration=2, seed=0, **FAST)
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_export_onnx_matches_torch(name: str, tmp_path: Path) -> None:
    space, shape = tiny(name)
    torch.manual_seed(0)
    net = build_network(space, space.sample(1)).eval()
    path = export_onnx(net, shape, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    x = torch.randn(1, *shape)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert net.training is False


def test_export_onnx_refuses_a_wrong_graph(tmp_path: Path, monkeypatch) -> None:
    space, shape = tiny("nb201")
    net = build_network(space, space.sample(0))
    # a valid graph that runs but computes something else (the input, not the logits)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, *shape])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, *shape])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    wrong = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    wrong.ir_version = 8
    monkeypatch.setattr(latency_mod, "onnx_bytes", lambda m, s: wrong.SerializeToString())
    with pytest.raises(SupernasError, match="differs from torch"):
        export_onnx(net, shape, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


@pytest.mark.parametrize("backend", ["eager", "onnx"])
def test_measure_latency_is_positive_and_finite(backend: str) -> None:
    shape = (3, 8, 8)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    res = measure_latency(net, shape, backend=backend, warmup=1, repeats=3)
    assert res.repeats == 3
    for v in (res.median_ms, res.p10, res.p90):
        assert math.isfinite(v) and v > 0
    assert res.p10 <= res.median_ms <= res.p90
    assert res.clock == "cpu"  # one thread: thread CPU time, immune to other jobs' load
    with pytest.raises(SupernasError, match="backend"):
        measure_latency(torch.nn.Identity(), shape, backend="tpu")


def test_clock_choice() -> None:
    net = torch.nn.Conv2d(3, 4, 3)
    assert measure_latency(net, (3, 8, 8), repeats=2, clock="wall").clock == "wall"
    assert measure_latency(net, (3, 8, 8), repeats=2, threads=2).clock == "wall"
    with pytest.raises(SupernasError, match="threads=1"):
        measure_latency(net, (3, 8, 8), clock="cpu", threads=2)
    with pytest.raises(SupernasError, match="unknown clock"):
        measure_latency(net, (3, 8, 8), clock="sundial")


def test_lut_op_counts(luts: dict[str, LatencyLUT]) -> None:
    # resnet18: stem + 9 (kernel x width) per block, blocks 0 and 1 identical, + fc
    assert len(luts["resnet18"].entries) == 1 + 9 * 7 + 1
    # nb201: stem + 5 ops x 3 stages + 2 reduction blocks + last BN-ReLU + classifier
    assert len(luts["nb201"].entries) == 1 + 5 * 3 + 2 + 1 + 1
    assert len(luts["nb201"].positions) == 1 + 6 * 3 + 2 + 1 + 1


@pytest.mark.parametrize("name", list(TINY))
def test_lut_covers_every_op_of_sampled_archs(name: str, luts: dict[str, LatencyLUT]) -> None:
    space, shape = tiny(name)
    lut = luts[name]
    rng = np.random.default_rng(7)
    for _ in range(25):
        arch = space.sample(rng)
        keys = [c.key for c in decompose(build_network(space, arch), shape)]
        assert keys == lut.keys(arch)
        assert set(keys) <= set(lut.entries)
        assert math.isfinite(lut.predict(arch))
    for entry in lut.entries.values():
        assert entry["median_ms"] > 0 and entry["repeats"] == FAST["repeats"]


@pytest.mark.parametrize("name", list(TINY))
def test_lut_json_round_trip(name: str, luts: dict[str, LatencyLUT], tmp_path: Path) -> None:
    space, _ = tiny(name)
    path = luts[name].save(tmp_path / "lut.json")
    back = LatencyLUT.load(path)
    assert back.to_json() == luts[name].to_json()
    for seed in range(5):
        assert back.predict(space.sample(seed)) == luts[name].predict(space.sample(seed))
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(SupernasError, match="not a latency LUT"):
        LatencyLUT.load(tmp_path / "bad.json")


def test_nb201_prediction_is_sum_of_entries_by_hand(luts: dict[str, LatencyLUT]) -> None:
    """Give each kind of op a known latency and count the arch's ops by hand."""
    lut = LatencyLUT.from_json(luts["nb201"].to_json())
    ms = {
        "Zero": 1e-3,
        "Identity": 1e-2,
        "AvgPool2d": 1e-1,
        "Sequential": 10.0,
        "ResNetBasicblock": 100.0,
        "Linear": 1000.0,
    }
    for key, entry in lut.entries.items():
        kind = key.split("[")[0]
        if kind == "ReLUConvBN":
            entry["median_ms"] = 3.0 if "kernel_size=(3, 3)" in entry["module"] else 1.0
        else:
            entry["median_ms"] = ms[kind]
    lut.overhead_ms = 0.25
    # per cell: conv3x3 x2, none, skip, avgpool, conv1x1; 3 cells (N=1, 3 stages)
    cell = 2 * 3.0 + 1e-3 + 1e-2 + 1e-1 + 1.0
    # stem and lastact are Sequentials, 2 reduction blocks, the classifier
    want = 3 * cell + 2 * 10.0 + 2 * 100.0 + 1000.0 + 0.25
    assert lut.predict(NB201_ARCH) == pytest.approx(want)
    assert lut.op_sum(NB201_ARCH) == pytest.approx(want - 0.25)


def test_resnet18_prediction_is_sum_of_block_entries(luts: dict[str, LatencyLUT]) -> None:
    lut = luts["resnet18"]
    arch = "k3w1-k5w0.5-k7w2-k3w0.5-k5w1-k7w1-k3w2-k5w2"
    keys = lut.keys(arch)
    assert [k.split("[")[0] for k in keys] == ["Sequential", *["BasicBlock"] * 8, "Linear"]
    kernels = [3, 5, 7, 3, 5, 7, 3, 5]
    for key, k in zip(keys[1:-1], kernels, strict=True):
        assert f"kernel_size=({k}, {k})" in lut.entries[key]["module"]
    want = sum(lut.entries[k]["median_ms"] for k in keys) + lut.overhead_ms
    assert lut.predict(arch) == pytest.approx(want)


def test_lut_for_listed_archs_only(tmp_path: Path) -> None:
    space, shape = tiny("nb201")
    arch = space.parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    lut = build_lut(space, shape, archs=[arch], calibration=0, **FAST)
    assert lut.overhead_ms == 0.0
    assert lut.predict(arch) == pytest.approx(lut.op_sum(arch))
    assert len(lut.entries) == 1 + 1 * 3 + 2 + 1 + 1  # only 'none' among the edge ops
    with pytest.raises(SupernasError, match="lacks"):
        lut.predict(NB201_ARCH)


def test_validate_lut_reports_rank_and_error(luts: dict[str, LatencyLUT]) -> None:
    space, _ = tiny("nb201")
    archs = [space.sample(s) for s in range(4)]
    res = validate_lut(luts["nb201"], space, archs, **FAST)
    assert res["n"] == 4 and -1 <= res["spearman"] <= 1 and res["mape"] >= 0
    with pytest.raises(SupernasError, match="LUT is for"):
        validate_lut(luts["nb201"], get_space("nb201", C=8, N=1), archs, **FAST)


def test_arch_cost_latency_metric_and_constraint(
    luts: dict[str, LatencyLUT], tmp_path: Path
) -> None:
    space, shape = tiny("nb201")
    lut = luts["nb201"]
    cost = ArchCost(space, shape, lut=lut)
    arch = space.parse(NB201_ARCH)
    ms = cost.metric("latency_ms", arch)
    assert ms == lut.predict(arch) == cost.latency_ms(arch)
    assert parse_constraint(f"latency_ms<={ms}").check(cost, arch)
    assert not parse_constraint(f"latency_ms<{ms}").check(cost, arch)
    assert cost.metric("params", arch) == ArchCost(space, shape).params(arch)
    assert ArchCost(space, shape, lut=lut.save(tmp_path / "l.json")).latency_ms(arch) == ms
    with pytest.raises(SupernasError, match="lookup table"):
        ArchCost(space, shape).metric("latency_ms", arch)
    with pytest.raises(SupernasError, match="input shape"):
        ArchCost(space, (3, 16, 16), lut=lut)
    with pytest.raises(SupernasError, match="LUT is for"):
        ArchCost(get_space("nb201", C=4, N=2), shape, lut=lut)


def invoke(*args: str):
    return runner.invoke(app, ["hardware", *args])


def test_cli_latency_lut_validate(tmp_path: Path) -> None:
    space_args = [
        "--space",
        "nb201",
        "--space-opt",
        "C=4",
        "--space-opt",
        "N=1",
        "--input-shape",
        "3,8,8",
    ]
    r = invoke("latency", *space_args, "--arch", NB201_ARCH, "--repeats", "3", "--warmup", "1")
    assert r.exit_code == 0, r.output
    assert " ms" in r.output
    out = tmp_path / "lut.json"
    r = invoke(
        "lut",
        *space_args,
        "--out",
        str(out),
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--calibration",
        "2",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    assert LatencyLUT.load(out).space == "nb201"
    assert LatencyLUT.load(out).clock == "cpu"
    r = invoke(
        "validate",
        "--lut",
        str(out),
        "--archs",
        "3",
        "--repeats",
        "2",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    assert "spearman" in r.output and "MAPE" in r.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["latency", "--space", "nb201", "--arch", NB201_ARCH, "--backend", "tpu"], "backend"),
        (["latency", "--space", "nb201", "--arch", "nope"], "arch string"),
        (
            ["latency", "--space", "nb201", "--arch", NB201_ARCH, "--input-shape", "3,x"],
            "input-shape",
        ),
        (["latency", "--space", "nosuch", "--arch", "x"], "nosuch"),
        (["validate", "--lut", "missing.json"], "not found"),
        (["latency", "--space", "nb201", "--arch", NB201_ARCH, "--clock", "x"], "clock"),
    ],
)
def test_cli_bad_input_exits_2(args: list[str], needle: str) -> None:
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and needle in r.output
    assert "Traceback" not in r.output
