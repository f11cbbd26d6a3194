"""Gradient/saliency proxies: grad_norm, snip, grasp, fisher, plain, l2_norm.

Per-weight pruning saliencies summed over the network, as Abdelfattah et al.'s zero-cost
proxies (ICLR 2021) and NASLib compute them: every Conv2d/Linear weight (`weight_layers`),
one forward+backward of `loss_fn(model(x), y)` on the whole batch, train mode (BN uses
batch statistics). A weight that gets no gradient (a layer the loss does not reach)
contributes 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from supernas.proxies.base import Batch, model_device_dtype, register_proxy, weight_layers


def _to_model(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """The batch on the model's device, inputs in the model's dtype (labels keep theirs)."""
    device, dtype = model_device_dtype(model)
    x, y = batch
    return x.to(device=device, dtype=dtype), y.to(device)


def _weights(model: nn.Module) -> list[Tensor]:
    """The scored weights, made differentiable (a frozen weight is still scored)."""
    weights = [m.weight for m in weight_layers(model)]
    for w in weights:
        w.requires_grad_(True)
    return weights


def _loss_grads(
    model: nn.Module, batch: Batch, loss_fn: nn.Module
) -> list[tuple[Tensor, Tensor | None]]:
    """(W, dL/dW or None) for each weight layer after one train-mode forward+backward."""
    model.train()
    model.zero_grad(set_to_none=True)
    weights = _weights(model)
    x, y = _to_model(model, batch)
    loss = loss_fn(model(x), y)
    if not loss.requires_grad:  # nothing trainable reaches the loss
        return [(w, None) for w in weights]
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return list(zip(weights, grads, strict=True))


def _total(terms: list[Tensor]) -> float:
    return float(torch.stack(terms).detach().sum()) if terms else 0.0


@register_proxy("grad_norm")
def grad_norm(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Sum over weight layers of ||dL/dW||_2 (Abdelfattah et al., ICLR 2021)."""
    return _total([g.norm() for _, g in _loss_grads(model, batch, loss_fn) if g is not None])


@register_proxy("snip")
def snip(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Sum of |dL/dW * W|: SNIP's connection sensitivity (Lee et al., ICLR 2019).

    SNIP differentiates the loss w.r.t. a mask c on W*c at c = 1, which is dL/dW * W.
    """
    pairs = _loss_grads(model, batch, loss_fn)
    return _total([(g * w).abs().sum() for w, g in pairs if g is not None])


@register_proxy("plain")
def plain(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Sum of dL/dW * W, signed (Abdelfattah et al., ICLR 2021; Mozer & Smolensky 1989)."""
    pairs = _loss_grads(model, batch, loss_fn)
    return _total([(g * w).sum() for w, g in pairs if g is not None])


@register_proxy("l2_norm")
def l2_norm(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Sum over weight layers of ||W||_2; ignores the batch (Abdelfattah et al., ICLR 2021)."""
    with torch.no_grad():
        return _total([m.weight.norm() for m in weight_layers(model)])


@register_proxy("grasp")
def grasp(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Sum of -W * Hg over weight layers: GraSP (Wang et al., ICLR 2020), zero-cost form.

    g = dL/dW, then Hg = d(sum g_detached * dL/dW)/dW by double backward, on the whole
    batch (Abdelfattah et al. drop GraSP's two-half split, which only saved GPU memory,
    and its temperature: T = 1). The sign is theirs: -W*Hg, higher = better.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    weights = _weights(model)
    x, y = _to_model(model, batch)
    loss = loss_fn(model(x), y)
    if not loss.requires_grad:
        return 0.0
    # The zero-cost code runs the batch twice (g without a graph, then dL/dW with one); on
    # the same batch both passes give the same g, so one pass with a graph serves both.
    g = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    # z = g_detached . g, differentiated: dz/dW = H g (g_detached is a constant).
    z = [(t.detach() * t).sum() for t in g if t is not None and t.requires_grad]
    if not z:
        return 0.0
    hg = torch.autograd.grad(torch.stack(z).sum(), weights, allow_unused=True)
    return _total(
        [(-w.detach() * h).sum() for w, h in zip(weights, hg, strict=True) if h is not None]
    )


@register_proxy("fisher")
def fisher(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Fisher channel saliency (Theis et al., 2018), summed as Abdelfattah et al. (ICLR 2021).

    For each weight layer's output a (N, C, *spatial) and each channel k:
    Delta_k = 0.5 * mean_n (sum_spatial a * dL/da)^2, in one train-mode forward+backward.
    Why the fan-in factor: the zero-cost code broadcasts each channel's Delta_k to every
    weight of that output channel before summing over parameters, so the network score is
    sum over layers of (W.numel() / C) * sum_k Delta_k; we keep that, to match its numbers.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    layers = list(weight_layers(model))
    totals: list[Tensor] = []

    def on_forward(layer: nn.Module, _inp: tuple, out: Tensor) -> None:
        if not (isinstance(out, Tensor) and out.requires_grad):
            return
        # A copy: a following in-place op (ReLU(inplace=True)) would overwrite `out`, and
        # the tensor hook below still gets dL/da for the value before that op.
        act = out.detach().clone()
        fan_in = layer.weight.numel() // layer.weight.shape[0]

        def on_grad(grad: Tensor) -> None:
            prod = act * grad.detach()
            if isinstance(layer, nn.Linear):  # channels last: (N, ..., C)
                g_nk = prod.flatten(1, -2).sum(1) if prod.dim() > 2 else prod
            else:  # conv: (N, C, *spatial)
                g_nk = prod.flatten(2).sum(2)
            totals.append(0.5 * g_nk.pow(2).mean(0).sum() * fan_in)

        out.register_hook(on_grad)

    handles = [m.register_forward_hook(on_forward) for m in layers]
    try:
        x, y = _to_model(model, batch)
        loss = loss_fn(model(x), y)
        if loss.requires_grad:
            loss.backward()
    finally:
        for h in handles:
            h.remove()
    return _total(totals)
