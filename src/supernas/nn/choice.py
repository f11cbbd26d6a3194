"""Choice building blocks for a user's own network: `LayerChoice`, `ValueChoice`, sliced layers.

Plain modules, no metaclass: a block only knows its candidates (or its largest size) and
an `active` option that the supernet sets for the length of one `forward(x, arch)` call.
Used outside such a call, a block raises a clear error instead of guessing.

Weight sharing follows SPOS/OFA: a width choice uses the leading channels of the widest
weights; a kernel choice uses the centre crop of the largest kernel. `to_plain()` turns a
sliced layer into the plain torch layer of the active size holding exactly that slice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.supernet.resnet18 import SlicedBatchNorm2d

_BAD_KEY_CHARS = (",", "=", ".")


class ValueChoice:
    """A width or kernel size to search over, e.g. `ValueChoice([16, 32, 64], name="width")`.

    Not a module: the sliced layers (`Conv2d`, `BatchNorm2d`, `Linear`) take it in place of
    an int. One object (or several with the same `name`) used by several layers is one
    choice of the space, so a conv's out channels and the next BN's features move together.
    """

    def __init__(self, values: Iterable[int], name: str | None = None) -> None:
        vals = tuple(values)
        if not vals:
            raise SupernasError("ValueChoice needs at least one value")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SupernasError(f"ValueChoice values must be positive ints, got {v!r}")
        if len(set(vals)) != len(vals):
            raise SupernasError(f"ValueChoice has duplicate values: {list(vals)}")
        _check_name(name)
        self.values = vals
        self.name = name
        self.active: int | None = None

    @property
    def largest(self) -> int:
        return max(self.values)

    @property
    def current(self) -> int:
        """The value chosen by the arch of the running `supernet(x, arch)` call."""
        if self.active is None:
            raise SupernasError(f"{self!r} has no active value: {_OUTSIDE}")
        return self.active

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"ValueChoice({list(self.values)}{name})"


_OUTSIDE = (
    "call the network through supernas.as_supernet(model)(x, arch), or use "
    "supernet.extract(arch) for a plain network"
)


def _check_name(name: str | None) -> None:
    if name is not None and (
        not isinstance(name, str) or not name or "," in name or "=" in name or name != name.strip()
    ):
        raise SupernasError(f"choice name {name!r} must be a non-empty string without ',' or '='")


def size_of(spec: int | ValueChoice) -> int:
    """The size to allocate for: an int as it is, a ValueChoice's largest value."""
    if isinstance(spec, ValueChoice):
        return spec.largest
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 1:
        raise SupernasError(f"a size must be a positive int or a ValueChoice, got {spec!r}")
    return spec


def current(spec: int | ValueChoice) -> int:
    return spec.current if isinstance(spec, ValueChoice) else spec


class LayerChoice(nn.Module):
    """One of several candidate modules, e.g. `LayerChoice({"conv3": ..., "skip": ...})`.

    A list gets its candidates' class names as option names (`Conv2d`, `Conv2d_1`, ...).
    All candidates must take the same input and give outputs of the same shape.
    """

    def __init__(
        self, candidates: Sequence[nn.Module] | Mapping[str, nn.Module], name: str | None = None
    ) -> None:
        super().__init__()
        if isinstance(candidates, Mapping):
            items = [(str(k), m) for k, m in candidates.items()]
        else:
            items = list(zip(_class_keys(candidates), candidates, strict=True))
        if not items:
            raise SupernasError("LayerChoice needs at least one candidate")
        for key, m in items:
            if not isinstance(m, nn.Module):
                raise SupernasError(f"LayerChoice candidate {key!r} is not an nn.Module: {m!r}")
            if not key or key != key.strip() or any(c in key for c in _BAD_KEY_CHARS):
                raise SupernasError(
                    f"LayerChoice candidate name {key!r} must be non-empty, without "
                    "',', '=', '.' or edge whitespace"
                )
        _check_name(name)
        self.candidates = nn.ModuleDict(dict(items))
        self.name = name
        self.active: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.candidates.keys())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.active is None:
            raise SupernasError(
                f"LayerChoice {self.name or list(self.keys)} has no active candidate: {_OUTSIDE}"
            )
        return self.candidates[self.active](*args, **kwargs)


def _class_keys(candidates: Sequence[nn.Module]) -> list[str]:
    """Class names, numbered where a class occurs more than once: Conv2d_0, Conv2d_1, Identity."""
    names = [type(m).__name__ for m in candidates]
    seen: dict[str, int] = {}
    keys = []
    for n in names:
        if names.count(n) == 1:
            keys.append(n)
        else:
            keys.append(f"{n}_{seen.get(n, 0)}")
            seen[n] = seen.get(n, 0) + 1
    return keys


