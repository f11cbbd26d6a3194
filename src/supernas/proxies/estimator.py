"""`ProxyEstimator`: zero-cost proxies in the estimator protocol `score(archs) -> list[float]`.

Each arch gets its own network, initialised from a seed derived from (seed, arch string), so
its score does not depend on which archs came before it; each proxy gets a fresh copy of
those weights (proxies may mutate their model) and the same RNG state.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from supernas.errors import SupernasError
from supernas.io import read_json, write_json
from supernas.proxies.base import PROXIES, Batch, Ensemble, Proxy
from supernas.proxies.ensemble import parse_ensemble
from supernas.space import Arch, SearchSpace
from supernas.supernet import Supernet, build_network

log = logging.getLogger(__name__)
Builder = Callable[[SearchSpace, Arch], nn.Module]


def resolve(name: str) -> Proxy | Ensemble:
    """A registered proxy or ensemble, or an ad-hoc `vote:a+b` / `rankavg:a+b` ensemble."""
    if ":" in name:
        return parse_ensemble(name)
    return PROXIES.get(name)


def arch_seed(seed: int, arch: Arch) -> int:
    """A stable per-arch seed (Python's hash() is salted per process; this is not)."""
    digest = hashlib.blake2b(f"{seed}:{arch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF


class ProxyEstimator:
    """Score archs with one or more zero-cost proxies on one fixed minibatch.

    `score(archs)` uses the first of `proxies`; an ensemble there is ranked against a
    seeded reference sample of `reference` archs (so scores are comparable across calls).
    `score_table(archs)` scores every proxy, with ensembles ranked within `archs` itself.
    `supernet`: take each network's weights from it (`extract`) instead of a fresh init.
    Undefined scores (an exception from the math, NaN or inf) become NaN and are counted
    in `warnings` (per proxy).
    """

    def __init__(
        self,
        space: SearchSpace,
        proxies: str | Sequence[str],
        batch: Batch,
        *,
        seed: int = 0,
        loss_fn: nn.Module | None = None,
        builder: Builder | None = None,
        supernet: Supernet | None = None,
        reference: int = 64,
        device: str = "cpu",
    ) -> None:
        self.space = space
        self.proxies = [proxies] if isinstance(proxies, str) else list(proxies)
        self.batch = batch
        self.seed = seed
        self.loss_fn = loss_fn
        self.builder = builder
        self.supernet = supernet
        self.reference = reference
        self.device = device
        self.warnings: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.on_arch: Callable[[], None] | None = None
        self._ref_scores: np.ndarray | None = None
        self._check()

    # -- names -------------------------------------------------------------------------
    def _check(self) -> None:
        if not self.proxies:
            raise SupernasError("give at least one proxy")
        for name in self.proxies:
            p = resolve(name)
            if isinstance(p, Ensemble):
                for m in p.members:
                    resolve(m)

    def seconds_for(self, name: str) -> float:
        """Time spent on `name` so far (an ensemble: its one pass, or its members')."""
        if name in self.seconds:
            return self.seconds[name]
        p = resolve(name)
        return sum(self.seconds[m] for m in p.members) if isinstance(p, Ensemble) else 0.0

    # -- one network -------------------------------------------------------------------
    def network(self, arch: Arch) -> nn.Module:
        """The arch's network with its deterministic initial (or supernet) weights."""
        torch.manual_seed(arch_seed(self.seed, arch))
        if self.supernet is not None:
            net = self.supernet.extract(arch)
        elif self.builder is not None:
            net = self.builder(self.space, arch)
        else:
            net = build_network(self.space, arch)
        return net.to(self.device)

    def _batch(self) -> Batch:
        x, y = self.batch
        return x.to(self.device), y.to(self.device)

    def _run(self, name: str, fn: Callable, net: nn.Module, arch: Arch, rng_seed: int) -> object:
        """fn(copy of net, batch, loss) with the arch's RNG state; math errors become NaN."""
        torch.manual_seed(rng_seed)
        start = time.perf_counter()
        try:
            return fn(copy.deepcopy(net), self._batch(), self.loss_fn or nn.CrossEntropyLoss())
        except (RuntimeError, ValueError, ArithmeticError) as exc:
            self._warn(name, arch, f"{type(exc).__name__}: {exc}")
            return None  # counted here; _finite does not count it again
        finally:
            self.seconds[name] += time.perf_counter() - start

    def _warn(self, name: str, arch: Arch, why: str) -> None:
        self.warnings[name] += 1
        log.warning("proxy %s undefined for %s (%s)", name, arch, why.splitlines()[0][:200])

    def _finite(self, name: str, arch: Arch, value: object) -> float:
        if value is None:
            return math.nan
        v = float(value)  # type: ignore[arg-type]
        if not math.isfinite(v):
            self._warn(name, arch, f"value {v}")
            return math.nan
        return v

    def measure(self, arch: Arch, names: Sequence[str]) -> dict[str, float]:
        """Every per-network score `names` need for one arch (ensemble members included)."""
        net = self.network(arch)
        rng_seed = arch_seed(self.seed + 1, arch)
        out: dict[str, float] = {}
        for name in names:
            p = resolve(name)
            if isinstance(p, Ensemble) and p.measure is not None:
                if not all(m in out for m in p.members):
                    got = self._run(name, p.measure, net, arch, rng_seed)
                    parts = got if isinstance(got, dict) else dict.fromkeys(p.members)
                    for m in p.members:
                        out[m] = self._finite(m, arch, parts.get(m, math.nan))
                continue
            for m in p.members if isinstance(p, Ensemble) else (name,):
                if m not in out:
                    out[m] = self._finite(m, arch, self._run(m, resolve(m), net, arch, rng_seed))
        del net  # free the network (and its copies' grads) before the next arch
        return out

    # -- many networks -----------------------------------------------------------------
    def score_table(
        self, archs: Sequence[Arch], checkpoint: str | Path | None = None, every: int = 10
    ) -> dict[str, list[float]]:
        """One column per proxy, rows in `archs` order; ensembles ranked within `archs`.

        With `checkpoint`, the per-arch scores are saved (atomically) every `every` archs
        and a rerun with the same settings picks up where a killed one stopped.
        """
        raw = self._resume(archs, checkpoint)
        for arch in archs[len(raw) :]:
            raw.append(self.measure(arch, self.proxies))
            if self.on_arch is not None:
                self.on_arch()
            if checkpoint is not None and (len(raw) % every == 0 or len(raw) == len(archs)):
                write_json(checkpoint, {"settings": self._settings(archs), "raw": raw})
        return self.combine(raw, self.proxies)

    def _settings(self, archs: Sequence[Arch]) -> dict[str, Any]:
        x, y = self.batch
        return {
            "space": self.space.name,
            "space_options": self.space.options,
            "proxies": self.proxies,
            "seed": self.seed,
            "batch": [list(x.shape), float(x.double().sum()), int(y.sum())],
            "archs": hashlib.blake2b("\n".join(map(str, archs)).encode()).hexdigest(),
        }

    def _resume(self, archs: Sequence[Arch], checkpoint: str | Path | None) -> list:
        if checkpoint is None or not Path(checkpoint).exists():
            return []
        saved = read_json(checkpoint)
        if saved.get("settings") != json.loads(json.dumps(self._settings(archs))):
            raise SupernasError(
                f"{checkpoint} holds scores made with other settings (space, proxies, seed, "
                "batch or archs); delete it or write elsewhere"
            )
        raw = [{k: (math.nan if v is None else v) for k, v in r.items()} for r in saved["raw"]]
        for _ in raw:
            if self.on_arch is not None:
                self.on_arch()
        return raw

    @staticmethod
    def combine(raw: Sequence[dict[str, float]], names: Sequence[str]) -> dict[str, list[float]]:
        """Columns from per-arch member scores: ensembles combined across the rows."""
        table: dict[str, list[float]] = {}
        for name in names:
            p = resolve(name)
            if isinstance(p, Ensemble):
                mat = np.array([[r[m] for m in p.members] for r in raw], dtype=np.float64)
                table[name] = [float(v) for v in p.combine(mat.reshape(len(raw), -1))]
            else:
                table[name] = [r[name] for r in raw]
        return table

    def score(self, archs: Sequence[Arch]) -> list[float]:
        name = self.proxies[0]
        p = resolve(name)
        ref = self._reference(p, name) if isinstance(p, Ensemble) else None
        out = []
        for arch in archs:
            row = self.measure(arch, [name])
            if isinstance(p, Ensemble):
                mat = np.vstack([ref, [[row[m] for m in p.members]]])
                out.append(float(p.combine(mat)[-1]))
            else:
                out.append(row[name])
            if self.on_arch is not None:
                self.on_arch()
        return out

    def _reference(self, p: Ensemble, name: str) -> np.ndarray:
        """Members' scores on a seeded sample of the space: the yardstick for ensembles."""
        if self._ref_scores is None:
            rng = np.random.default_rng(self.seed)
            rows = [self.measure(self.space.sample(rng), [name]) for _ in range(self.reference)]
            self._ref_scores = np.array([[r[m] for m in p.members] for r in rows])
        return self._ref_scores
