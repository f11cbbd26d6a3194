"""Policy-gradient search: REINFORCE (Williams 1992) and PPO (Schulman et al. 2017).

The policy is one independent categorical distribution per choice (softmax of numpy logits),
the RL baseline of NAS-Bench-201 (Dong & Yang 2020). Logits are fitted with Adam, as there,
so the step size does not depend on the scale of the values (accuracy in % or in [0, 1]).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from supernas.errors import SupernasError
from supernas.search.base import (
    Constraint,
    Strategy,
    float_from_json,
    float_to_json,
    register_strategy,
)
from supernas.space import Arch, SearchSpace

_BETA2, _EPS = 0.999, 1e-8
_CHUNK = 16  # policy samples drawn per numpy call while looking for a new feasible arch


def _check(
    name: str, value: Any, low: float, high: float = math.inf, *, integer: bool = False
) -> Any:
    """`low < value <= high` (an integer when asked), or a SupernasError naming the option."""
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low < value <= high:
        what = "an integer" if integer else "a number"
        raise SupernasError(f"{name} must be {what} in ({low:g}, {high:g}], got {value!r}")
    return value


def _momentum(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise SupernasError(f"{name}: momentum must be a number in [0, 1), got {value!r}")
    return value


class PolicyStrategy(Strategy):
    """Shared machinery: the categorical policy, Adam on its logits, sampling without repeats.

    An ask samples the policy until it draws a feasible arch not proposed before (infeasible
    draws are rejected, so they never reach the caller). Repeats are skipped because a budget
    counts distinct archs; when `max_tries` draws are all repeats, a space up to
    `max_enumerate` gives a uniform unseen arch (None once all are seen), a larger one a
    repeat. A failed evaluation (-inf) is learnt as the worst finite value seen so far.
    """

    #: Adam's first-moment decay; 0 makes it RMSprop (a zero gradient then stops at once).
    beta1: ClassVar[float] = 0.9

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        lr: float = 0.1,
        entropy: float = 0.0,
    ) -> None:
        super().__init__(space, seed, constraint)
        self.lr = _check(f"{self.name}: lr", lr, 0.0)
        self.entropy = entropy
        if isinstance(entropy, bool) or not isinstance(entropy, int | float) or entropy < 0:
            raise SupernasError(f"{self.name}: entropy must be a number >= 0, got {entropy!r}")

    # -- the policy ------------------------------------------------------------------------
    def _init_state(self) -> None:
        sizes = [len(c.options) for c in self.space.choices]
        self._mask = np.arange(max(sizes))[None, :] < np.array(sizes)[:, None]
        self._logits = np.zeros(self._mask.shape)
        self._m = np.zeros(self._mask.shape)  # Adam's moment estimates and step count
        self._v = np.zeros(self._mask.shape)
        self._t = 0
        self._seen: dict[Arch, None] = {}  # asked or told; a dict keeps a stable order
        self._worst: float | None = None  # the lowest finite value told (stands in for failures)

    def probabilities(self) -> list[list[float]]:
        """The policy: per choice, the probability of each option (in the space's order)."""
        self._start()
        return [row[m].tolist() for row, m in zip(self._probs(), self._mask, strict=True)]

    def mode(self) -> Arch:
        """The policy's most probable arch (ignores the constraint)."""
        self._start()
        return self.space.decode(np.argmax(np.where(self._mask, self._probs(), -1.0), axis=1))

    def _probs(self, logits: np.ndarray | None = None) -> np.ndarray:
        z = np.where(self._mask, self._logits if logits is None else logits, -np.inf)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def _log_prob(self, idx: np.ndarray, logits: np.ndarray | None = None) -> np.ndarray:
        """log p(arch) for index rows `idx` (batch x choices)."""
        p = self._probs(logits)
        return np.log(p[np.arange(p.shape[0]), idx]).sum(axis=-1)

    def _score(self, idx: np.ndarray) -> np.ndarray:
        """d log p(arch) / d logits for one index row: one-hot minus the probabilities."""
        g = -self._probs()
        g[np.arange(len(idx)), idx] += 1.0
        return np.where(self._mask, g, 0.0)

    def _entropy_grad(self) -> np.ndarray:
        """d H / d logits per choice: -p (log p + H), zero on padding."""
        p = self._probs()
        logp = np.log(np.where(self._mask, p, 1.0))
        h = -(p * logp).sum(axis=1, keepdims=True)
        return np.where(self._mask, -p * (logp + h), 0.0)

    def _step(self, grad: np.ndarray) -> None:
        """One Adam ascent step on the logits."""
        b1, b2 = self.beta1, _BETA2
        self._t += 1
        self._m = b1 * self._m + (1 - b1) * grad
        self._v = b2 * self._v + (1 - b2) * grad**2
        m_hat = self._m / (1 - b1**self._t) if b1 else self._m
        v_hat = self._v / (1 - b2**self._t)
        self._logits = self._logits + self.lr * m_hat / (np.sqrt(v_hat) + _EPS)

    # -- ask/tell --------------------------------------------------------------------------
    def _ask(self) -> Arch | None:
        if self.constraint is None and len(self._seen) >= self.space.size:
            return None  # every arch has been proposed
        cdf = np.cumsum(self._probs(), axis=1)
        repeat: Arch | None = None
        for start in range(0, self.max_tries, _CHUNK):
            u = self.rng.random((min(_CHUNK, self.max_tries - start), len(cdf)))
            rows = np.minimum((u[:, :, None] >= cdf[None]).sum(-1), self._mask.sum(1) - 1)
            for idx in rows:
                arch = self.space.decode(idx)
                if arch not in self._seen and self._feasible(arch):
                    self._seen[arch] = None
                    return arch
                if repeat is None and arch in self._seen and self._feasible(arch):
                    repeat = arch
        if self.space.size <= self.space.max_enumerate:
            arch = self._pick_unseen(self._seen)  # nearly exhausted: finish it exactly
        elif repeat is None:
            raise SupernasError(
                f"no architecture satisfying the constraints found in {self.max_tries} draws; "
                "loosen the constraints"
            )
        else:
            arch = repeat
        if arch is not None:
            self._seen[arch] = None
        return arch

    def _tell(self, arch: Arch, value: float) -> None:
        self._seen[arch] = None
        if math.isfinite(value):
            self._worst = value if self._worst is None else min(self._worst, value)
        elif self._worst is None:
            return  # a failure before any real value: nothing to compare it with yet
        reward = value if math.isfinite(value) else self._worst
        self._learn(np.array(self.space.encode(arch)), float(reward))

    def _learn(self, idx: np.ndarray, reward: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- state -----------------------------------------------------------------------------
    def _rows(self, a: np.ndarray) -> list[list[float]]:
        return [row[m].tolist() for row, m in zip(a, self._mask, strict=True)]

    def _unrows(self, rows: list[list[float]]) -> np.ndarray:
        out = np.zeros(self._mask.shape)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    def _get_state(self) -> dict[str, Any]:
        return {
            "logits": self._rows(self._logits),
            "adam": {"m": self._rows(self._m), "v": self._rows(self._v), "t": self._t},
            "seen": [self._arch_to_json(a) for a in self._seen],
            "worst": None if self._worst is None else float_to_json(self._worst),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self._logits = self._unrows(state["logits"])
        self._m, self._v = self._unrows(state["adam"]["m"]), self._unrows(state["adam"]["v"])
        self._t = int(state["adam"]["t"])
        self._seen = {self._arch_from_json(a): None for a in state["seen"]}
        self._worst = None if state["worst"] is None else float_from_json(state["worst"])


@register_strategy("reinforce")
class Reinforce(PolicyStrategy):
    """REINFORCE with a moving-average baseline, one update per told value.

    Advantage = value - baseline, where the baseline is an exponential moving average of the
    values told before (`momentum`, 0.9 in NB201's baseline) and starts at the first value,
    so the first tell only sets it. `entropy` > 0 adds an entropy bonus against early collapse.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        lr: float = 0.1,
        momentum: float = 0.9,
        entropy: float = 0.0,
    ) -> None:
        super().__init__(space, seed, constraint, lr=lr, entropy=entropy)
        self.momentum = _momentum("reinforce", momentum)

    def _init_state(self) -> None:
        super()._init_state()
        self._baseline: float | None = None

    def _learn(self, idx: np.ndarray, reward: float) -> None:
        if self._baseline is None:
            self._baseline = reward
            return
        grad = (reward - self._baseline) * self._score(idx)
        if self.entropy:
            grad = grad + self.entropy * self._entropy_grad()
        self._step(grad)
        self._baseline = self.momentum * self._baseline + (1 - self.momentum) * reward

    def _get_state(self) -> dict[str, Any]:
        return {**super()._get_state(), "baseline": self._baseline}

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._baseline = None if state["baseline"] is None else float(state["baseline"])


@register_strategy("ppo")
class PPO(PolicyStrategy):
    """Proximal Policy Optimisation with the clipped surrogate (Schulman et al. 2017).

    Told values are buffered with the log-probability the policy gave them at tell time (the
    policy only changes at updates, so that is the policy that sampled them). Every
    `batch_size` tells: advantages = value - baseline (moving average of batch means, first
    batch: its own mean), standardised if `normalize`, then `epochs` full-batch Adam steps on
    mean(min(ratio * A, clip(ratio, 1 +- clip) * A)) + entropy * H. The clip keeps each batch
    from moving the policy far from the one that collected it, so a batch can be reused. The
    optimiser is RMSprop (Adam without momentum): momentum would carry the logits on past the
    clip range.
    """

    beta1: ClassVar[float] = 0.0

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        constraint: Constraint | None = None,
        lr: float = 0.1,
        batch_size: int = 10,
        epochs: int = 4,
        clip: float = 0.2,
        momentum: float = 0.9,
        normalize: bool = True,
        entropy: float = 0.0,
    ) -> None:
        super().__init__(space, seed, constraint, lr=lr, entropy=entropy)
        self.batch_size = _check("ppo: batch_size", batch_size, 0, integer=True)
        self.epochs = _check("ppo: epochs", epochs, 0, integer=True)
        self.clip = _check("ppo: clip", clip, 0.0, 1.0)
        self.momentum = _momentum("ppo", momentum)
        if not isinstance(normalize, bool):
            raise SupernasError(f"ppo: normalize must be true or false, got {normalize!r}")
        self.normalize = normalize

    def _init_state(self) -> None:
        super()._init_state()
        self._baseline: float | None = None
        self._buffer: list[tuple[list[int], float, float]] = []  # (indices, reward, old log p)

    def _learn(self, idx: np.ndarray, reward: float) -> None:
        old = float(self._log_prob(idx[None])[0])
        self._buffer.append((idx.tolist(), reward, old))
        if len(self._buffer) >= self.batch_size:
            self._update()
            self._buffer = []

    def _update(self) -> None:
        idx = np.array([b[0] for b in self._buffer])
        rewards = np.array([b[1] for b in self._buffer])
        old_logp = np.array([b[2] for b in self._buffer])
        mean = float(rewards.mean())
        base = mean if self._baseline is None else self._baseline
        adv = rewards - base
        if self.normalize:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        self._baseline = (
            mean
            if self._baseline is None
            else (self.momentum * self._baseline + (1 - self.momentum) * mean)
        )
        onehot = np.zeros((len(idx), *self._mask.shape))
        onehot[np.arange(len(idx))[:, None], np.arange(idx.shape[1])[None, :], idx] = 1.0
        for _ in range(self.epochs):
            ratio = np.exp(self._log_prob(idx) - old_logp)
            # the clipped term has zero gradient where it is the minimum
            active = ~(
                ((adv > 0) & (ratio > 1 + self.clip)) | ((adv < 0) & (ratio < 1 - self.clip))
            )
            score = np.where(self._mask, onehot - self._probs()[None], 0.0)
            w = np.where(active, adv * ratio, 0.0) / len(idx)
            grad = (w[:, None, None] * score).sum(axis=0)
            if self.entropy:
                grad = grad + self.entropy * self._entropy_grad()
            self._step(grad)

    def _get_state(self) -> dict[str, Any]:
        return {
            **super()._get_state(),
            "baseline": self._baseline,
            "buffer": [[i, r, lp] for i, r, lp in self._buffer],
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._baseline = None if state["baseline"] is None else float(state["baseline"])
        self._buffer = [(list(map(int, i)), float(r), float(lp)) for i, r, lp in state["buffer"]]
