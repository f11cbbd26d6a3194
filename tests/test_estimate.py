"""Estimators against oracles: extracted models, hand-computed rank statistics."""

from __future__ import annotations

import math

import pytest
import torch

from supernas import (
    ParamsEstimator,
    Recipe,
    SupernetEstimator,
    TrainFromScratch,
    build_network,
    build_supernet,
    count_params,
    get_space,
    kendall_tau,
    rank_report,
    recalibrate_bn,
    spearman_rho,
    top_k_overlap,
)
from supernas.data import Dataset
from supernas.train import evaluate


@pytest.fixture(scope="module")
def trained(digits: Dataset):
    torch.manual_seed(0)
    from supernas import SPOSTrainer

    space = get_space("resnet18", base_width=4, in_channels=1, num_classes=10)
    net = build_supernet(space)
    SPOSTrainer(Recipe(epochs=2), seed=0).fit(net, digits)
    return net


def test_supernet_estimate_equals_recalibrated_extracted_model(trained, digits: Dataset) -> None:
    arch = trained.space.sample(5)
    est = SupernetEstimator(trained, digits, recal_batches=3, seed=11)
    score = est.score([arch])[0]
    model = trained.extract(arch)
    gen = torch.Generator().manual_seed(11)
    recalibrate_bn(model, digits.batches("train", 128, shuffle=True, generator=gen, limit=3))
    model.eval()
    acc, _ = evaluate(model, digits.batches("val", 512))
    assert score == pytest.approx(acc, abs=1 / len(digits.x_val) + 1e-9)


def test_scoring_leaves_the_supernet_unchanged(trained, digits: Dataset) -> None:
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    SupernetEstimator(trained, digits, recal_batches=2).score(
        [trained.space.sample(s) for s in range(3)]
    )
    for k, v in trained.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_train_from_scratch_is_deterministic_for_a_seed(digits: Dataset) -> None:
    space = get_space("resnet18", base_width=2, in_channels=1, num_classes=10)
    arch = space.sample(0)
    a = TrainFromScratch(space, digits, Recipe(epochs=1), seed=3).score([arch])
    b = TrainFromScratch(space, digits, Recipe(epochs=1), seed=3).score([arch])
    assert a == b and 0 <= a[0] <= 1


def test_params_estimator_counts_the_standalone(digits: Dataset) -> None:
    space = get_space("nb201", C=4, N=1, in_channels=1)
    archs = [space.sample(s) for s in range(3)]
    got = ParamsEstimator(space, digits.input_shape).score(archs)
    assert got == [float(count_params(build_network(space, a))) for a in archs]


def test_rank_metrics_match_hand_computed_values() -> None:
    # one discordant pair of three: tau = (2 - 1) / 3; rho = 1 - 6*2/(3*8) = 0.5
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert spearman_rho([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert top_k_overlap([4, 3, 2, 1], [4, 1, 3, 2], 2) == 0.5
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert rank_report([1, float("nan"), 3], [1, 2, 3])["n"] == 2


def test_val_curve_ends_at_the_trained_models_val_accuracy(digits: Dataset) -> None:
    from supernas import train_arch
    from supernas.estimate import val_curve

    space = get_space("nb201", C=2, N=1, in_channels=1)
    arch = space.sample(1)
    curve = list(val_curve(space, arch, digits, Recipe(epochs=3), seed=2))
    _, res = train_arch(space, arch, digits, Recipe(epochs=3), seed=2)
    assert len(curve) == 3 and curve[-1] == pytest.approx(res.val_accuracy)
