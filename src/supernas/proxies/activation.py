"""Activation-pattern and feature-correlation proxies: nwot, swap, reg_swap, meco.

All four need one forward pass and no gradient; each follows its authors' code for the
mode (train: BN uses batch statistics), the hooked modules and the edge cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from supernas.proxies.base import Batch, model_device_dtype, register_proxy, relu_modules


def _forward_with_relu_hooks(
    model: nn.Module, x: Tensor, on_relu: Callable[[Tensor], None], *, pre: bool
) -> None:
    """Run `model(x)` without autograd, calling `on_relu` with every nn.ReLU input/output.

    `pre=True` hooks the ReLU's input (a forward pre-hook: ResNet's in-place ReLUs would
    already have overwritten the input a forward hook sees); `pre=False` its output.
    A module called several times fires once per call: each call is one activation layer.
    """
    if pre:
        handles = [
            m.register_forward_pre_hook(lambda _m, a: on_relu(a[0])) for m in relu_modules(model)
        ]
    else:
        handles = [
            m.register_forward_hook(lambda _m, _a, o: on_relu(o)) for m in relu_modules(model)
        ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()


def _prepare(model: nn.Module, x: Tensor) -> Tensor:
    device, dtype = model_device_dtype(model)
    model.train()  # NASWOT, SWAP and MeCo all score the freshly built (train-mode) network
    return x.to(device=device, dtype=dtype)


@register_proxy("nwot")
def nwot(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """log|K_H| of the batch's binary ReLU codes (higher = inputs better separated).

    Mellor et al., "Neural Architecture Search without Training", ICML 2021.
    c_i = [pre-activation > 0] at every nn.ReLU, concatenated (N_A units);
    K_H[i, j] = N_A - Hamming(c_i, c_j); score = log det K_H, -inf if singular.
    One train-mode forward of the whole batch, as in the authors' code.
    """
    x = _prepare(model, batch[0])
    n = x.shape[0]
    k = torch.zeros(n, n, dtype=torch.float64, device=x.device)

    def accumulate(inp: Tensor) -> None:
        # With s = 2c - 1 in {-1, +1}: s_i . s_j = agreements - disagreements, so the number
        # of agreeing units c c^T + (1-c)(1-c)^T = (s s^T + units) / 2: one matmul per
        # ReLU, and the full code matrix is never stored.
        units = inp[0].numel()
        # float32 sums of +-1 are exact below 2^24 terms: the fast path for any real layer.
        ftype = torch.float32 if units < 2**24 else torch.float64
        s = (inp.detach().reshape(n, -1) > 0).to(ftype) * 2 - 1
        k.add_(((s @ s.T).to(torch.float64) + units) / 2)

    _forward_with_relu_hooks(model, x, accumulate, pre=True)
    sign, logdet = torch.linalg.slogdet(k)
    # K_H is a sum of Gram matrices, hence PSD: a non-positive sign means singular.
    return float(logdet) if sign > 0 else -math.inf


def _swap_count(model: nn.Module, x: Tensor) -> float:
    """Number of distinct sample-wise activation patterns over all post-ReLU neurons."""
    n = x.shape[0]
    # Why pack: a pattern is a neuron's N binary values across the batch; packing them
    # into ceil(N/64) int64 words makes the unique-count a cheap integer sort instead of
    # a lexicographic sort of N-column rows. The packing is a bijection, so counts match.
    padded = -(-n // 64) * 64
    weights = (2 ** torch.arange(8, device=x.device, dtype=torch.int16)).view(1, 8, 1)
    packed: list[Tensor] = []

    def collect(out: Tensor) -> None:
        # Authors' code: sign of the ReLU output, every (channel, position) its own neuron.
        bits = out.detach().reshape(n, -1) > 0  # (N, neurons)
        bits = torch.nn.functional.pad(bits, (0, 0, 0, padded - n)).view(padded // 8, 8, -1)
        byte = (bits * weights).sum(dim=1, dtype=torch.int16).to(torch.uint8)  # (N/8, neurons)
        packed.append(byte.T.contiguous().view(torch.int64))  # (neurons, N/64)

    _forward_with_relu_hooks(model, x, collect, pre=False)
    if not packed:  # no ReLU: no activation pattern to count
        return math.nan
    codes = torch.cat(packed)
    uniq = torch.unique(codes[:, 0]) if codes.shape[1] == 1 else torch.unique(codes, dim=0)
    return float(uniq.shape[0])


@register_proxy("swap")
def swap(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """SWAP-Score: the number of distinct sample-wise activation patterns.

    Peng et al., "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS", ICLR 2024.
    Every post-ReLU neuron (each channel at each spatial position, over all nn.ReLU
    outputs) gives a pattern: its binarised activation [out > 0] on each of the N samples;
    the score counts the distinct patterns. One train-mode forward, as the authors' code.
    (The authors hook only ReLUs with 4-D inputs; every ReLU here, so that MLPs work too:
    the same on conv networks.)
    """
    x = _prepare(model, batch[0])
    return _swap_count(model, x)


def swap_regularizer(model: nn.Module, mu: float, sigma: float) -> float:
    """exp(-(Θ - mu)^2 / sigma), Θ the number of parameters in millions."""
    theta = sum(p.numel() for p in model.parameters()) / 1e6
    return math.exp(-((theta - mu) ** 2) / sigma)


@register_proxy("reg_swap")
def reg_swap(
    model: nn.Module, batch: Batch, loss_fn: nn.Module, *, mu: float = 1.5, sigma: float = 1.5
) -> float:
    """Regularised SWAP-Score: swap * exp(-(Θ - mu)^2 / sigma), Θ = parameters (millions).

    Peng et al., "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS", ICLR 2024.
    The Gaussian-shaped factor of the model size steers the score toward networks of
    about `mu` million parameters; `sigma` sets how sharply. The defaults suit NB201-size
    networks (C=16, N=5: 0.07M to 1.5M parameters); rescale both for other spaces.
    (The authors' code counts Θ in thousands; here mu and sigma are in millions.)
    """
    factor = swap_regularizer(model, mu, sigma)  # before the forward: counts all params
    return swap(model, batch, loss_fn) * factor


def _min_corr_eig(feats: list[Tensor]) -> list[float]:
    """The minimum eigenvalue of each (C, M) feature matrix's C x C channel correlation.

    NaN entries (a constant channel: zero variance) are set to 0, as in the authors' code.
    """
    by_size: dict[int, list[Tensor]] = {}
    for f in feats:
        f = f.to(torch.float64)
        f = f - f.mean(dim=1, keepdim=True)
        norm = f.norm(dim=1, keepdim=True)
        f = f / norm  # a zero-variance row becomes NaN (0/0), zeroed below
        corr = f @ f.T
        corr = torch.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)
        by_size.setdefault(corr.shape[0], []).append(corr)
    out: list[float] = []
    for mats in by_size.values():
        # Symmetric: eigvalsh equals the real part of eig's values, batched and faster.
        out.extend(torch.linalg.eigvalsh(torch.stack(mats)).min(dim=1).values.tolist())
    return out


@register_proxy("meco")
def meco(model: nn.Module, batch: Batch, loss_fn: nn.Module) -> float:
    """Sum over modules of the minimum eigenvalue of the channel-correlation matrix.

    Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum
    Eigenvalue of Correlation", NeurIPS 2023.
    As the authors' code: a forward hook on *every* module (containers and the model
    itself included); the output of the first sample, reshaped to (channels, positions),
    gives a C x C Pearson correlation across channels (NaN -> 0); its minimum eigenvalue
    is summed over all module calls, unweighted, NaN/inf terms dropped. Train mode, one
    data: only the batch's first example is forwarded (the whole batch only when
    train-mode BN rejects a single example's 1x1 map; sample 0's features are still used).
    """
    x = _prepare(model, batch[0])
    feats: list[Tensor] = []

    def hook(_m: nn.Module, _a: tuple, out: object) -> None:
        if isinstance(out, Tensor) and out.dim() >= 2:
            # Copy now: a later in-place op (ResNet's ReLU) would overwrite the output.
            feats.append(out[0].detach().reshape(out.shape[1], -1).clone())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            try:
                model(x[:1])  # one data, as the paper
            except ValueError:
                # Train-mode BN cannot normalise a 1x1 map of one sample (ResNet on 8x8
                # digits): let the rest of the batch feed BN's statistics instead.
                feats.clear()
                model(x)
    finally:
        for h in handles:
            h.remove()
    vals = torch.tensor(_min_corr_eig(feats), dtype=torch.float64)
    return float(vals[torch.isfinite(vals)].sum())
