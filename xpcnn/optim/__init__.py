"""How parameters move: optimizers (``P ← P - η g`` and its refinements) and learning-rate schedules.

* :mod:`.optimizers`: :class:`SGD` (with momentum) and :class:`Adam`, one update rule each;
* :mod:`.schedules`: :class:`StepDecay`, :class:`Cosine`, :class:`Warmup` and :class:`Chain`,
  each a factor on the base rate from the step count and the finished epochs.
"""

from .optimizers import OPTIMIZERS, SGD, Adam, Optimizer, check_optimizer, get_optimizer
from .schedules import (Chain, Cosine, Schedule, StepDecay, Warmup, ZeroRateWarning, check_schedule,
                        parse_schedule)

__all__ = ["Optimizer", "SGD", "Adam", "OPTIMIZERS", "get_optimizer", "check_optimizer",
           "Schedule", "StepDecay", "Cosine", "Warmup", "Chain", "parse_schedule", "check_schedule",
           "ZeroRateWarning"]
