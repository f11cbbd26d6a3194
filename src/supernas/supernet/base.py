"""The supernet contract: `forward(x, arch)` with an explicit arch, and `extract(arch)`.

Design: a space's standalone network is built from the *same* module classes as its
supernet, holding only the chosen candidate (and only the chosen width). Its state-dict
keys are therefore a subset of the supernet's (unless `source_key` maps them), and each
tensor is a slice of the supernet's tensor (its leading entries, unless `slice_of` says
otherwise), so `extract` is one generic copy and the two forwards share code.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.registry import Registry
from supernas.space import Arch, SearchSpace, get_space


class Supernet(nn.Module):
    """All candidate weights of a space. Subclasses implement `forward` and `build_network`."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def forward(self, x: Tensor, arch: Arch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:  # pragma: no cover
        """A fresh (randomly initialised) standalone network for `arch`."""
        raise NotImplementedError

    def forward_mixed(
        self,
        x: Tensor,
        weights: Sequence[Tensor],
        *,
        partial: int = 1,
        edge_weights: Sequence[Tensor] | None = None,
    ) -> Tensor:
        """Every option of every choice at once, weighted (the DARTS mixed op).

        `weights[i]` is a 1-D tensor over `space.choices[i].options`; choice i's output is
        sum_j weights[i][j] * op_j(input). An option whose weight is exactly 0 is not
        computed (see `mix`), so a one-hot weight runs exactly `forward(x, arch)`'s path and
        GDAS's straight-through one-hot runs one op per choice. Differentiable trainers
        (darts, gdas) need it; a space without it raises a clear error. `partial` and
        `edge_weights` are PC-DARTS' partial channels and edge normalization; a supernet
        that supports them overrides this signature (today nb201), one that does not keeps
        the plain `(x, weights)` signature.
        """
        raise SupernasError(
            f"space {self.space.name} has no mixed forward (Supernet.forward_mixed); "
            "the differentiable methods darts/gdas need one: use spos, random_ws or another "
            "single-path trainer"
        )

    def mixed_zeros(self, weights: Sequence[Tensor]) -> list[list[bool]]:
        """Check `weights` against the space; per choice, which weights are exactly 0.

        One host sync for the whole forward (not one per choice): the values decide which
        ops run, so they must be read on the host anyway.
        """
        choices = self.space.choices
        if len(weights) != len(choices):
            raise SupernasError(
                f"forward_mixed needs {len(choices)} weight vectors (one per choice of "
                f"{self.space.name}), got {len(weights)}"
            )
        for c, w in zip(choices, weights, strict=True):
            if w.dim() != 1 or len(w) != len(c.options):
                raise SupernasError(
                    f"forward_mixed: choice {c.name} needs a 1-D weight of {len(c.options)} "
                    f"entries, got shape {tuple(w.shape)}"
                )
        flat = torch.cat([w.detach().reshape(-1) for w in weights]).eq(0).tolist()
        out, i = [], 0
        for w in weights:
            out.append(flat[i : i + len(w)])
            i += len(w)
        return out

    def cached_config(self, arch: Arch, make: Callable[[SearchSpace, Arch], Any]) -> Any:
        """`make(space, arch)` (the per-layer plan of a forward), cached per arch.

        Why: validating and parsing an arch on every training step costs more than a small
        layer's forward; the cache is cleared when it reaches 100,000 archs.
        """
        cache: dict[Arch, Any] = self.__dict__.setdefault("_config_cache", {})
        cfg = cache.get(arch) if isinstance(arch, Arch) else None
        if cfg is None:
            arch = self.space.validate(arch)
            cfg = make(self.space, arch)
            if len(cache) >= 100_000:
                cache.clear()
            cache[arch] = cfg
        return cfg

    def source_key(self, key: str, arch: Arch) -> str:
        """The supernet key that holds the standalone tensor `key` of `arch`.

        The same key by default; a supernet that names its weights otherwise than the
        standalone network (resnet18's `independent` and `nested` sharing) overrides this.
        """
        return key

    def slice_of(self, key: str, shape: torch.Size) -> tuple[slice, ...]:
        """Where a standalone tensor of `shape` lies in this supernet's tensor `key`.

        Widths are sliced from the front, so by default the leading entries of every dim;
        a supernet that shares weights another way (a centre-cropped kernel) overrides this.
        """
        return tuple(slice(0, n) for n in shape)

    def extract(self, arch: Arch) -> nn.Module:
        """A standalone network for `arch` with the supernet's weights and BN stats copied."""
        arch = self.space.validate(arch)
        net = self.build_network(self.space, arch)
        first = next(self.parameters(), None)
        if first is not None:  # a standalone lives where its supernet lives (e.g. on the GPU)
            net.to(first.device)
        src = self.state_dict()
        dst = net.state_dict()
        new = {}
        for key, t in dst.items():
            skey = self.source_key(key, arch)
            if skey not in src:
                raise RuntimeError(f"{type(self).__name__}: standalone key {key} not in supernet")
            s = src[skey]
            new[key] = s[self.slice_of(skey, t.shape)].clone() if t.dim() else s.clone()
        net.load_state_dict(new)
        net.train(self.training)
        return net


_PROBE: contextvars.ContextVar[float | None] = contextvars.ContextVar("probe_gates", default=None)


