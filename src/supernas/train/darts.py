"""DARTS (Liu et al. 2019): a continuous relaxation of the choices, searched by gradient.

Each choice gets a logit vector alpha; the supernet runs `forward_mixed` with softmax(alpha)
as the weights of every option at once. Per step, alpha takes one Adam step on a val-split
batch (so the arch is chosen for generalisation, not for fitting the train batch), then the
shared weights take one Recipe SGD step on a train batch. Order 2 replaces alpha's gradient
by the unrolled one: d/dalpha L_val(w - xi * dL_train/dw, alpha), its Hessian-vector
product approximated by a central finite difference as in the paper. After training, the
arch is the argmax of alpha per choice (for NB201: per edge, over all 5 ops, as xautodl).

`DifferentiableTrainer` holds what DARTS shares with GDAS and PC-DARTS (supernas.train.gdas,
supernas.train.pcdarts): alpha and its optimiser, val batches, the collapse check. It is a
`SupernetTrainer`, so epochs, checkpoints and exact resume are the shared loop's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from supernas.data import Dataset
from supernas.errors import SupernasError
from supernas.space import Arch, SearchSpace
from supernas.supernet import Supernet
from supernas.train.loop import SupernetTrainer, path_stats
from supernas.train.recipe import Recipe, check_loss
from supernas.train.registry import register_trainer

#: Options with no weights, per space: when they win most choices, DARTS has collapsed.
PARAMETER_FREE_OPS: dict[str, frozenset[str]] = {
    "nb201": frozenset({"none", "skip_connect", "avg_pool_3x3"}),
}

Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


#: A choice counts as won only when its top softmax probability is this much above uniform.
DECISIVE = 1.1


def collapsed(space: SearchSpace, alphas: Sequence[Tensor]) -> bool:
    """True when parameter-free ops hold the argmax on more than half of the choices.

    Why: DARTS' known failure (Zela et al. 2020; Chu et al. 2020): skip connections and
    pooling win the softmax early because they need no training, and the derived cell is
    poor. A choice whose top probability is under DECISIVE x uniform is not counted: near
    the 1e-3 initialisation the argmax is seed noise, and 3 of NB201's 5 ops are
    parameter-free, so an undecided cell would 'collapse' by chance in half of all runs.
    Spaces without parameter-free ops (resnet18) never collapse by this test.
    """
    free = PARAMETER_FREE_OPS.get(space.name)
    if not free:
        return False
    wins = 0
    for c, a in zip(space.choices, alphas, strict=True):
        p = a.detach().softmax(0)
        top = int(p.argmax())
        wins += str(c.options[top]) in free and float(p[top]) >= DECISIVE / len(p)
    return wins > len(space.choices) / 2


def _seeded(gen: torch.Generator) -> torch.Generator:
    """A generator seeded from `gen`: an independent stream that still follows the seed."""
    return torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=gen)))


def _cycle(data: Dataset, batch_size: int, gen: torch.Generator) -> Iterator[Batch]:
    """Val batches forever, reshuffled each pass (the val split is usually the smaller)."""
    while True:
        yield from data.batches("val", batch_size, shuffle=True, generator=gen)


def _zeros_for_none(grads: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, like, strict=True)]


def unrolled_arch_grads(
    supernet: Supernet,
    alphas: Sequence[Tensor],
    params: Sequence[Tensor],
    train: Batch,
    val: Batch,
    loss_fn: LossFn,
    xi: float,
    momentum: Sequence[Tensor | None] | None = None,
    weight_decay: float = 0.0,
    r: float = 1e-2,
) -> tuple[list[Tensor], Tensor]:
    """DARTS' second-order alpha gradient and the val loss at the virtual weights.

    w' = w - xi * (dL_train/dw + weight_decay * w + momentum), the weight optimiser's next
    step as the paper writes it (`momentum`: the SGD buffers times the momentum factor, None
    where there is none). Returns dalpha L_val(w', alpha) - xi * H v, with v = dL_val/dw'
    and H v = (dalpha L_train(w+) - dalpha L_train(w-)) / (2 eps), w+- = w +- eps v,
    eps = r / ||v||. The weights, and the BN buffers these virtual passes move, are
    restored exactly before returning.
    """
    x, y = train
    xv, yv = val
    soft = [a.softmax(0) for a in alphas]
    saved = [p.detach().clone() for p in params]
    buffers = [b.detach().clone() for b in supernet.buffers()]
    try:
        loss = loss_fn(supernet.forward_mixed(x, [s.detach() for s in soft]), y)
        g = _zeros_for_none(torch.autograd.grad(loss, params, allow_unused=True), params)
        with torch.no_grad():
            for i, (p, gi) in enumerate(zip(params, g, strict=True)):
                step = gi + weight_decay * p
                if momentum is not None and momentum[i] is not None:
                    step = step + momentum[i]
                p.sub_(xi * step)
        val_loss = loss_fn(supernet.forward_mixed(xv, soft), yv)
        grads = torch.autograd.grad(val_loss, [*alphas, *params], allow_unused=True)
        dalpha = _zeros_for_none(grads[: len(alphas)], alphas)
        v = _zeros_for_none(grads[len(alphas) :], params)
        norm = torch.cat([t.reshape(-1) for t in v]).norm() if v else torch.zeros(())
        if not float(norm) > 0:  # no weight gradient: the implicit term vanishes
            return dalpha, val_loss.detach()
        eps = r / norm
        diff: list[Tensor] = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, w0, vi in zip(params, saved, v, strict=True):
                    p.copy_(w0 + sign * eps * vi)
            lt = loss_fn(supernet.forward_mixed(x, [a.softmax(0) for a in alphas]), y)
            ga = _zeros_for_none(torch.autograd.grad(lt, list(alphas), allow_unused=True), alphas)
            diff = ga if not diff else [d - e for d, e in zip(diff, ga, strict=True)]
        hv = [d / (2 * eps) for d in diff]
        return [da - xi * h for da, h in zip(dalpha, hv, strict=True)], val_loss.detach()
    finally:
        with torch.no_grad():
            for p, w0 in zip(params, saved, strict=True):
                p.copy_(w0)
            for b, b0 in zip(supernet.buffers(), buffers, strict=True):
                b.copy_(b0)


@contextmanager
def weights_frozen(module: torch.nn.Module) -> Iterator[None]:
    """Within it, `module`'s parameters record no graph for their own gradients.

    Why: a first-order alpha step wants dLoss/dalpha only. With the weights frozen, autograd
    does not keep the inputs of every conv and linear layer (needed only for weight
    gradients), so the step holds less than a weight step does; the alpha gradient is the same.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class DifferentiableTrainer(SupernetTrainer):
    """Shared weights plus one alpha per choice, fitted alternately (train / val batches).

    Subclasses say how alpha becomes `forward_mixed` weights (`mixed_weights`) and may
    replace the alpha gradient (`arch_grads`). The epochs, the weight step, checkpoints and
    resume are `SupernetTrainer`'s; this class adds alpha's step before each weight step
    and keeps alpha, its optimiser and the val/sample generators in the checkpoint. The
    constructor only stores arguments. Each history record also holds the derived `arch`
    (string), `alphas` (softmax per choice), `collapse` and `arch_loss`, so an anytime
    evaluation can read what the search would return after every epoch.
    """

    name = ""

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Callable[[Arch], bool] | None = None,
        arch_lr: float = 3e-4,
        arch_weight_decay: float = 1e-3,
    ) -> None:
        if constraint is not None:
            raise SupernasError(
                f"{self.name} does not support params/FLOPs constraints (it moves a softmax "
                "over all options, not sampled paths); use spos or random_ws, or constrain "
                "the search stage instead"
            )
        super().__init__(recipe, seed, constraint)
        self.arch_lr = arch_lr
        self.arch_weight_decay = arch_weight_decay
        self._space: SearchSpace | None = None
        self._alphas: list[Tensor] = []

    # -- what subclasses change -----------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The trainer's own hyperparameters: part of the config a resume checks."""
        return {"arch_lr": self.arch_lr, "arch_weight_decay": self.arch_weight_decay}

    def init_alphas(self, space: SearchSpace, gen: torch.Generator) -> list[Tensor]:
        """1e-3 * N(0, 1) logits per choice: near-uniform, ties broken by the seed (DARTS)."""
        return [1e-3 * torch.randn(len(c.options), generator=gen) for c in space.choices]

    def start_epoch(self, epoch: int) -> dict[str, Any]:
        """Per-epoch set-up (GDAS's temperature); returns extra keys for the record."""
        return {}

    def mixed_weights(self, alphas: Sequence[Tensor], *, arch_step: bool) -> list[Tensor]:
        """The `forward_mixed` weights; `arch_step` says whether they must carry alpha's grad."""
        raise NotImplementedError

    def mixed_forward(
        self, supernet: Supernet, x: Tensor, weights: Sequence[Tensor], *, arch_step: bool
    ) -> Tensor:
        """The supernet's mixed forward with `weights`; PC-DARTS adds its own arguments.

        `arch_step` as in `mixed_weights`: on the weight step nothing arch-side needs a grad.
        """
        return supernet.forward_mixed(x, weights)

    def arch_grads(self, step: _Step) -> tuple[list[Tensor], Tensor]:
        """dLoss_val/dalpha at the current weights (first order) and the val loss."""
        xv, yv = step.val
        weights = self.mixed_weights(step.alphas, arch_step=True)
        with weights_frozen(step.supernet):
            out = self.mixed_forward(step.supernet, xv, weights, arch_step=True)
            loss = step.loss_fn(out, yv)
            grads = torch.autograd.grad(loss, step.alphas, allow_unused=True)
        return _zeros_for_none(grads, step.alphas), loss.detach()

    # -- results --------------------------------------------------------------------------
    def _fitted(self) -> tuple[SearchSpace, list[Tensor]]:
        if self._space is None or not self._alphas:
            raise SupernasError(f"{self.name}: call fit before derive/alphas")
        return self._space, self._alphas

    def derive(self) -> Arch:
        """The arch of the largest alpha per choice (NB201: the best op per edge)."""
        space, alphas = self._fitted()
        return space.decode([int(a.argmax()) for a in alphas])

    def alphas(self) -> dict[str, list[float]]:
        """softmax(alpha) per choice name: the relaxed arch, for reports and anytime eval."""
        space, alphas = self._fitted()
        return {
            c.name: a.detach().softmax(0).cpu().tolist()
            for c, a in zip(space.choices, alphas, strict=True)
        }

    # -- SupernetTrainer hooks ------------------------------------------------------------
    def arch_parameters(self) -> list[Tensor]:
        """Every tensor the arch optimiser moves (alpha; PC-DARTS adds its edge betas)."""
        return self._alphas

    def start(self, supernet: Supernet, data: Dataset) -> None:
        """Alpha, its Adam, and the val/sample generators, all drawn from the seed.

        The draws come from the loop's train-shuffle generator before its first use (val,
        sample, then alpha), so a seed fixes the whole run.
        """
        space = supernet.space
        device = self.params[0].device if self.params else torch.device("cpu")
        self._data = data
        self.val_gen, self.sample_gen = _seeded(self.gen), _seeded(self.gen)
        self._space = space
        self._alphas = [a.to(device).requires_grad_() for a in self.init_alphas(space, self.gen)]
        self.arch_opt = torch.optim.Adam(
            self.arch_parameters(),
            lr=self.arch_lr,
            betas=(0.5, 0.999),
            weight_decay=self.arch_weight_decay,
        )
        self.epochs = self.recipe.epochs
        self._warned = False

    def begin_epoch(self, epoch: int) -> None:
        """A fresh val cycle (a partly used pass is dropped, so a resume replays it), tau."""
        self._val = _cycle(self._data, self.recipe.batch_size, self.val_gen)
        self._arch_sum, self._arch_steps = 0.0, 0
        self._epoch = epoch
        self._epoch_extra = self.start_epoch(epoch)

    def train_step(
        self, supernet: Supernet, x: Tensor, y: Tensor, where: str
    ) -> tuple[float, int, int]:
        """One alpha step on the next val batch, then the weights' backward on (x, y).

        The arch step only calls autograd.grad, so it leaves the weights' .grad untouched
        and the loop's zero_grad before this hook is still the weight step's.
        """
        self.update_arch(supernet, x, y, where)
        weights = [w.detach() for w in self.mixed_weights(self._alphas, arch_step=False)]
        logits = self.mixed_forward(supernet, x, weights, arch_step=False)
        loss = self.loss_fn(logits, y)
        check_loss(loss, where)
        loss.backward()
        return path_stats(logits, loss, y)

    def update_arch(self, supernet: Supernet, x: Tensor, y: Tensor, where: str) -> None:
        """One Adam step of the arch parameters on the next val batch (PC-DARTS may skip it)."""
        step = _Step(
            supernet,
            self._alphas,
            self.params,
            self.opt,
            self.loss_fn,
            (x, y),
            next(self._val),
            where,
        )
        grads, arch_loss = self.arch_grads(step)
        check_loss(arch_loss, f"{where} (alpha step)")
        self.arch_opt.zero_grad(set_to_none=True)
        for a, g in zip(self.arch_parameters(), grads, strict=True):
            a.grad = g
        self.arch_opt.step()
        self._arch_sum += arch_loss.item()
        self._arch_steps += 1

    def extra_state(self) -> dict[str, Any]:
        return {
            "alphas": [a.detach().cpu() for a in self.arch_parameters()],
            "arch_optimizer": self.arch_opt.state_dict(),
            "arch_rng": {"val": self.val_gen.get_state(), "sample": self.sample_gen.get_state()},
        }

    def load_extra_state(self, ckpt: dict[str, Any]) -> None:
        saved = ckpt["alphas"]
        params = self.arch_parameters()
        if len(saved) != len(params):
            raise SupernasError(
                f"checkpoint holds {len(saved)} arch tensors, {self.name} needs {len(params)}"
            )
        with torch.no_grad():
            for a, s in zip(params, saved, strict=True):
                a.copy_(s)
        self.arch_opt.load_state_dict(ckpt["arch_optimizer"])
        self.val_gen.set_state(ckpt["arch_rng"]["val"])
        self.sample_gen.set_state(ckpt["arch_rng"]["sample"])

    def epoch_record(self) -> dict[str, Any]:
        """arch_loss, tau etc., the derived arch, alpha and the collapse check (warned once)."""
        space = self._fitted()[0]
        collapse = collapsed(space, self._alphas)
        rec = {
            "arch_loss": self._arch_sum / self._arch_steps if self._arch_steps else None,
            **self._epoch_extra,
            "arch": str(self.derive()),
            "alphas": self.alphas(),
            "collapse": collapse,
        }
        if collapse and not self._warned:
            self._warned = True
            free = ", ".join(sorted(PARAMETER_FREE_OPS.get(space.name, ())))
            warnings.warn(
                f"DARTS collapse ({self.name}, epoch {self._epoch + 1}): parameter-free ops "
                f"({free}) hold the argmax on more than half of the choices; the derived "
                f"arch {rec['arch']} is likely poor. Stop earlier (the history keeps every "
                "epoch's arch) or try another method",
                stacklevel=4,  # the caller of fit
            )
        return rec


