"""`supernas export` on a tiny finished run, and the run's trust seeds / noise ceiling."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from supernas import load_data, load_model
from supernas.bench import kendall_tau
from supernas.cli import app
from supernas.config import RunConfig
from supernas.errors import SupernasError
from supernas.export import export_run
from supernas.pipeline import noise_ceiling
from supernas.report.markdown import ceiling_text

runner = CliRunner()
TINY = [
    "--data", "digits", "--epochs", "1", "--budget", "4", "--top-k", "1", "--trust-n", "3",
    "--retrain-epochs", "1", "--max-train", "200", "--max-val", "100",
    "--space-opt", "base_width=4", "--quiet",
]  # fmt: skip


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    r = invoke("run", "--out", str(out), *TINY)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_data("digits").x_test[:16].float()


def test_a_run_trains_each_trust_arch_with_two_seeds_and_reports_the_ceiling(run_dir: Path):
    trust = json.loads((run_dir / "trust.json").read_text())
    recs = trust["records"]
    assert trust["seeds"] == 2 and all(len(r["seed_test_accuracies"]) == 2 for r in recs)
    assert all(r["test_accuracy"] == r["seed_test_accuracies"][0] for r in recs)
    want = kendall_tau([r["seed_test_accuracies"][0] for r in recs],
                       [r["seed_test_accuracies"][1] for r in recs])  # fmt: skip
    got = trust["noise_ceiling_tau"]
    assert got == pytest.approx(want, nan_ok=True)
    res = json.loads((run_dir / "result.json").read_text())
    assert res["trust"]["noise_ceiling_tau"] == pytest.approx(want, nan_ok=True)
    assert "Noise ceiling" in (run_dir / "report.md").read_text()
    assert (run_dir / "report.html").is_file() and (run_dir / "best_arch.png").is_file()
    assert "noise ceiling" in (run_dir / "log.txt").read_text()


def test_a_trust_stage_killed_between_seeds_resumes_to_the_same_numbers(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(run_dir, out, ignore=shutil.ignore_patterns("export"))
    full = json.loads((out / "trust.json").read_text())
    half = {"done": False, "seconds": 1.0, "records": json.loads(json.dumps(full["records"]))}
    half["records"][-1]["seed_test_accuracies"].pop()
    half["records"][-1]["seed_val_accuracies"].pop()
    (out / "trust.json").write_text(json.dumps(half))
    (out / "result.json").unlink()
    r = invoke("run", "--out", str(out), "--resume", "--quiet")
    assert r.exit_code == 0, r.output
    again = json.loads((out / "trust.json").read_text())
    assert [r["seed_test_accuracies"] for r in again["records"]] == [
        r["seed_test_accuracies"] for r in full["records"]
    ]
    assert again["noise_ceiling_tau"] == pytest.approx(full["noise_ceiling_tau"], nan_ok=True)


def test_one_trust_seed_leaves_the_ceiling_unmeasured() -> None:
    assert math.isnan(noise_ceiling([[0.9], [0.8], [0.7]]))
    assert noise_ceiling([[0.9, 0.8], [0.8, 0.9], [0.7, 0.6]]) == pytest.approx(1 / 3)
    text = ceiling_text({"seeds": 1, "noise_ceiling_tau": math.nan, "kendall_tau": 0.2})
    assert "not measured" in text and "--trust-seeds 2" in text
    assert "constant" in ceiling_text({"seeds": 2, "noise_ceiling_tau": math.nan})
    noisy = ceiling_text({"seeds": 2, "noise_ceiling_tau": -0.32, "kendall_tau": 0.07})
    assert "-0.320" in noisy and "barely agree" in noisy
    with pytest.raises(SupernasError, match="trust_seeds must be at least 1"):
        RunConfig(trust_seeds=0)
    assert RunConfig.from_dict({"run": {"trust_seeds": 3}}).trust_seeds == 3


def test_state_dict_export_rebuilds_with_build_network(
    run_dir: Path, tmp_path: Path, images: torch.Tensor
) -> None:
    from supernas import Arch, build_network, get_space

    path = tmp_path / "net.pt"
    r = invoke("export", str(run_dir), "--format", "state_dict", "--out", str(path))
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "net.arch.json").read_text())
    model = build_network(get_space(info["space"], **info["space_options"]), Arch.from_json(info))
    model.load_state_dict(torch.load(path, weights_only=True))
    with torch.inference_mode():
        assert torch.equal(model.eval()(images), load_model(run_dir)(images))
    assert info["input_shape"] == list(images.shape[1:])


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_reloads_without_supernas_classes(
    run_dir: Path, tmp_path: Path, images: torch.Tensor
) -> None:
    res = export_run(run_dir, "torchscript", tmp_path / "net.ts.pt")
    assert res.batch == "8 test images" and res.max_abs_diff < 1e-5
    loaded = torch.jit.load(str(res.path))
    with torch.inference_mode():
        torch.testing.assert_close(loaded(images), load_model(run_dir)(images))


def test_onnx_export_runs_in_onnxruntime_allclose_and_prints_latency(
    run_dir: Path, images: torch.Tensor
) -> None:
    import onnx
    import onnxruntime as ort

    r = invoke("export", str(run_dir), "--format", "onnx", "--repeats", "5")
    assert r.exit_code == 0, r.output
    path = run_dir / "export" / "model.onnx"  # the default --out
    assert "ONNX Runtime" in r.output and "torch eager" in r.output and " ms" in r.output
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    got = np.concatenate([sess.run(None, {name: x[None].numpy()})[0] for x in images])
    with torch.inference_mode():
        want = load_model(run_dir)(images).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


def test_export_errors_are_one_clear_line(run_dir: Path, tmp_path: Path) -> None:
    r = invoke("export", str(run_dir), "--format", "pickle")
    assert r.exit_code == 2
    assert "unknown export format 'pickle'; valid: state_dict, torchscript, onnx" in r.output
    r = invoke("export", str(tmp_path))
    assert r.exit_code == 2 and "not a `supernas run` folder" in r.output
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run_dir / "config.toml", unfinished)
    r = invoke("export", str(unfinished))
    assert r.exit_code == 2 and "unfinished" in r.output
    shutil.copy(run_dir / "best_arch.json", unfinished)
    r = invoke("export", str(unfinished))
    assert r.exit_code == 2 and "best_model.pt not found" in r.output
    (unfinished / "best_model.pt").write_bytes(b"not a checkpoint")
    r = invoke("export", str(unfinished), "--format", "state_dict")
    assert r.exit_code == 2 and "cannot load" in r.output
    r = invoke("export", str(tmp_path / "nowhere"))
    assert r.exit_code == 2 and "run folder not found" in r.output
