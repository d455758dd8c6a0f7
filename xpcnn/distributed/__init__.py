"""Several processes training one model, data-parallel: MPI (mpi4py) for host arrays, NCCL for CuPy.

    mpiexec -n 4 python my_script.py                      # every process runs the same script
    comm = xpcnn.distributed.init()                       # rank, size, local_rank
    model.to(comm.device("cuda"))                         # GPU local_rank of its node
    model.fit(x, y, batch_size=256, communicator=comm)    # the same x, y and seed everywhere

* :mod:`.communicator`: :func:`init` and the :class:`Communicator` (ranks, collectives on one
  flat buffer, the check that every rank got the same settings, a failing rank ending the job);
* :mod:`.world`: the engines, the only module that imports mpi4py and NCCL (lazily);
* :mod:`.data_parallel`: one synchronous step, each rank's share of the batch and one fused
  allreduce, which ``fit(communicator=...)`` runs.

Importing this package imports neither mpi4py nor CuPy.
"""

from .communicator import Communicator, config_difference, digest, init, on_every_rank, say, shard

__all__ = ["Communicator", "init", "shard", "on_every_rank", "say", "digest", "config_difference"]
