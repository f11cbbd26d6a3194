"""Random search with weight sharing (Li & Talwalkar 2019): the baseline DARTS-style
methods must beat.

Its supernet training is one uniformly random single path per batch, which is SPOS's step
(and, like SPOS, honours params/FLOPs constraints by uniform constrained sampling), so the
trainer is SPOS under its own name: its checkpoints say 'random_ws' and a resume refuses an
spos checkpoint. The method has no architecture parameters: the search stage (random
search over the trained supernet, `supernas search --strategy random`) picks the arch, so
`derive()` returns None.
"""

from __future__ import annotations

from supernas.train.registry import register_trainer
from supernas.train.spos import SPOSTrainer


@register_trainer("random_ws")
class RandomWSTrainer(SPOSTrainer):
    """Uniform single-path weight sharing; the arch comes from the search stage."""

    name = "random_ws"

    def derive(self) -> None:
        """None: random_ws learns no arch distribution, the search stage picks the arch."""
        return None
