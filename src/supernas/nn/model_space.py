"""A user's network with choice blocks as a SearchSpace and a Supernet.

`space_of(model)` walks the modules in order and makes one Choice per distinct block name.
`ModelSupernet` wraps the model: `forward(x, arch)` sets each block's active option for the
length of the call, and `extract(arch)` deep-copies the model and replaces every block by
its chosen candidate or by a plain layer holding the weight slice, so the standalone network
is a plain nn.Module that runs the same ops as the supernet path.

`register_model(name, factory)` puts the network in the space and supernet registries, so
every path that rebuilds by name (train-from-scratch, proxies, checkpoints) works unchanged.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from supernas.errors import SupernasError
from supernas.nn.choice import LayerChoice, Sliced, ValueChoice
from supernas.space import SPACES, Arch, Choice, SearchSpace
from supernas.space.core import Scalar
from supernas.supernet.base import SUPERNETS, Supernet

#: Options the pipeline passes from the data; recorded in the space even when the factory
#: does not take them (proxies read `in_channels`, checks read `num_classes`).
DATA_OPTIONS = ("in_channels", "num_classes")


@dataclass
class Block:
    """One choice of the space and every block object that follows it."""

    name: str
    options: tuple[Scalar, ...]
    targets: list[LayerChoice | ValueChoice] = field(default_factory=list)


def collect(model: nn.Module) -> dict[str, Block]:
    """The choice blocks of `model` in module order, grouped by name."""
    blocks: dict[str, Block] = {}
    seen: set[int] = set()

    def add(name: str, options: tuple[Scalar, ...], target: LayerChoice | ValueChoice) -> None:
        if id(target) in seen:
            return
        seen.add(id(target))
        block = blocks.get(name)
        if block is None:
            blocks[name] = Block(name, options, [target])
            return
        if block.options != options or type(block.targets[0]) is not type(target):
            raise SupernasError(
                f"two choice blocks are named {name!r} but differ ({list(block.options)} vs "
                f"{list(options)}); give them different names, or the same options"
            )
        block.targets.append(target)

    for path, m in model.named_modules():
        if isinstance(m, LayerChoice):
            add(m.name or path or "choice", m.keys, m)
        specs = [(k, v) for k, v in vars(m).items() if isinstance(v, ValueChoice)]
        if specs and not isinstance(m, Sliced):
            raise SupernasError(
                f"{path or type(m).__name__} holds a ValueChoice, but only supernas.nn.Conv2d, "
                "BatchNorm2d and Linear understand one"
            )
        for attr, vc in specs:
            add(vc.name or f"{path}.{attr.removesuffix('_spec')}".lstrip("."), vc.values, vc)
    return blocks


def space_of(
    model: nn.Module, name: str | None = None, *, description: str = "", **options: Any
) -> SearchSpace:
    """The SearchSpace of `model`'s choice blocks; `name` defaults to the class name, lowered.

    `options` are recorded in the space (e.g. in_channels, num_classes) for checkpoints.
    """
    if not isinstance(model, nn.Module):
        raise SupernasError(f"space_of needs an nn.Module, got {type(model).__name__}")
    blocks = collect(model)
    if not blocks:
        raise SupernasError(
            f"{type(model).__name__} has no choice blocks: mark at least one layer with "
            "supernas.LayerChoice or give a supernas.nn layer a supernas.ValueChoice"
        )
    return SearchSpace(
        name or type(model).__name__.lower(),
        [Choice(b.name, b.options) for b in blocks.values()],
        description=description or f"choice blocks of {type(model).__name__}",
        options=options,
    )


@contextmanager
def activated(blocks: list[Block], values: tuple[Scalar, ...]) -> Iterator[None]:
    """Set every block's active option for the length of the `with`, then clear them."""
    for block, value in zip(blocks, values, strict=True):
        for t in block.targets:
            t.active = value  # type: ignore[assignment]
    try:
        yield
    finally:
        for block in blocks:
            for t in block.targets:
                t.active = None