@contextlib.contextmanager
def probe_gates(below: float) -> Iterator[None]:
    """Within it, `mix` runs an op whose weight is a tiny gate (|w| <= `below`, requiring
    grad) without recording it for backward (`_ProbeTerm`: recomputed in the backward).

    Why: ProxylessNAS' alpha step needs dL/dg = <dL/dy, op(x)> for the inactive candidate
    of each choice, which is exact from op(x) alone; its weights get no update in that
    step, and the gradient to x through it is scaled by the tiny gate (below float32
    resolution), so it is left out. The step then holds one path's activations, not two.
    """
    token = _PROBE.set(below)
    try:
        yield
    finally:
        _PROBE.reset(token)


class _ProbeTerm(torch.autograd.Function):
    """w * op(x) where only dL/dw = <dL/d(term), op(x)> is wanted: nothing is kept.

    The forward runs op without autograd and the backward runs it again (same input, same
    batch statistics, so the same output) to form the inner product. The price: the op's
    BN running statistics see that batch twice; evaluation recalibrates BN anyway.
    """

    @staticmethod
    def forward(ctx: Any, w: Tensor, op: Callable[[], Tensor | None]) -> Tensor:
        ctx.op = op
        with torch.no_grad():
            y = op()
        if y is None:  # 'none': identically zero
            ctx.op = None
            return w * 0.0
        return w * y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        if ctx.op is None:
            return None, None
        with torch.no_grad():
            y = ctx.op()
        return (grad * y).sum().reshape(()), None


def mix(
    weights: Sequence[Tensor], zero: Sequence[bool], compute: Callable[[int], Tensor | None]
) -> Tensor | None:
    """sum_j weights[j] * compute(j), computing only options whose weight is not exactly 0.

    A zero weight that does not require grad is dropped: exact, and the op never runs. A
    zero weight that requires grad (GDAS's hard one-hot, one_hot - p.detach() + p, whose
    unchosen entries are exactly 0) is added as itself instead of weight * op: the value
    is unchanged and the op still never runs, while autograd reaches alpha through it, as
    GDAS's official code does. `compute(j)` may return None for an op that is identically
    zero ('none'), so it costs nothing. Returns None when no term remains; a 0-dim result
    means only zero weights were added, and the caller broadcasts it. Under `probe_gates`,
    a tiny gate's op runs without autograd (see there).
    """
    total: Tensor | None = None
    probe = _PROBE.get()
    for j, w in enumerate(weights):
        if zero[j]:
            if not w.requires_grad:
                continue
            term: Tensor | None = w
        elif probe is not None and w.requires_grad and abs(float(w.detach())) <= probe:
            term = _ProbeTerm.apply(w, functools.partial(compute, j))
        else:
            y = compute(j)
            term = None if y is None else w * y
        if term is not None:
            total = term if total is None else total + term
    return total


SUPERNETS: Registry[type[Supernet]] = Registry("supernet (space)")


def register_supernet(space_name: str) -> Callable[[type[Supernet]], type[Supernet]]:
    """Register the Supernet class that builds networks for the space `space_name`."""
    return SUPERNETS.register(space_name)


#: Standalone network builders of spaces without a supernet (too large to share weights).
NETWORKS: Registry[Callable[[SearchSpace, Arch], nn.Module]] = Registry("network (space)")


def register_network(
    space_name: str,
) -> Callable[[Callable[[SearchSpace, Arch], nn.Module]], Callable[[SearchSpace, Arch], nn.Module]]:
    """Register `build(space, arch) -> nn.Module` for a space that has no supernet."""
    return NETWORKS.register(space_name)


def _space(space: SearchSpace | str, options: dict[str, Any]) -> SearchSpace:
    if isinstance(space, str):
        return get_space(space, **options)
    if options:
        raise SupernasError("pass space options to get_space, or a space name to build_supernet")
    return space


def build_supernet(space: SearchSpace | str, **options: Any) -> Supernet:
    """The weight-sharing supernet of a space (a SearchSpace, or a name plus space options)."""
    space = _space(space, options)
    if space.name in NETWORKS and space.name not in SUPERNETS:
        raise SupernasError(
            f"space {space.name!r} has no weight-sharing supernet (too large to hold every "
            "option's weights); score its archs with a proxy, a hypernet or standalone "
            "training (`supernas search --proxy`, `supernas multifidelity`)"
        )
    return SUPERNETS.get(space.name)(space)


def build_network(space: SearchSpace | str, arch: Arch | str, **options: Any) -> nn.Module:
    """A fresh standalone network of one arch: what train-from-scratch trains."""
    space = _space(space, options)
    if space.name in NETWORKS and space.name not in SUPERNETS:
        return NETWORKS.get(space.name)(space, space.validate(arch))
    return SUPERNETS.get(space.name).build_network(space, space.validate(arch))


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Any,
    forward: Callable[[Tensor], Tensor] | None = None,
) -> int:
    """Reset BN running stats and re-estimate them as an exact average over `batches`.

    Why: a supernet's BN statistics mix every path it trained; a sub-network evaluated with
    them is mis-scored (SPOS, Guo et al. 2020). `forward` defaults to `model`; for a
    supernet pass `lambda x: supernet(x, arch)`. Returns the number of batches used.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch weighs the same
    model.train()
    fwd = forward or model
    n = 0
    try:
        for x in batches:
            if isinstance(x, tuple | list):
                x = x[0]
            fwd(x)
            n += 1
    finally:
        for m, mom in saved:
            m.momentum = mom
        model.train(was_training)
    if n == 0:
        raise SupernasError("BN recalibration got no batches (is the train split empty?)")
    return n