class Sliced:
    """Marks the layers that take ValueChoices (as attributes); each turns itself plain."""

    def to_plain(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_input(layer: str, got: int, want: int, spec: int | ValueChoice) -> None:
    if got != want:
        hint = (
            "pass the ValueChoice of the layer before as this layer's input size"
            if not isinstance(spec, ValueChoice)
            else "the layer before produced a different size than this ValueChoice chose"
        )
        raise SupernasError(f"{layer}: input has {got} features/channels, expected {want} ({hint})")


class Conv2d(Sliced, nn.Conv2d):
    """`nn.Conv2d` whose in/out channels and kernel size may each be a ValueChoice.

    Weights are allocated at the largest sizes; a smaller width takes the leading channels
    and a smaller kernel the centre crop of the largest kernel (as OFA). `padding` defaults
    to kernel // 2 of the chosen kernel, so a kernel choice keeps the output size; kernel
    choices must be odd. Groups and dilation are not supported.
    """

    def __init__(
        self,
        in_channels: int | ValueChoice,
        out_channels: int | ValueChoice,
        kernel_size: int | ValueChoice,
        stride: int = 1,
        padding: int | None = None,
        bias: bool = True,
    ) -> None:
        k = size_of(kernel_size)
        if isinstance(kernel_size, ValueChoice):
            if any(v % 2 == 0 for v in kernel_size.values):
                raise SupernasError(f"kernel choices must be odd (centre crop): {kernel_size!r}")
            if padding is not None:
                raise SupernasError("a kernel ValueChoice sets padding itself (kernel // 2)")
        super().__init__(
            size_of(in_channels),
            size_of(out_channels),
            k,
            stride,
            k // 2 if padding is None else padding,
            bias=bias,
        )
        self.in_spec = in_channels
        self.out_spec = out_channels
        self.kernel_spec = kernel_size
        self.pad_spec = padding

    def active_sizes(self) -> tuple[int, int, int, int]:
        """(in, out, kernel, padding) under the active arch."""
        k = current(self.kernel_spec)
        pad = k // 2 if self.pad_spec is None else self.pad_spec
        return current(self.in_spec), current(self.out_spec), k, pad

    def active_weight(self, cin: int, cout: int, k: int) -> Tensor:
        w = self.weight
        if cout != w.shape[0] or cin != w.shape[1]:
            w = w[:cout, :cin]
        big = w.shape[-1]
        if k != big:
            s = (big - k) // 2
            w = w[:, :, s : s + k, s : s + k]
        return w

    def forward(self, x: Tensor) -> Tensor:
        cin, cout, k, pad = self.active_sizes()
        _check_input("supernas.nn.Conv2d", x.shape[1], cin, self.in_spec)
        b = None if self.bias is None else self.bias[:cout]
        return F.conv2d(x, self.active_weight(cin, cout, k), b, self.stride, pad)

    @torch.no_grad()
    def to_plain(self) -> nn.Conv2d:
        cin, cout, k, pad = self.active_sizes()
        w = self.weight
        out = nn.Conv2d(
            cin,
            cout,
            k,
            self.stride,
            pad,
            bias=self.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        out.weight.copy_(self.active_weight(cin, cout, k))
        if self.bias is not None:
            out.bias.copy_(self.bias[:cout])
        return out


class BatchNorm2d(Sliced, SlicedBatchNorm2d):
    """`nn.BatchNorm2d` whose features may be a ValueChoice (the one of the conv before it).

    A narrower width uses, and in training updates, the leading entries of the widest
    statistics, so the plain BN of the chosen width holds exactly their slice.
    """

    def __init__(
        self,
        num_features: int | ValueChoice,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(size_of(num_features), eps, momentum, affine, track_running_stats)
        self.features_spec = num_features

    def forward(self, x: Tensor) -> Tensor:
        _check_input(
            "supernas.nn.BatchNorm2d", x.shape[1], current(self.features_spec), self.features_spec
        )
        return super().forward(x)

    @torch.no_grad()
    def to_plain(self) -> nn.BatchNorm2d:
        c = current(self.features_spec)
        ref = self.weight if self.weight is not None else self.running_mean
        out = nn.BatchNorm2d(
            c,
            self.eps,
            self.momentum,
            self.affine,
            self.track_running_stats,
            device=None if ref is None else ref.device,
        )
        for name in ("weight", "bias", "running_mean", "running_var"):
            src = getattr(self, name)
            if src is not None:
                getattr(out, name).copy_(src[:c])
        if self.num_batches_tracked is not None:
            out.num_batches_tracked.copy_(self.num_batches_tracked)
        return out


class Linear(Sliced, nn.Linear):
    """`nn.Linear` whose in/out features may be a ValueChoice (leading rows and columns).

    The input's last dimension must be the chosen in-size: put global average pooling
    between a conv of searched width and the classifier, not a flatten of C x H x W.
    """

    def __init__(
        self, in_features: int | ValueChoice, out_features: int | ValueChoice, bias: bool = True
    ) -> None:
        super().__init__(size_of(in_features), size_of(out_features), bias)
        self.in_spec = in_features
        self.out_spec = out_features

    def forward(self, x: Tensor) -> Tensor:
        cin, cout = current(self.in_spec), current(self.out_spec)
        _check_input("supernas.nn.Linear", x.shape[-1], cin, self.in_spec)
        b = None if self.bias is None else self.bias[:cout]
        return F.linear(x, self.weight[:cout, :cin], b)

    @torch.no_grad()
    def to_plain(self) -> nn.Linear:
        cin, cout = current(self.in_spec), current(self.out_spec)
        w = self.weight
        out = nn.Linear(cin, cout, self.bias is not None, device=w.device, dtype=w.dtype)
        out.weight.copy_(w[:cout, :cin])
        if self.bias is not None:
            out.bias.copy_(self.bias[:cout])
        return out
