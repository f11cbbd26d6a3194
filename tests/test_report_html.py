"""report.html: self-contained (every plot a data URI), the key numbers shown, and it renders.

The folders here are written directly (no training) so the tests take seconds; the run that
writes report.html at its end is covered in test_export.py.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from supernas.cli import app
from supernas.errors import SupernasError
from supernas.report import refresh_report, render_html, write_html_report
from supernas.report.plots import arch_diagram
from supernas.search import SearchResult
from supernas.space import Choice, SearchSpace, get_space

BEST = "k5w2-k3w0.5-k7w1-k3w0.5-k7w0.5-k3w2-k7w1-k3w2"
DATA_URI = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)">')


def fake_run(out: Path, seeds: int = 2) -> Path:
    """A finished run folder's JSON files, as `supernas run` writes them."""
    space = get_space("resnet18", base_width=4, in_channels=1, num_classes=10)
    archs = [space.sample(i) for i in range(6)]
    rng = np.random.default_rng(0)
    trials = [
        {"step": i, "arch": a.to_json(), "value": float(v)}
        for i, (a, v) in enumerate(zip(archs, rng.uniform(0.8, 0.95, 6), strict=True))
    ]
    accs = [[0.91, 0.93], [0.95, 0.94], [0.89, 0.90], [0.97, 0.96]]
    recs = [
        {
            "arch": str(a),
            "estimate": 0.8 + 0.03 * i,
            "val_accuracy": acc[0],
            "test_accuracy": acc[0],
            **({"seed_test_accuracies": acc[:seeds]} if seeds > 1 else {}),
        }
        for i, (a, acc) in enumerate(zip(archs, accs, strict=False))
    ]
    ceiling = 2 / 3 if seeds > 1 else math.nan
    trust = {"done": True, "records": recs, "seconds": 3.0, "kendall_tau": 0.333,
             "spearman_rho": 0.4, "n": 4, "truth_range": [0.89, 0.97],
             "truth_spread_images": 29}  # fmt: skip
    if seeds > 1:
        trust |= {"seeds": seeds, "noise_ceiling_tau": ceiling}
    best = space.parse(BEST)
    result = {
        "space": "resnet18", "space_options": space.options, "dataset": "digits", "seed": 0,
        "best_arch": BEST, "best_estimate": 0.9312, "best_val_accuracy": 0.9688,
        "best_test_accuracy": 0.9721, "best_params": 123456, "best_flops": 7890123,
        "top_k": [{"rank": 0, "arch": BEST, "estimate": 0.9312, "val_accuracy": 0.9688,
                   "test_accuracy": 0.9721, "params": 123456, "flops": 7890123}],
        "search": {"strategy": "evolution", "budget": 6, "evaluations": 6, "constraints": []},
        "trust": {k: trust.get(k) for k in ("kendall_tau", "spearman_rho", "n", "truth_range",
                                            "truth_spread_images")},
        "seconds": {"data": 0.1, "train": 10.0, "search": 2.0, "retrain": 4.0, "trust": 3.0,
                    "total": 19.1},
    }  # fmt: skip
    if seeds > 1:
        result["trust"] |= {"seeds": seeds, "noise_ceiling_tau": ceiling}
    out.mkdir(parents=True)
    files = {
        "config.toml": None,
        "result.json": result,
        "trust.json": trust,
        "train.json": {"done": True, "seconds": 10.0, "history": [
            {"epoch": e, "train_loss": 2.0 / e, "train_accuracy": 0.2 * e} for e in (1, 2, 3)]},
        "search.json": {"done": True, "strategy": "evolution", "seconds": 2.0,
                        "result": {"format": SearchResult.FORMAT, "trials": trials}},
        "best_arch.json": {**best.to_json(), "space_options": space.options,
                           "input_shape": [1, 8, 8]},
    }  # fmt: skip
    for name, obj in files.items():
        (out / name).write_text("" if obj is None else json.dumps(obj))
    return out


def images_of(page: str) -> dict[str, Image.Image]:
    imgs = {
        alt: Image.open(io.BytesIO(base64.b64decode(b64))) for alt, b64 in DATA_URI.findall(page)
    }
    for im in imgs.values():
        im.load()  # raises on a broken PNG
    return imgs


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    out = fake_run(tmp_path / "run")
    refresh_report(out)
    return out


