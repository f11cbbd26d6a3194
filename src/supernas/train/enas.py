"""ENAS (Pham et al., *Efficient Neural Architecture Search via Parameter Sharing*, ICML 2018).

Why: single-path trainers sample paths uniformly and leave the choice of an arch to a later
search; ENAS learns where to look while it trains. An LSTM controller proposes archs; the
shared weights are trained on the controller's proposals and the controller is trained by
REINFORCE on the shared weights' validation accuracy, so both focus on the promising region.

Per epoch, as the paper alternates them:

(a) shared weights: one pass over the train split; each batch trains one arch sampled from
    the controller (no gradient reaches the controller) with the loop's normal SGD step;
(b) controller: `controller_steps` REINFORCE updates with Adam. Each samples `num_samples`
    archs, rewards each with the supernet's accuracy on the next minibatch of a shuffled
    pass over the val split (the same batch for all samples of a step), and minimises
    ``mean_m[-(R_m - b) * log p(arch_m)] - entropy_weight * mean_m[H_m]``, where ``b`` is a
    moving average of the rewards (decay `baseline_decay`, updated before the advantage as in
    the ENAS code) and ``H_m`` the summed per-step entropy along arch m's decode.

The controller is the macro-search controller of the paper, for any sequence of categorical
choices: a one-layer LSTM cell (hidden 64); step 0 reads a learned start vector, step i > 0
the embedding of the option sampled at step i - 1 (one embedding table per choice, so
"option 2 of choice 3" and "option 2 of choice 7" are different inputs); a per-choice linear
head gives the logits, shaped as ``tanh_constant * tanh(z / temperature)`` (2.5 and 5, the
paper's values: they keep the early policy from collapsing). Parameters start uniform in
[-0.1, 0.1] as in the paper, seeded by the trainer's seed.

Reward evaluation runs the supernet in *train* mode (batch statistics), as ENAS's shared
model does on its val minibatch: a supernet's BN running statistics are shared by all paths
and fit none of them, so eval-mode accuracy would mostly measure that mismatch. All buffers
(BN running statistics) are restored after the controller phase, so rewarding never changes
the supernet. The reward is computed without gradients.

Deviations, on purpose: the baseline starts at the first step's mean reward, not at 0 (the
ENAS code's start), so the first updates are not all pushed up by an accuracy of ~0.1; the
entropy is a differentiable bonus on the loss (the paper adds the sample entropy to the
reward). With a `constraint`, a proposal that fails it is resampled from the controller
(up to `max_resample` times), else a uniform constrained arch is used (one warning per fit);
the gradient is that of the unconstrained log-probability (the normaliser of the
constrained distribution is ignored, as usual).

`derive()` is the controller's greedy decode (argmax at each step), `alphas()` the option
probabilities along that decode; both are in every epoch's record (`arch`, `alphas`), with
`reward_mean`, `baseline` and `entropy` of the controller phase. The controller's weights,
its Adam state and the baseline are in every checkpoint, so a killed run resumes exactly.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace
from supernas.supernet import Supernet
from supernas.train.loop import Constraint, SupernetTrainer, path_stats, sample_constrained
from supernas.train.recipe import Recipe
from supernas.train.registry import register_trainer

#: reward_fn(supernet, arch, x_val, y_val) -> reward (higher is better), called without grad.
RewardFn = Callable[[Supernet, Arch, Tensor, Tensor], float]

#: How a decode picks step i's options from its probabilities (batch x options).
Picker = Callable[[int, Tensor], Tensor]


def val_accuracy(supernet: Supernet, arch: Arch, x: Tensor, y: Tensor) -> float:
    """ENAS's reward: the accuracy of `arch` with the shared weights on one val minibatch."""
    return float((supernet(x, arch).argmax(1) == y).float().mean())


