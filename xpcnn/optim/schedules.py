"""Learning-rate schedules: the optimizer's rate as a function of where training is.

A schedule gives the rate of every step from the base rate ``η`` (the optimizer's
``learning_rate``), the optimizer's step count ``k`` (0 for the first step ever; kept in
checkpoints) and the number of finished epochs ``e`` (``model.epoch``, also kept)::

    StepDecay(every, gamma)   η · γ^⌊e / every⌋                                per epoch (PyTorch's StepLR)
    Cosine(epochs, min_lr)    η_min + (η - η_min) · (1 + cos(π min(e, T) / T)) / 2   per epoch (CosineAnnealingLR;
                                                                          then held at η_min after T epochs)
    Warmup(steps)             η · min(1, (k + 1) / W)                          per step (PyTorch's LinearLR from 1/W)
    Chain(a, b, ...)          η · Π (rate_i / η)                               the product of the factors

The epoch schedules change the rate between epochs only, as PyTorch's do when
``scheduler.step()`` is called once an epoch; the warm-up changes it every step. ``Chain(Warmup(500),
Cosine(30))`` is a linear warm-up over the first 500 steps on top of a cosine over 30 epochs.

A schedule holds no state: the rate is a pure function of ``(η, k, e)``, so a resumed run,
whose checkpoint keeps ``k``, ``e`` and the schedule, takes exactly the steps of an
uninterrupted one. Every schedule writes itself as the spec the CLI reads (``--schedule``),
and :func:`parse` reads it back; checkpoints store that spec::

    SPEC  := "none" | ITEM ("," ITEM)*   each kind at most once; "none": no schedule
    ITEM  := "step:" EVERY [":" GAMMA]   EVERY epochs (integer >= 1), GAMMA in (0, 1], default 0.1
           | "cosine" [":" EPOCHS [":" MIN_LR]]   EPOCHS >= 1, default: the last epoch of the fit; MIN_LR >= 0
           | "warmup:" STEPS             STEPS optimizer steps (integer >= 1)
"""

from __future__ import annotations

import math

from ..errors import ConfigError, ConfigTypeError
from .._checks import integer, number


class ZeroRateWarning(UserWarning):
    """``fit`` follows a schedule that gives learning rate 0 from its first step: the fit would change nothing."""


#: The largest epoch or step count a schedule takes (``10**15``): the rates are floats of ``k / W`` and ``e / T``.
MAX_COUNT = 10**15


class Schedule:
    """Base: ``learning_rate(base, step, epoch)``; see the module for the formulas."""

    kind = ""

    def factor(self, base: float, step: int, epoch: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def learning_rate(self, base: float, step: int, epoch: int) -> float:
        """The rate of optimizer step ``step`` (0-based) in the epoch after ``epoch`` finished ones."""
        return base * self.factor(base, step, epoch)

    def resolve(self, last_epoch: int) -> "Schedule":
        """This schedule with every length left open (``Cosine()``) fixed to end at ``last_epoch``."""
        return self

    def check_base(self, base: float) -> None:
        """A :class:`ConfigError` if this schedule makes no sense for the base rate ``base`` (``fit`` asks)."""

    def spec(self) -> str:
        """The ``--schedule`` text that :func:`parse` reads back (checkpoints and data-parallel ranks use it)."""
        raise ConfigError(f"{type(self).__name__}: a schedule needs a spec() that xpcnn.parse_schedule reads back "
                          f"to be saved in a checkpoint or shared between ranks")

    def parts(self) -> "tuple[Schedule, ...]":
        return (self,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(self.spec())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class StepDecay(Schedule):
    """``η · gamma^⌊e / every⌋``: the rate times ``gamma`` every ``every`` epochs (PyTorch's StepLR)."""

    kind = "step"

    def __init__(self, every: int, gamma: float = 0.1) -> None:
        self.every = integer("StepDecay", "every", every, minimum=1, maximum=MAX_COUNT)
        self.gamma = number("StepDecay", "gamma", gamma, low=0.0, high=1.0, low_open=True)

    def factor(self, base, step, epoch):
        return self.gamma ** (epoch // self.every)

    def spec(self) -> str:
        return f"step:{self.every}:{self.gamma!r}"


class Cosine(Schedule):
    """``η_min + (η - η_min)(1 + cos(π e / T)) / 2`` for ``e ≤ T`` epochs, then ``η_min`` (CosineAnnealingLR).

    ``epochs=None`` lets :meth:`Sequential.fit` set ``T`` to the last epoch it will run.
    """

    kind = "cosine"

    def __init__(self, epochs: "int | None" = None, min_lr: float = 0.0) -> None:
        self.epochs = None if epochs is None else integer("Cosine", "epochs", epochs, minimum=1, maximum=MAX_COUNT)
        self.min_lr = number("Cosine", "min_lr", min_lr, low=0.0)

    def factor(self, base, step, epoch):
        if self.epochs is None:
            raise ConfigError("Cosine: the number of epochs is not set; pass Cosine(epochs=T) or give it to fit")
        floor = self.min_lr / base
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * min(epoch, self.epochs) / self.epochs)) / 2.0

    def resolve(self, last_epoch):
        return self if self.epochs is not None else Cosine(max(1, last_epoch), self.min_lr)

    def check_base(self, base):
        """``min_lr`` above the base rate would anneal upwards: refused (a rate, not Keras's fraction ``alpha``)."""
        if self.min_lr > base:
            raise ConfigError(f"Cosine: min_lr {self.min_lr:g} is above the base learning rate {base:g}, so the rate "
                              f"would rise; min_lr is a learning rate, not a fraction of it")

    def spec(self) -> str:
        if self.epochs is None:
            return "cosine" if self.min_lr == 0.0 else f"cosine::{self.min_lr!r}"
        return f"cosine:{self.epochs}:{self.min_lr!r}"


class Warmup(Schedule):
    """``η · min(1, (k + 1) / steps)``: a linear ramp over the first ``steps`` optimizer steps."""

    kind = "warmup"

    def __init__(self, steps: int) -> None:
        self.steps = integer("Warmup", "steps", steps, minimum=1, maximum=MAX_COUNT)

    def factor(self, base, step, epoch):
        return min(1.0, (step + 1) / self.steps)

    def spec(self) -> str:
        return f"warmup:{self.steps}"


class Chain(Schedule):
    """The product of the schedules' factors: ``Chain(Warmup(500), Cosine(30))``."""

    kind = "chain"

    def __init__(self, *schedules: Schedule) -> None:
        flat: "list[Schedule]" = []
        for i, s in enumerate(schedules):
            if not isinstance(s, Schedule):
                raise ConfigTypeError(f"Chain: argument {i} is {s!r}, not a schedule (StepDecay, Cosine, Warmup)")
            flat.extend(s.parts())
        if not flat:
            raise ConfigError("Chain: needs at least one schedule")
        kinds = [s.kind for s in flat]
        twice = sorted({k for k in kinds if kinds.count(k) > 1})
        if twice:
            raise ConfigError(f"Chain: each kind of schedule at most once, got {', '.join(twice)} twice")
        self.schedules = tuple(flat)

    def factor(self, base, step, epoch):
        f = 1.0
        for s in self.schedules:
            f *= s.factor(base, step, epoch)
        return f

    def resolve(self, last_epoch):
        return Chain(*(s.resolve(last_epoch) for s in self.schedules))

    def check_base(self, base):
        for s in self.schedules:
            s.check_base(base)

    def parts(self):
        return self.schedules

    def spec(self) -> str:
        return ",".join(s.spec() for s in self.schedules)

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.schedules))})"