def test_report_is_self_contained_with_every_plot_and_the_key_numbers(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    imgs = images_of(page)
    assert set(imgs) == {
        "best arch block diagram",
        "trust scatter",
        "search trajectory",
        "supernet training curve",
    }
    assert all(im.width > 100 and im.height > 50 for im in imgs.values())
    assert page.count("<img") == len(imgs)  # nothing linked from outside the file
    assert "src=" not in DATA_URI.sub("", page)
    for text in (BEST, "97.21 %", "96.88 %", "123,456", "0.333 (n=4)", "0.400", "0.667",
                 "moderate", "Noise ceiling: Kendall tau 0.667", "0.334 below it",
                 "93.00 %"):  # fmt: skip
        assert text in page, text
    assert "Noise ceiling" in (run_dir / "report.md").read_text()


def test_an_old_run_with_one_seed_says_the_ceiling_was_not_measured(tmp_path: Path) -> None:
    out = fake_run(tmp_path / "old", seeds=1)
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    page = (out / "report.html").read_text()
    assert "not measured" in page and "--trust-seeds 2" in page
    assert len(images_of(page)) == 4


def test_a_pareto_front_in_the_folder_is_plotted(run_dir: Path) -> None:
    evaluated = [{"arch": f"a{i}", "estimate": 0.8 + 0.02 * i, "params": 1000 * (i + 1)}
                 for i in range(5)]  # fmt: skip
    (run_dir / "pareto.json").write_text(
        json.dumps({"evaluated": evaluated, "front": evaluated[2:], "minimize": ["params"]})
    )
    assert "Pareto front" in images_of(render_html(run_dir))


def test_a_multi_objective_search_gets_a_pareto_plot(run_dir: Path) -> None:
    search = json.loads((run_dir / "search.json").read_text())
    for i, t in enumerate(search["result"]["trials"]):
        t["value"] = [0.8 + 0.01 * i, -1000.0 * (i % 3 + 1)]
    (run_dir / "search.json").write_text(json.dumps(search))
    assert "Pareto front" in images_of(write_html_report(run_dir).read_text())


def test_a_space_this_process_cannot_build_still_gets_a_diagram(run_dir: Path) -> None:
    info = json.loads((run_dir / "best_arch.json").read_text())
    info["space"] = "someone_elses_model"
    (run_dir / "best_arch.json").write_text(json.dumps(info))
    assert "best arch block diagram" in images_of(render_html(run_dir))


def test_report_refuses_a_folder_without_a_finished_run(tmp_path: Path) -> None:
    with pytest.raises(SupernasError, match="not a `supernas run` folder"):
        refresh_report(tmp_path)
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "run folder not found" in r.output


@pytest.mark.parametrize(
    "space, arch",
    [
        (
            "nb201",
            "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|",
        ),
        ("toy", "depth=3,act=relu"),
    ],
)
def test_arch_diagrams_for_nb201_and_any_other_space(tmp_path: Path, space: str, arch: str) -> None:
    sp = (
        get_space(space)
        if space == "nb201"
        else SearchSpace("toy", [Choice("depth", (2, 3)), Choice("act", ("relu", "gelu"))])
    )
    png = arch_diagram(tmp_path / "a.png", sp, sp.parse(arch))
    im = Image.open(png)
    assert im.width > 200 and np.asarray(im.convert("L")).std() > 10


CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0);
  document.body.setAttribute("data-images", document.images.length);
  document.body.setAttribute("data-broken", broken.length);
});
</script></body>"""


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="chromium not installed: apt-get install chromium"
)
def test_headless_chromium_loads_every_image_and_shows_the_numbers(
    run_dir: Path, tmp_path: Path
) -> None:
    probe = tmp_path / "probe.html"
    probe.write_text((run_dir / "report.html").read_text().replace("</body>", CHECK_IMAGES))
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars"]
    dom = subprocess.run(
        ["chromium", *flags, "--virtual-time-budget=3000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert 'data-images="4"' in dom and 'data-broken="0"' in dom, dom[-500:]
    assert BEST in dom and "97.21 %" in dom and "0.333 (n=4)" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", "--window-size=1100,1400",
         (run_dir / "report.html").as_uri()],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    gray = np.asarray(Image.open(shot).convert("L"))
    assert gray.shape == (1400, 1100) and gray.std() > 10  # not a blank page
