"""docs/tutorial.md runs as written: its files, its Python blocks and its supernas commands."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import supernas as sn
from supernas.cli import app

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.M | re.S)


def blocks() -> list[tuple[str, str, str]]:
    """(language, info after it, code) of each fenced block, in page order."""
    return [(m[1], m[2].strip(), m[3]) for m in FENCE.finditer(TUTORIAL.read_text())]


def commands(code: str) -> list[list[str]]:
    """The `supernas ...` lines of a bash block, as argument lists without `supernas`."""
    lines = code.replace("\\\n", " ").splitlines()
    out = [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]
    assert all(args[0] == "supernas" for args in out), out
    return [args[1:] for args in out]


def test_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = blocks()
    assert [lang for lang, *_ in found].count("python") >= 5
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the tutorial puts "." on it
    monkeypatch.delitem(sys.modules, "tinycnn", raising=False)
    namespace: dict[str, object] = {"__name__": "tutorial"}
    runner = CliRunner()
    ran = []
    try:
        for lang, info, code in found:
            if info.startswith("file="):
                (tmp_path / info.removeprefix("file=")).write_text(code)
            elif lang == "python":
                exec(compile(code, f"{TUTORIAL}:{lang}", "exec"), namespace)
            elif lang == "bash":
                for args in commands(code):
                    res = runner.invoke(app, args)
                    assert res.exit_code == 0, f"supernas {shlex.join(args)}\n{res.output}"
                    ran.append(args[0])
    finally:
        sys.modules.pop("tinycnn", None)
    assert ran == ["run", "export"]
    assert (tmp_path / "runs/tinycnn/report.md").is_file()
    assert (tmp_path / "runs/tinycnn/export/model.ts.pt").is_file()
    assert (tmp_path / "tinycnn_best.pt").is_file()
    assert namespace["space"].size == 18  # type: ignore[attr-defined]


def tutorial_model() -> type:
    """The TinyCNN class of the tutorial's tinycnn.py block."""
    code = next(code for _, info, code in blocks() if info == "file=tinycnn.py")
    namespace: dict[str, object] = {"__name__": "tinycnn_tutorial"}
    exec(compile(code, f"{TUTORIAL}:tinycnn.py", "exec"), namespace)
    return namespace["TinyCNN"]  # type: ignore[return-value]


def supernet_key(sup: sn.nn.ModelSupernet, key: str, arch: sn.Arch) -> str:
    """The supernet's name of an extracted parameter: each LayerChoice adds its candidate."""
    chosen = sup.space.as_dict(arch)
    module, parts = sup.model, ["model"]
    for token in key.split(".")[:-1]:
        module = getattr(module, token)
        parts.append(token)
        if isinstance(module, sn.LayerChoice):
            name = module.name or ".".join(parts[1:])
            module = module.candidates[chosen[name]]
            parts += ["candidates", str(chosen[name])]
    return ".".join([*parts, key.split(".")[-1]])


def window(full: torch.Tensor, part: torch.Tensor) -> tuple[slice, ...]:
    """Where `part` sits in `full`: leading channels; the centre of a conv's kernel."""
    out = []
    for d, (big, small) in enumerate(zip(full.shape, part.shape, strict=True)):
        start = (big - small) // 2 if full.dim() == 4 and d >= 2 else 0
        out.append(slice(start, start + small))
    return tuple(out)


def test_tutorial_model_passes_the_supernet_equivalence_test() -> None:
    """As tests/test_supernet.py for the built-in spaces: eval outputs, and in train mode the
    same loss, each standalone grad the slice of the supernet grad, nothing off the path."""
    torch.manual_seed(0)
    sup = sn.as_supernet(tutorial_model()(), "tutorial_tinycnn").train()
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6) % 10
    for arch in sup.space.enumerate():
        sup.zero_grad(set_to_none=True)
        net = sup.extract(arch)
        loss_sup = F.cross_entropy(sup(x, arch), y)
        loss_net = F.cross_entropy(net(x), y)
        torch.testing.assert_close(loss_net, loss_sup, atol=1e-5, rtol=1e-5)
        loss_sup.backward()
        loss_net.backward()
        params = dict(sup.named_parameters())
        mapped = {supernet_key(sup, k, arch): p for k, p in net.named_parameters()}
        assert set(mapped) <= set(params)
        for key, p in params.items():
            if key not in mapped:
                assert p.grad is None, f"{key} is off the path of {arch} but got a gradient"
                continue
            g = mapped[key].grad
            where = window(p.grad, g)
            torch.testing.assert_close(g, p.grad[where], atol=1e-5, rtol=1e-4)
            rest = p.grad.clone()
            rest[where] = 0
            assert not rest.any(), f"{key}: gradient outside the chosen slice"
    sup.eval()
    for arch in sup.space.enumerate():
        with torch.no_grad():
            torch.testing.assert_close(sup.extract(arch)(x), sup(x, arch), atol=1e-5, rtol=1e-5)
