"""A hypernetwork dressed as a `Supernet`: `forward(x, arch)` and `extract(arch)`.

Why this shape: everything downstream (trainer loop, checkpoints, `SupernetEstimator`,
search, `supernas run`) already speaks the Supernet contract. A hypernet only differs in
where an arch's weights come from: generated from the arch instead of sliced from shared
tensors. The generated tensors are applied with `torch.func.functional_call` to the space's
own standalone network, so they have exactly its parameter shapes by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call

from supernas.errors import SupernasError
from supernas.hyper.params import ParamSpec, batch_stat_bn, load_params, param_specs
from supernas.space import Arch, SearchSpace
from supernas.supernet import SUPERNETS, Supernet, build_network
from supernas.supernet import base as supernet_base

#: standalone networks kept per arch; cleared when full (a random arch per step rarely repeats)
CACHE_SIZE = 64


def network_spaces() -> list[str]:
    """Spaces whose standalone networks can be built: with a supernet, or networks alone."""
    networks = getattr(supernet_base, "NETWORKS", None)  # spaces too large for a supernet
    return sorted(set(SUPERNETS.names()) | set(networks.names() if networks else []))


def check_space(space: SearchSpace) -> None:
    if space.name not in network_spaces():
        raise SupernasError(
            f"space {space.name!r} has no standalone network (build_network), so a hypernet "
            f"cannot generate its weights; spaces with one: {', '.join(network_spaces())}"
        )


class HyperSupernet(Supernet):
    """Base of SMASH and GHN: subclasses implement `generate(arch) -> {name: tensor}`.

    BN: every standalone network normalises with batch statistics (see `batch_stat_bn`);
    norm scales and biases are generated like every other parameter.
    """

    name = ""
    #: the hypernet's own hyperparameters and their defaults (saved in the trainer config)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, space: SearchSpace, seed: int = 0, **options: Any) -> None:
        super().__init__(space)
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise SupernasError(
                f"unknown {self.name} option(s) {unknown}; valid: {sorted(self.defaults)}"
            )
        self.options = {**self.defaults, **options}
        self.seed = seed
        check_space(space)
        self._nets: dict[tuple[Arch, str], nn.Module] = {}
        self._plans: dict[str, dict[Arch, Any]] = {}

    def config(self) -> dict[str, Any]:
        return dict(self.options)

    # -- the standalone network of an arch -----------------------------------------------
    def template(self, arch: Arch) -> nn.Module:
        """The arch's standalone network (batch-stat BN) whose parameters get replaced."""
        device = self.device
        key = (arch, str(device))
        net = self._nets.get(key)
        if net is None:
            with torch.random.fork_rng():  # template init is thrown away: keep the RNG as is
                net = batch_stat_bn(build_network(self.space, arch))
            net.to(device).requires_grad_(False)
            if len(self._nets) >= CACHE_SIZE:
                self._nets.clear()
            self._nets[key] = net
        return net

    def cached(self, kind: str, arch: Arch, make: Callable[[SearchSpace, Arch], Any]) -> Any:
        """`make(space, arch)` cached per arch under `kind` (specs, a generator's plan)."""
        cache = self._plans.setdefault(kind, {})
        if arch not in cache:
            if len(cache) >= 100_000:
                cache.clear()
            cache[arch] = make(self.space, arch)
        return cache[arch]

    def specs(self, arch: Arch) -> list[ParamSpec]:
        return self.cached("specs", arch, lambda space, a: param_specs(self.template(a)))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- generation ----------------------------------------------------------------------
    def generate(self, arch: Arch) -> dict[str, Tensor]:  # pragma: no cover - abstract
        """Every parameter of `arch`'s standalone network, by name, differentiable."""
        raise NotImplementedError

    def weights(self, arch: Arch) -> dict[str, Tensor]:
        """`generate(arch)`, reused without grad while the hypernet's weights are unchanged.

        Why: BN recalibration and evaluation forward one arch many times without grad; the
        cache is keyed by the parameters' version counters, so a training step invalidates it.
        """
        if torch.is_grad_enabled():
            return self.generate(arch)
        key = (arch, str(self.device), tuple(p._version for p in self.parameters()))
        if self.__dict__.get("_last_key") != key:
            self._last_key, self._last = key, self.generate(arch)
        return self._last

    def forward(self, x: Tensor, arch: Arch) -> Tensor:
        arch = self.space.validate(arch)
        net = self.template(arch)
        net.train(self.training)
        return functional_call(net, self.weights(arch), (x,))

    def extract(self, arch: Arch) -> nn.Module:
        """A standalone network holding the generated weights (BN on batch statistics)."""
        arch = self.space.validate(arch)
        net = batch_stat_bn(build_network(self.space, arch)).to(self.device)
        with torch.no_grad():
            load_params(net, self.weights(arch))
        return net.train(self.training)
