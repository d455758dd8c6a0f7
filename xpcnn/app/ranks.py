"""What ``train.py --distributed`` adds to the command line: the job, its data, its errors.

Every rank runs the whole script; rank 0 alone prints, writes files and tests. These helpers
are the few places where a rank's part differs, kept apart from :mod:`xpcnn.app.run`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

from ..distributed import say
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..distributed import Communicator
    from .settings import Settings

#: Settings a rank may hold for itself (the data folder may differ from node to node).
LOCAL_SETTINGS = ("data_dir",)


class UsageError(ConfigError):
    """A command line that cannot work (exit status 2)."""


def communicator(distributed: bool) -> "Communicator | None":
    """The MPI job's communicator for ``--distributed``; a usage error for mpiexec without it."""
    from ..distributed.world import launched_size

    if not distributed:
        if launched_size() > 1:
            raise UsageError(f"started as one of {launched_size()} processes (mpiexec) without --distributed: "
                             f"each would train alone and write the same files; add --distributed")
        return None
    from .. import distributed as dist

    return dist.init()


def agree(settings: "Settings", explicit_batch: "int | None", comm: "Communicator | None") -> "Settings":
    """The run's settings in a job of several ranks: rank 0 alone prints, the batch divides, all agree.

    A batch size from the recipe or the checkpoint grows to a multiple of the ranks (rank 0 says
    so); an explicit ``--batch-size`` that does not divide is left for ``fit`` to refuse in one
    line. Then the ranks compare their settings and stop, naming the first that differs.
    """
    if comm is None:
        return settings
    size, batch = comm.size, settings.batch_size
    if explicit_batch is None and batch % size:
        settings = dataclasses.replace(settings, batch_size=-(-batch // size) * size)
        if comm.is_root:
            say(f"note: the global batch {batch} does not divide by {size} processes; training with batch "
                f"{settings.batch_size} (choose with --batch-size)")
    shared = {key: value for key, value in settings.saved().items() if key not in LOCAL_SETTINGS}
    comm.check_same({**shared, "epochs": settings.epochs, "resume": settings.resume}, "setting")
    return settings if comm.is_root else dataclasses.replace(settings, quiet=True)


def load_in_turn(load: Callable, settings: "Settings", comm: "Communicator | None"):
    """``load(settings)``'s ``(data, settings, fell back to the sample)``, rank 0 first.

    Rank 0 loads (downloads, or falls back to the sample and says so); the others then load the
    data set it chose, from the files it left, quietly.
    """
    if comm is None or comm.size == 1:
        return load(settings)
    loaded = load(settings) if comm.is_root else None
    dataset, fallback = comm.broadcast_object((loaded[1].dataset, loaded[2]) if loaded else None)
    if comm.is_root:
        return loaded
    from ..datasets import load_dataset

    settings = dataclasses.replace(settings, dataset=dataset)
    return load_dataset(dataset, data_dir=settings.data_dir, progress=False), settings, fallback


def describe(comm: "Communicator | None") -> str:
    """``"; 2 processes (mpi)"`` for the run's first line (nothing for one process)."""
    return "" if comm is None else f"; {comm.size} processes ({comm.backend})"


def report(comm: "Communicator | None", text: str) -> None:
    """``error: <text>`` on stderr, naming the rank in a job of several."""
    where = f"rank {comm.rank} of {comm.size}: " if comm is not None and comm.size > 1 else ""
    say(f"error: {where}{text}")


def end(comm: "Communicator | None", status: int, exc: "BaseException | None" = None) -> int:
    """``status``, after ending every other rank of the job with it (they would wait for this one forever).

    An error every rank raised at the same point (:func:`xpcnn.distributed.on_every_rank`) ends
    each rank by itself.
    """
    if comm is not None and comm.size > 1 and not getattr(exc, "on_every_rank", False):
        comm.abort(status)
    return status
