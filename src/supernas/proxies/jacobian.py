"""Input-Jacobian correlation proxies: jacov (NASWOT v1) and epe_nas.

Both take J = d(sum of outputs)/dx, one row per example, from a single backward of
model(x).sum() w.r.t. x over the whole batch, in train mode, as the authors' code does.
(Train-mode BN couples the examples through its batch statistics, so a row is not exactly
that example's own Jacobian; the references measure this batched gradient, so do we.)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from supernas.proxies.base import Batch, model_device_dtype, register_proxy

#: The references' regulariser of log/1/x near zero eigenvalues or correlations.
K = 1e-5


def _input_jacobian(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor, int]:
    """(J as (N, D) float64 on the CPU, labels, number of outputs per example)."""
    device, dtype = model_device_dtype(model)
    model.train()
    model.zero_grad(set_to_none=True)
    x = batch[0].to(device=device, dtype=dtype).detach().requires_grad_(True)
    out = model(x)
    n_out = int(out[0].numel())
    if out.requires_grad:
        (jac,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    else:
        jac = None
    if jac is None:  # the output ignores the input: a zero Jacobian
        jac = torch.zeros_like(x)
    return jac.detach().flatten(1).to("cpu", torch.float64), batch[1].detach().cpu(), n_out


def _corrcoef(j: Tensor) -> Tensor | None:
    """Pearson correlation of the rows of j; None when a row is constant (undefined)."""
    if j.shape[1] < 2 or bool((j == j[:, :1]).all(1).any()):
        return None
    c = j - j.mean(1, keepdim=True)
    c = c / c.norm(dim=1, keepdim=True)
    return (c @ c.T).clamp(-1.0, 1.0)


@register_proxy("jacov")
def jacov(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """-sum(log(v + k) + 1/(v + k)) over eigenvalues v of corrcoef(J), k = 1e-5.

    Mellor et al., "Neural Architecture Search without Training", arXiv 2006.04647v1, 2020.
    NaN when an example's Jacobian is constant (its correlation is undefined).
    """
    jac, _, _ = _input_jacobian(model, batch)
    corr = _corrcoef(jac)
    if corr is None:
        return math.nan
    v = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(v + K) + 1.0 / (v + K)).sum())


@register_proxy("epe_nas")
def epe_nas(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Per-class Jacobian correlation (Lopes et al., "EPE-NAS", ICANN 2021).

    For each class c in the batch: s_c = sum_ij log(|corrcoef(J_c)_ij| + k), k = 1e-5.
    With at most 100 classes (the model's output width, as NASLib) the score is
    sum_c |s_c|; with more, s_c is divided by the class's example count and the score is
    sum_{c,c'} |s_c - s_c'| / (number of classes scored). A class with one example has
    correlation matrix [1] (s_c = log(1 + k)) with <= 100 classes and is skipped with more,
    as in the authors' code. NaN when a Jacobian is constant or no class could be scored.
    """
    jac, labels, n_classes = _input_jacobian(model, batch)
    if labels.dim() == 2:  # one-hot or soft targets
        labels = labels.argmax(1)
    scores: list[float] = []
    for c in torch.unique(labels):
        rows = jac[labels == c]
        if len(rows) == 1 and n_classes > 100:
            continue
        corr = _corrcoef(rows)
        if corr is None:
            return math.nan
        s = float(torch.log(corr.abs() + K).sum())
        scores.append(s / len(rows) if n_classes > 100 else s)
    if not scores:
        return math.nan
    s_t = torch.tensor(scores, dtype=torch.float64)
    if n_classes <= 100:
        return float(s_t.abs().sum())
    return float((s_t[:, None] - s_t[None, :]).abs().sum() / len(scores))