def materialize(model: nn.Module) -> nn.Module:
    """Replace, in place, each block by its active candidate or plain layer (shared stay shared)."""
    memo: dict[int, nn.Module] = {}

    def walk(m: nn.Module) -> nn.Module:
        if id(m) in memo:
            return memo[id(m)]
        if isinstance(m, LayerChoice):
            out = walk(m.candidates[m.active]) if m.active is not None else m
        elif isinstance(m, Sliced):
            out = m.to_plain()
        else:
            # not named_children(): it skips a module's second place, which must change too
            for name, child in list(m._modules.items()):
                if child is None:
                    continue
                new = walk(child)
                if new is not child:
                    setattr(m, name, new)
            out = m
        memo[id(m)] = out
        return out

    return walk(model)


class ModelSupernet(Supernet):
    """A user's network as a supernet: same `forward(x, arch)` / `extract(arch)` contract.

    Built with a model (`as_supernet`) or, from the registry, by calling the factory that
    `register_model` stored under the space's name.
    """

    def __init__(self, space: SearchSpace, model: nn.Module | None = None) -> None:
        super().__init__(space)
        if model is None:
            model = build_model(space.name, space.options)
        found = space_of(model, space.name)
        if [(c.name, c.options) for c in found.choices] != [
            (c.name, c.options) for c in space.choices
        ]:
            raise SupernasError(
                f"the model's choice blocks {found.describe()['choices']} do not match space "
                f"{space.name!r} {space.describe()['choices']}"
            )
        self.model = model
        self._blocks = list(collect(model).values())
        self._values: dict[Arch, tuple[Scalar, ...]] = {}

    def values(self, arch: Arch | str) -> tuple[Scalar, ...]:
        """The arch's values, validated once per arch (keeps validation off the training step)."""
        vals = self._values.get(arch) if isinstance(arch, Arch) else None
        if vals is None:
            arch = self.space.validate(arch)
            vals = arch.values
            if len(self._values) >= 100_000:
                self._values.clear()
            self._values[arch] = vals
        return vals

    def activate(self, arch: Arch | str) -> Any:
        """`with supernet.activate(arch): supernet.model(x)`: the path of `arch`."""
        return activated(self._blocks, self.values(arch))

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        with self.activate(arch):
            return self.model(x)

    def extract(self, arch: Arch | str) -> nn.Module:
        """The user's network with only `arch`'s candidates and sizes, holding their weights."""
        values = self.space.validate(arch).values
        net = copy.deepcopy(self.model)
        with activated(list(collect(net).values()), values):
            net = materialize(net)
        for p in net.parameters():
            p.grad = None
        net.train(self.training)
        return net

    @classmethod
    def build_network(cls, space: SearchSpace, arch: Arch) -> nn.Module:
        """A fresh network of `arch`: a fresh model from the factory, extracted."""
        return cls(space).extract(arch)


def as_supernet(model: nn.Module, name: str | None = None, **options: Any) -> ModelSupernet:
    """Wrap `model` (with choice blocks) as a supernet over `space_of(model, name)`.

    Unless `name` was registered with `register_model`, it is registered here with a copy
    of `model` as it is now, so `build_network`, `TrainFromScratch` and `ProxyEstimator`
    build fresh networks of it by name. For checkpoints reloaded in another process, use
    `register_model(name, factory)`.
    """
    space = space_of(model, name, **options)
    if space.name in _MODELS and space.name not in _SNAPSHOTS:
        registered = model_space(space.name, **options)
        if registered.describe()["choices"] != space.describe()["choices"]:
            raise SupernasError(
                f"{space.name!r} is registered with a network of other choices "
                f"{registered.describe()['choices']}; choose another name"
            )
    else:
        snapshot = copy.deepcopy(model)
        register_model(space.name, lambda **_: copy.deepcopy(snapshot))
        _SNAPSHOTS.add(space.name)
    return ModelSupernet(space, model)


