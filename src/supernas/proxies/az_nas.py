"""AZ-NAS: four complementary proxies from one forward and one backward pass, rank-assembled.

Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search",
CVPR 2024. Follows the authors' `compute_az_nas_score.py` (cvlab-yonsei/AZ-NAS): Kaiming
fan-in init, train-mode BN, a standard-Gaussian input of the batch's shape (the authors'
default: `trainloader=None` for AZ-NAS in their NB201 notebook `NB201/tss_general.ipynb`,
`--rand_input True` in `evolution_search_az.py`), features of every stage, and the
non-linear rank aggregation of their `evolution_search_az.py`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import Tensor, nn

from supernas.hardware import count_flops
from supernas.proxies.base import (
    Batch,
    Ensemble,
    model_device_dtype,
    register_ensemble,
    register_proxy,
    relu_modules,
)

COMPONENTS = ("expressivity", "progressivity", "trainability", "complexity")
MEMBERS = tuple(f"az_{c}" for c in COMPONENTS)
_LOG_EPS = 1e-8  # the authors' epsilon inside the entropy's log
_SV_EPS = 1e-6  # the authors' epsilon in 1 / sigma_max


def az_stages(model: nn.Module) -> tuple[list[nn.Module], bool]:
    """The modules whose outputs are AZ-NAS's stage features, and whether to add the input.

    Rule: the children of the first nn.ModuleList in `model.modules()` order (NB201's
    `cells`, ResNet-18's `blocks`), plus the input of the first one to run (NB201's stem
    output, as the authors' `extract_cell_features`); without a ModuleList, every nn.ReLU's
    output (no input feature then: an in-place ReLU overwrites its input).
    """
    for m in model.modules():
        if isinstance(m, nn.ModuleList) and len(m) > 0:
            return list(m), True
    return list(relu_modules(model)), False


def kaiming_fanin_init_(model: nn.Module) -> None:
    """The authors' init: Kaiming-normal (fan_in, ReLU) Conv2d/Linear, zero bias, BN 1/0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def stage_features(model: nn.Module, x: Tensor) -> list[Tensor]:
    """One forward pass; the stage features (see `az_stages`) in execution order."""
    stages, with_input = az_stages(model)
    feats: list[Tensor] = []

    def pre_hook(module: nn.Module, args: tuple) -> None:
        if not feats and args and isinstance(args[0], Tensor):
            feats.append(args[0])

    def hook(module: nn.Module, args: tuple, output: object) -> None:
        if isinstance(output, Tensor) and output.dim() >= 2:
            feats.append(output)

    handles = [s.register_forward_hook(hook) for s in stages]
    if with_input:
        handles += [s.register_forward_pre_hook(pre_hook) for s in stages]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return feats


def feature_entropy(feat: Tensor) -> float:
    """Expressivity of one feature: entropy of the normalised eigenvalues of its channel
    covariance, every (example, position) a sample (isotropic features score highest)."""
    b, c = feat.shape[:2]
    rows = feat.detach().reshape(b, c, -1).transpose(1, 2).reshape(-1, c)
    rows = rows - rows.mean(0, keepdim=True)
    sigma = (rows.T @ rows).double() / rows.shape[0]  # the small c x c part in float64
    # Why clamp: sigma is PSD; its round-off negative eigenvalues would give log(<0) = nan.
    s = torch.linalg.eigvalsh(sigma).clamp_min(0)
    p = s / s.sum()  # all-zero features: 0/0 = nan, undefined
    return float(-(p * torch.log(p + _LOG_EPS)).sum())


def _rademacher_like(t: Tensor) -> Tensor:
    """+-1 with probability 1/2 each (the authors' Bernoulli draw; randint is 4x faster)."""
    return torch.randint(0, 2, t.shape, device=t.device, dtype=t.dtype).mul_(2).sub_(1)


def _stage_trainability(f_in: Tensor, f_out: Tensor) -> float:
    """-s - 1/s + 2 for s the top singular value of the stage Jacobian's estimate (<= 0,
    0 iff s = 1); -inf for an identity stage (the authors' rule)."""
    g_out = _rademacher_like(f_out)
    g_in = None
    if f_out.requires_grad and f_in.requires_grad:
        (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
    if g_in is None:  # f_out ignores f_in: a zero Jacobian
        g_in = torch.zeros_like(f_in)
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    if g_in.dim() == 2:
        g_in, g_out = g_in[..., None, None], g_out[..., None, None]
    if g_in.dim() != 4 or g_out.dim() != 4 or g_in.shape[0] != g_out.shape[0]:
        return math.nan
    (hi, wi), (ho, wo) = g_in.shape[2:], g_out.shape[2:]
    if (hi, wi) != (ho, wo):
        # A downsampling stage: fold each s x s input patch into channels (pixel unshuffle,
        # as the authors), so input and output positions pair up one to one. Why pad: odd
        # sizes (7 -> 4 with padding 1) leave a partial patch; zeros stand in for it.
        stride = -(-hi // ho)
        if hi < ho or -(-wi // wo) != stride:
            return math.nan
        g_in = F.pad(g_in, (0, wo * stride - wi, 0, ho * stride - hi))
        g_in = F.pixel_unshuffle(g_in, stride)
    co = g_out.shape[1]
    ci = g_in.shape[1]
    # g_in = J^T g_out and E[g g^T] = I for Rademacher g, so mat estimates the mean over
    # positions of J_pp^T, each position's (channel x channel) Jacobian onto itself (its
    # patch, after the unshuffle): the stage's gain, as the paper's estimator.
    rows_in = g_in.detach().permute(0, 2, 3, 1).reshape(-1, ci)
    rows_out = g_out.permute(0, 2, 3, 1).reshape(-1, co)
    mat = (rows_in.T @ rows_out).double() / rows_out.shape[0]
    s_max = float(torch.linalg.svdvals(mat).max())
    return -s_max - 1 / (s_max + _SV_EPS) + 2


def az_nas_components(
    model: nn.Module, batch: Batch, loss_fn: nn.Module, *, real_input: bool = False
) -> dict[str, float]:
    """The four AZ-NAS proxies (Lee & Ham, CVPR 2024) from one forward + one backward.

    expressivity: sum over stage features of `feature_entropy`; progressivity: the minimum
    increase of that entropy between consecutive features; trainability: mean over
    consecutive pairs of `_stage_trainability` (Rademacher vector-Jacobian products, one
    backward in all); complexity: FLOPs of one example. Kaiming fan-in re-init, train-mode
    BN, then the input: standard Gaussian of the batch's shape, drawn from the global RNG
    after the init (the authors' order), unless `real_input` (their `--rand_input False`)
    feeds the batch's images. Labels and `loss_fn` are unused. A NaN expressivity,
    progressivity or trainability becomes -inf, as the authors' code (all-zero features).

    Why Gaussian by default: it is what the authors score with. On 100 random NB201 archs,
    Fashion-MNIST batches (grey, repeated to 3 identical channels) instead cut
    progressivity's Spearman vs CIFAR-10 accuracy from ~0.62 to ~0.22 and the aggregate's
    from 0.92 to ~0.80.
    """
    device, dtype = model_device_dtype(model)
    kaiming_fanin_init_(model)
    model.train()
    if real_input:
        x = batch[0].to(device=device, dtype=dtype).detach()
    else:
        x = torch.randn(batch[0].shape, device=device, dtype=dtype)
    # Why requires_grad: a first stage fed the raw input still needs a graph to its input.
    x.requires_grad_(True)
    feats = stage_features(model, x)

    ent = np.array([feature_entropy(f) for f in feats], dtype=float)
    expressivity = float(ent.sum()) if len(ent) else math.nan
    progressivity = float(np.min(np.diff(ent))) if len(ent) > 1 else math.nan
    # Reverse order, as the authors: each pair's backward runs through one stage only.
    scores = [_stage_trainability(feats[i - 1], feats[i]) for i in reversed(range(1, len(feats)))]
    trainability = float(np.mean(scores)) if scores else math.nan
    del feats, x

    out = {
        "expressivity": expressivity,
        "progressivity": progressivity,
        "trainability": trainability,
    }
    out = {k: -math.inf if math.isnan(v) else v for k, v in out.items()}
    out["complexity"] = float(count_flops(model, tuple(batch[0].shape[1:])))
    return out


def _component(key: str):
    def proxy(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
        return az_nas_components(model, batch, loss_fn)[key]

    proxy.__name__ = f"az_{key}"
    proxy.__doc__ = f"AZ-NAS's {key} (Lee & Ham, CVPR 2024); see `az_nas_components`."
    return proxy


az_expressivity = register_proxy("az_expressivity")(_component("expressivity"))
az_progressivity = register_proxy("az_progressivity")(_component("progressivity"))
az_trainability = register_proxy("az_trainability")(_component("trainability"))
az_complexity = register_proxy("az_complexity")(_component("complexity"))


def az_rank_aggregate(scores: np.ndarray) -> np.ndarray:
    """AZ-NAS's non-linear rank aggregation: sum over components of log(rank / n).

    Ranks are ascending over the n archs (the highest score gets rank n), ties share their
    average rank (scipy's `rankdata`, as the authors), so an arch must be good on every
    component: one bad rank drags its log down hard. NaN entries rank lowest (as -inf).
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (n_archs, n_components), got shape {scores.shape}")
    n = scores.shape[0]
    if n == 0:
        return np.zeros(0)
    filled = np.where(np.isnan(scores), -np.inf, scores)
    ranks = rankdata(filled, axis=0)
    return np.log(ranks / n).sum(axis=1)


def _measure(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> dict[str, float]:
    comps = az_nas_components(model, batch, loss_fn)
    return {f"az_{k}": comps[k] for k in COMPONENTS}


register_ensemble(
    "az_nas",
    Ensemble(
        members=MEMBERS,
        combine=az_rank_aggregate,
        measure=_measure,
        doc=(
            "AZ-NAS (Lee & Ham, CVPR 2024): sum over expressivity, progressivity, "
            "trainability and complexity (FLOPs) of log(rank / n) across the compared archs."
        ),
    ),
)