def check_schedule(schedule: object, who: str = "fit") -> "Schedule | None":
    if schedule is not None and not isinstance(schedule, Schedule):
        raise ConfigTypeError(f"{who}: schedule must be an xpcnn schedule (StepDecay, Cosine, Warmup, Chain) or "
                              f"None, got {schedule!r}")
    return schedule


def saved_spec(schedule: Schedule) -> str:
    """``schedule``'s spec, checked to read back as the same schedule (what a checkpoint stores), or a ConfigError."""
    spec = None
    try:
        spec = schedule.spec()
        same = isinstance(spec, str) and parse_schedule(spec) == schedule
    except ConfigError:  # no spec (Schedule.spec), or one parse does not read
        same = False
    if not same:
        raise ConfigError(f"the schedule {schedule!r} cannot be saved: its spec {spec!r} does not read back as it "
                          f"(only StepDecay, Cosine, Warmup and Chain can; set model.schedule = None to save without)")
    return spec


def _item(text: str) -> Schedule:
    kind, *args = text.split(":")

    def arg(i: int, convert, what: str):
        if i >= len(args) or args[i] == "":
            return None
        try:
            return convert(args[i])
        except ValueError:
            noun = "an integer" if convert is int else "a number"
            raise ConfigError(f"{what} must be {noun}, got {args[i]!r}") from None

    arity = {"step": (1, 2), "cosine": (0, 2), "warmup": (1, 1)}
    if kind not in arity:
        raise ConfigError(f"schedule {text!r}: unknown kind {kind!r}; expected step:EVERY[:GAMMA], "
                          f"cosine[:EPOCHS[:MIN_LR]] or warmup:STEPS")
    low, high = arity[kind]
    if not low <= len(args) <= high or (low and args[0] == ""):
        forms = {"step": "step:EVERY[:GAMMA]", "cosine": "cosine[:EPOCHS[:MIN_LR]]", "warmup": "warmup:STEPS"}
        raise ConfigError(f"schedule {text!r}: expected {forms[kind]}")
    try:
        if kind == "step":
            gamma = arg(1, float, "GAMMA")
            return StepDecay(arg(0, int, "EVERY"), 0.1 if gamma is None else gamma)
        if kind == "cosine":
            min_lr = arg(1, float, "MIN_LR")
            return Cosine(arg(0, int, "EPOCHS"), 0.0 if min_lr is None else min_lr)
        return Warmup(arg(0, int, "STEPS"))
    except ConfigError as exc:
        raise ConfigError(f"schedule {text!r}: {exc}") from None


def parse_schedule(spec: str) -> Schedule:
    """The schedule a spec names (grammar in the module docstring, without ``none``); a :class:`ConfigError`
    naming the bad part."""
    if not isinstance(spec, str):
        raise ConfigTypeError(f"schedule spec must be a string, got {spec!r}")
    parts = [part.strip() for part in spec.split(",")] if spec.strip() else []
    if not parts:
        raise ConfigError("schedule: empty spec; expected e.g. step:10:0.1, cosine or warmup:500,cosine")
    if len(parts) > 1 and "" in parts:
        raise ConfigError(f"schedule {spec!r}: an empty item; expected items such as step:10:0.1, cosine or "
                          f"warmup:500 joined by commas")
    if len(parts) > 1 and "none" in parts:
        raise ConfigError(f"schedule {spec!r}: 'none' (no schedule) stands alone, not in a list")
    items = [_item(part) for part in parts]
    return items[0] if len(items) == 1 else Chain(*items)


def parse(spec: str) -> "Schedule | None":
    """``--schedule``'s reading: ``"none"`` is no schedule (``None``), anything else :func:`parse_schedule`."""
    if isinstance(spec, str) and spec.strip() == "none":
        return None
    return parse_schedule(spec)