# -- registration ------------------------------------------------------------------------
_MODELS: dict[str, Callable[..., nn.Module]] = {}
_SNAPSHOTS: set[str] = set()  # names whose factory is an `as_supernet` copy


def register_model(name: str, factory: Callable[..., nn.Module] | None = None) -> Any:
    """Register `factory() -> nn.Module` (with choice blocks) as the space and supernet `name`.

    Then `get_space(name, **options)`, `build_supernet`, `build_network`, `load_supernet`
    and `supernas run` work on it. Factory arguments are space options (`--space-opt`);
    `in_channels` and `num_classes` are passed only if the factory takes them. Registering
    the same name again replaces the factory. Also usable as `@register_model(name)`.
    """

    def deco(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if not callable(f):
            raise SupernasError(f"register_model({name!r}): the factory is not callable: {f!r}")
        if not isinstance(name, str) or not name:
            raise SupernasError(f"a model name must be a non-empty string, got {name!r}")
        if name in SPACES and name not in _MODELS:
            raise SupernasError(f"{name!r} is already a registered space; choose another name")
        _MODELS[name] = f
        _SNAPSHOTS.discard(name)
        if name not in SPACES:
            SPACES.register(name)(functools.partial(model_space, name))
            SUPERNETS.register(name)(ModelSupernet)
        return f

    return deco if factory is None else deco(factory)


def model_space(name: str, **options: Any) -> SearchSpace:
    """The registry's space factory of a registered model."""
    return space_of(build_model(name, options), name, **options)


def build_model(name: str, options: dict[str, Any]) -> nn.Module:
    """A fresh model from the factory registered under `name`, given the options it takes."""
    factory = _MODELS.get(name)
    if factory is None:
        raise SupernasError(f"no model registered as {name!r}; call register_model first")
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature take no options
        params = {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = dict(options)
    else:
        unknown = sorted(k for k in options if k not in params and k not in DATA_OPTIONS)
        if unknown:
            raise SupernasError(
                f"model {name!r}: unknown options {unknown}; its factory takes "
                f"{list(params) or 'no options'}"
            )
        kwargs = {k: v for k, v in options.items() if k in params}
    return call_factory(name, factory, kwargs)


def call_factory(name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> nn.Module:
    """`factory(**kwargs)`, with a failure or a non-module said in one line."""
    try:
        model = factory(**kwargs)
    except SupernasError:
        raise
    except Exception as exc:
        raise SupernasError(f"model factory {name!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise SupernasError(
            f"model factory {name!r} returned {type(model).__name__}, not an nn.Module"
        )
    return model


@torch.no_grad()
def check_fits(space: SearchSpace, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Run every option of every choice, and the largest arch, on zeros of the data's shape.

    Why: a model that does not take the images, or whose output is not one logit per class,
    should fail with one clear line before any training starts.
    """
    from supernas.supernet import build_supernet

    supernet = build_supernet(space).eval()
    x = torch.zeros(2, *input_shape)
    archs = [space.decode([len(c.options) - 1 for c in space.choices])]
    for i, c in enumerate(space.choices):  # every option of every choice at least once
        archs += [
            space.decode([j if k == i else 0 for k in range(len(space))])
            for j in range(len(c.options))
        ]
    for arch in dict.fromkeys(archs):
        try:
            out = supernet(x, arch)
        except SupernasError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SupernasError(
                f"model {space.name!r} cannot take inputs of shape {tuple(input_shape)} "
                f"(arch {arch}): {first}"
            ) from None
        if not isinstance(out, Tensor) or tuple(out.shape) != (2, num_classes):
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise SupernasError(
                f"model {space.name!r} gives outputs of shape {shape} for a batch of 2, but the "
                f"data has {num_classes} classes: its last layer must give (batch, {num_classes})"
                " (let the factory take num_classes)"
            )