class Controller(nn.Module):
    """ENAS's LSTM controller over a sequence of categorical choices (option counts `sizes`).

    Every decode (sampling, greedy, teacher-forced) runs through `decode`, so the
    probabilities that sample an arch are exactly those its log-probability is taken from.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        hidden: int = 64,
        tanh_constant: float | None = 2.5,
        temperature: float | None = 5.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.sizes = [int(n) for n in sizes]
        self.hidden = hidden
        self.tanh_constant = tanh_constant
        self.temperature = temperature
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.lstm = nn.LSTMCell(hidden, hidden)
        # the last choice's option feeds no later step, so it needs no embedding
        self.embeddings = nn.ModuleList(nn.Embedding(n, hidden) for n in self.sizes[:-1])
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)
        with torch.no_grad():  # the paper: every parameter uniform in [-0.1, 0.1]
            for p in self.parameters():
                p.copy_(torch.rand(p.shape, generator=generator) * 0.2 - 0.1)

    def logits(self, i: int, h: Tensor) -> Tensor:
        """Step i's logits from the LSTM output: temperature, then tanh squashing (ENAS)."""
        z = self.heads[i](h)
        if self.temperature:
            z = z / self.temperature
        if self.tanh_constant:
            z = self.tanh_constant * torch.tanh(z)
        return z

    def decode(self, batch: int, pick: Picker) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """Run the LSTM over the choices, `pick` choosing each step's options.

        Returns (indices batch x choices, summed log-prob per row, summed entropy per row,
        the per-step probabilities).
        """
        x = self.start.expand(batch, -1)
        state: tuple[Tensor, Tensor] | None = None
        picks, logp, ent, probs = [], [], [], []
        for i in range(len(self.sizes)):
            state = self.lstm(x, state)
            log_p = torch.log_softmax(self.logits(i, state[0]), dim=-1)
            p = log_p.exp()
            k = pick(i, p.detach())
            picks.append(k)
            logp.append(log_p.gather(1, k[:, None])[:, 0])
            ent.append(-(p * log_p).sum(-1))
            probs.append(p)
            if i + 1 < len(self.sizes):
                x = self.embeddings[i](k)
        return (
            torch.stack(picks, 1),
            torch.stack(logp, 1).sum(1),
            torch.stack(ent, 1).sum(1),
            probs,
        )

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        """One arch's option indices drawn from the policy with the numpy `rng` (no grad).

        Why numpy: the trainer's numpy generator is saved in every checkpoint, so sampling
        from it resumes exactly with no extra state.
        """

        def draw(i: int, p: Tensor) -> Tensor:
            cdf = np.cumsum(p[0].double().numpy())
            k = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), len(cdf) - 1)
            return torch.tensor([k])

        with torch.no_grad():
            idx, *_ = self.decode(1, draw)
        return tuple(int(k) for k in idx[0])

    def evaluate(self, indices: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        """Teacher-forced (log p, entropy) of each row of option indices, with gradient."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        _, logp, ent, _ = self.decode(len(idx), lambda i, p: idx[:, i])
        return logp, ent

    def greedy(self) -> tuple[tuple[int, ...], list[list[float]]]:
        """The policy's mode by greedy decoding, and the probabilities along that decode."""
        with torch.no_grad():
            idx, _, _, probs = self.decode(1, lambda i, p: p.argmax(1))
        return tuple(int(k) for k in idx[0]), [p[0].tolist() for p in probs]


def _number(
    name: str, value: Any, low: float, *, integer: bool = False, high: float = math.inf
) -> Any:
    """`low <= value <= high` (an integer when asked), or a SupernasError naming the option."""
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise SupernasError(f"enas: {name} must be {what} in [{low:g}, {high:g}], got {value!r}")
    return value


@register_trainer("enas")
class ENASTrainer(SupernetTrainer):
    """Shared weights on controller-sampled paths, alternated with REINFORCE on the controller.

    `reward_fn` (default: `val_accuracy`) is injectable for tests and experiments; it is not
    part of the config, so a resume does not check it.
    """

    name = "enas"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Constraint | None = None,
        controller_steps: int = 50,
        num_samples: int = 1,
        hidden: int = 64,
        controller_lr: float = 3.5e-4,
        tanh_constant: float | None = 2.5,
        temperature: float | None = 5.0,
        baseline_decay: float = 0.99,
        entropy_weight: float = 1e-4,
        max_resample: int = 100,
        reward_fn: RewardFn | None = None,
    ) -> None:
        super().__init__(recipe, seed, constraint)
        self.controller_steps = controller_steps
        self.num_samples = num_samples
        self.hidden = hidden
        self.controller_lr = controller_lr
        self.tanh_constant = tanh_constant
        self.temperature = temperature
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.max_resample = max_resample
        self.reward_fn = reward_fn or val_accuracy
        self.controller: Controller | None = None

    def options(self) -> dict[str, Any]:
        return {
            "controller_steps": self.controller_steps,
            "num_samples": self.num_samples,
            "hidden": self.hidden,
            "controller_lr": self.controller_lr,
            "tanh_constant": self.tanh_constant,
            "temperature": self.temperature,
            "baseline_decay": self.baseline_decay,
            "entropy_weight": self.entropy_weight,
            "max_resample": self.max_resample,
        }

    # -- the controller, usable without a supernet (tests, experiments) ----------------------
    def init_controller(self, space: SearchSpace) -> None:
        """A fresh seeded controller, its Adam and an unset baseline for `space`."""
        _number("controller_steps", self.controller_steps, 0, integer=True)
        _number("num_samples", self.num_samples, 1, integer=True)
        _number("hidden", self.hidden, 1, integer=True)
        _number("max_resample", self.max_resample, 1, integer=True)
        _number("controller_lr", self.controller_lr, 0)
        _number("entropy_weight", self.entropy_weight, 0)
        _number("baseline_decay", self.baseline_decay, 0, high=1)
        for name in ("tanh_constant", "temperature"):
            if getattr(self, name) is not None:
                _number(name, getattr(self, name), 0)
        self.space = space
        gen = torch.Generator().manual_seed(self.seed)
        self.controller = Controller(
            [len(c.options) for c in space.choices],
            self.hidden,
            self.tanh_constant,
            self.temperature,
            generator=gen,
        )
        self.controller_opt = torch.optim.Adam(self.controller.parameters(), lr=self.controller_lr)
        self.baseline: float | None = None
        self._warned = False

    def _ctrl(self) -> Controller:
        if self.controller is None:
            raise SupernasError("enas: call fit before derive/alphas")
        return self.controller

    def propose(self, rng: np.random.Generator) -> Arch:
        """An arch from the controller that meets the constraint (fallback: uniform, warned)."""
        ctrl = self._ctrl()
        for _ in range(self.max_resample):
            arch = self.space.decode(ctrl.sample(rng))
            if self.constraint is None or self.constraint(arch):
                return arch
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"enas: the controller proposed no arch meeting the constraints in "
                f"{self.max_resample} tries; using a uniform constrained sample instead",
                stacklevel=2,
            )
        return sample_constrained(self.space, rng, self.constraint)

    def controller_step(
        self, rng: np.random.Generator, reward_of: Callable[[Arch], float]
    ) -> dict[str, float]:
        """One REINFORCE update on `num_samples` proposals; returns the step's statistics."""
        ctrl = self._ctrl()
        archs = [self.propose(rng) for _ in range(self.num_samples)]
        rewards = [float(reward_of(a)) for a in archs]
        if not all(math.isfinite(r) for r in rewards):
            raise SupernasError(f"enas: reward became non-finite ({rewards}) for {archs}")
        mean = sum(rewards) / len(rewards)
        d = self.baseline_decay
        self.baseline = mean if self.baseline is None else d * self.baseline + (1 - d) * mean
        logp, ent = ctrl.evaluate([self.space.encode(a) for a in archs])
        adv = torch.tensor(rewards, dtype=logp.dtype) - self.baseline
        loss = -(adv * logp).mean() - self.entropy_weight * ent.mean()
        self.controller_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.controller_opt.step()
        return {"reward": mean, "entropy": float(ent.detach().mean())}

    def derive(self) -> Arch:
        """The controller's mode by greedy decoding (argmax at each step)."""
        idx, _ = self._ctrl().greedy()
        return self.space.decode(idx)

    def alphas(self) -> dict[str, list[float]]:
        """Per choice, the controller's option probabilities along the greedy decode."""
        _, probs = self._ctrl().greedy()
        return {c.name: p for c, p in zip(self.space.choices, probs, strict=True)}

    # -- loop hooks ------------------------------------------------------------------------
    def start(self, supernet: Supernet, data: Dataset) -> None:
        self.init_controller(supernet.space)
        self.supernet = supernet
        self.data = data
        self._epoch_t0: float | None = None

    def begin_epoch(self, epoch: int) -> None:
        self._epoch_t0 = time.perf_counter()  # the record's `seconds` then covers phase (b)

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        arch = self.propose(self.rng)
        logits, loss = self.backward_path(
            supernet, x, arch, lambda out: self.loss_fn(out, y), where
        )
        return path_stats(logits, loss, y)

    def _val_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Random val minibatches forever: passes reshuffled with the trainer's numpy rng."""
        split = "val" if len(self.data.x_val) else "train"
        x, y = self.data.split(split)
        bs = self.recipe.batch_size
        while True:
            order = torch.as_tensor(self.rng.permutation(len(x)))
            for i in range(0, len(x), bs):
                idx = order[i : i + bs]
                yield x[idx], y[idx]

    def controller_phase(self) -> dict[str, Any]:
        """Phase (b): `controller_steps` REINFORCE updates; the supernet is left unchanged."""
        supernet = self.supernet
        supernet.train()  # batch statistics: see the module docstring
        buffers = {k: b.clone() for k, b in supernet.named_buffers()}
        rewards, entropies = [], []
        batches = self._val_batches()
        try:
            for _ in range(self.controller_steps):
                xv, yv = next(batches)

                def reward_of(arch: Arch, xv: Tensor = xv, yv: Tensor = yv) -> float:
                    with torch.no_grad():
                        return self.reward_fn(supernet, arch, xv, yv)

                stats = self.controller_step(self.rng, reward_of)
                rewards.append(stats["reward"])
                entropies.append(stats["entropy"])
        finally:
            with torch.no_grad():
                for k, b in supernet.named_buffers():
                    b.copy_(buffers[k])
        return {
            "reward_mean": float(np.mean(rewards)) if rewards else None,
            "entropy": float(np.mean(entropies)) if entropies else None,
        }

    def epoch_record(self) -> dict[str, Any]:
        """Runs phase (b) (the loop calls this after the epoch's steps, before the checkpoint,
        so the checkpoint holds the controller after its update) and records the result."""
        stats = self.controller_phase()
        rec: dict[str, Any] = {
            **stats,
            "baseline": self.baseline,
            "arch": str(self.derive()),
            "alphas": self.alphas(),
        }
        if self._epoch_t0 is not None:  # the loop's `seconds` ends before phase (b): include it
            rec["seconds"] = time.perf_counter() - self._epoch_t0
        self._epoch_t0 = None
        return rec

    def extra_state(self) -> dict[str, Any]:
        ctrl = self._ctrl()
        return {
            "enas": {
                "controller": ctrl.state_dict(),
                "controller_optimizer": self.controller_opt.state_dict(),
                "baseline": self.baseline,
            }
        }

    def load_extra_state(self, ckpt: dict[str, Any]) -> None:
        if "enas" not in ckpt:
            raise SupernasError("enas: the checkpoint has no controller state")
        state = ckpt["enas"]
        self._ctrl().load_state_dict(state["controller"])
        self.controller_opt.load_state_dict(state["controller_optimizer"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
