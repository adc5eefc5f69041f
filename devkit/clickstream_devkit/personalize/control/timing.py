"""How long the local Personalize's resource transitions take.

The real service takes minutes to create a dataset group and hours to train; a stand-in
that answered instantly would hide every "not ACTIVE yet" bug in a client, and one that
took minutes would make tests useless. So each step (PENDING → IN_PROGRESS,
IN_PROGRESS → ACTIVE, STOPPING → STOPPED, an import job's or a training's minimum time
in IN_PROGRESS) takes `step_seconds`: 10 s by default, 0.2 s with ``--fast``, or what
``--transition-seconds`` says. A training also lasts as long as its computation does.
Deleting takes two steps (DELETE PENDING, DELETE IN_PROGRESS). A solution takes none: it
trains nothing and is ACTIVE when CreateSolution answers, as on the real service (see
`solutions_api`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEFAULT_STEP_SECONDS: Final = 10.0
FAST_STEP_SECONDS: Final = 0.2


@dataclass(frozen=True, slots=True)
class Timing:
    step_seconds: float = DEFAULT_STEP_SECONDS

    @classmethod
    def from_options(cls, *, fast: bool, transition_seconds: float | None) -> Timing:
        """``--transition-seconds`` wins over ``--fast``; neither gives the realistic default."""
        if transition_seconds is not None:
            if transition_seconds < 0:
                raise ValueError("--transition-seconds must be >= 0")
            return cls(transition_seconds)
        return cls(FAST_STEP_SECONDS if fast else DEFAULT_STEP_SECONDS)