@dataclass
class _Step:
    """What an alpha step may look at: the supernet, alpha, the weights and both batches."""

    supernet: Supernet
    alphas: list[Tensor]
    params: list[Tensor]
    opt: torch.optim.Optimizer
    loss_fn: LossFn
    train: Batch
    val: Batch
    where: str


@register_trainer("darts")
class DARTSTrainer(DifferentiableTrainer):
    """DARTS: softmax(alpha) mixes every option; alpha by Adam on val, weights by SGD."""

    name = "darts"

    def __init__(
        self,
        recipe: Recipe | None = None,
        seed: int = 0,
        constraint: Callable[[Arch], bool] | None = None,
        order: int = 1,
        arch_lr: float = 3e-4,
        arch_weight_decay: float = 1e-3,
    ) -> None:
        if order not in (1, 2):
            raise SupernasError(
                f"darts: order must be 1 (first order) or 2 (unrolled), not {order}"
            )
        super().__init__(recipe, seed, constraint, arch_lr, arch_weight_decay)
        self.order = order

    def options(self) -> dict[str, Any]:
        return {"order": self.order, **super().options()}

    def mixed_weights(self, alphas: Sequence[Tensor], *, arch_step: bool) -> list[Tensor]:
        return [a.softmax(0) for a in alphas]

    def arch_grads(self, step: _Step) -> tuple[list[Tensor], Tensor]:
        if self.order == 1:
            return super().arch_grads(step)
        group = step.opt.param_groups[0]
        mom = float(group.get("momentum", 0.0))
        bufs = [step.opt.state.get(p, {}).get("momentum_buffer") for p in step.params]
        return unrolled_arch_grads(
            step.supernet,
            step.alphas,
            step.params,
            step.train,
            step.val,
            step.loss_fn,
            xi=float(group["lr"]),
            momentum=[None if b is None else mom * b for b in bufs],
            weight_decay=float(group.get("weight_decay", 0.0)),
        )
