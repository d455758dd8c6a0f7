"""What each rank runs in the tests of tests/distributed/test_distributed_mpi.py (started by ``mpiexec``).

    python distributed_worker.py fit OUT.npz N BATCH EPOCHS [DEVICE [WORKERS]]
                                                              train SGD, momentum and Adam (float64) on
                                                              N samples; rank 0 writes parameters and logs
    python distributed_worker.py unseeded OUT                 every rank builds its own random weights;
                                                              each writes OUT.<rank>.npz (before, after)
    python distributed_worker.py buffers OUT                  a layer with a running mean (as BatchNorm's);
                                                              each rank writes OUT.<rank>.npy
    python distributed_worker.py schedule OUT                 warm-up + cosine and early stopping; each rank
                                                              writes OUT.<rank>.npz (every step's rate, ...)
    python distributed_worker.py nccl OUT                      the NCCL branch with fake_nccl.py's stand-in;
                                                              each rank writes OUT.<rank>.npz
    python distributed_worker.py raise                        rank 1 raises in its second batch
    python distributed_worker.py mismatch                     rank 1 asks for another batch size
    python distributed_worker.py forever                      trains until interrupted (rank 0 prints "ready")

The same functions, called in-process with ``communicator=None``, give the one-process reference.
"""

from __future__ import annotations

import sys

import numpy as np

import xpcnn as xc

OPTIMIZERS = {
    "sgd": lambda: xc.SGD(0.5),
    "momentum": lambda: xc.SGD(0.1, momentum=0.9),
    "adam": lambda: xc.Adam(0.01),
}


def data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 8, 8))
    y = np.eye(3)[rng.integers(0, 3, n)]
    return x, y


def network(dtype: str = "float64") -> xc.Sequential:
    return xc.Sequential([
        xc.Convolutional((1, 8, 8), 3, 2, padding=1, bias="tied"), xc.ReLU(), xc.MaxPool2D(2),
        xc.Flatten(), xc.Dense(32, 8), xc.Tanh(), xc.Dropout(0.25), xc.Dense(8, 3), xc.Softmax(),
    ], seed=0, dtype=dtype)


def train(communicator, n: int, batch: int, epochs: int, device: str = "cpu", workers: int = 1) -> dict:
    """``{"<optimizer>/<layer>/<param>": array, "<optimizer>/loss": per-epoch losses, ...}``."""
    x, y = data(n)
    out = {}
    for name, make in OPTIMIZERS.items():
        model = network().to(communicator.device(device) if communicator is not None else device)
        history = model.fit(x, y, loss="categorical_cross_entropy", epochs=epochs, batch_size=batch,
                            optimizer=make(), seed=1, validation_data=(x[:7], y[:7]), communicator=communicator,
                            workers=workers)
        for i, layer in enumerate(model.layers):
            for key, value in layer.params.items():
                out[f"{name}/{i}/{key}"] = xc.to_numpy(value)
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            out[f"{name}/{key}"] = np.array(history[key])
    return out


class RunningMean(xc.Layer):
    """The identity, keeping a running mean of its inputs in ``buffers`` as BatchNorm keeps its statistics."""

    def __init__(self, features: int):
        super().__init__()
        self.buffers = {"mean": np.zeros(features)}

    def forward(self, x, training=True):
        if training:
            self.buffers["mean"] = 0.9 * self.buffers["mean"] + 0.1 * np.mean(x, axis=0)
        return x

    def backward(self, output_gradient, learning_rate=None):
        return output_gradient


def running_mean(communicator) -> np.ndarray:
    """The buffer after two epochs of batch 10 on 23 samples (the last batch: 3)."""
    rng = np.random.default_rng(0)
    x, y = rng.random((23, 4)), np.eye(2)[rng.integers(0, 2, 23)]
    model = xc.Sequential([xc.Dense(4, 4), RunningMean(4), xc.Dense(4, 2), xc.Sigmoid()], seed=0, dtype="float64")
    model.fit(x, y, epochs=2, batch_size=10, communicator=communicator)
    return model.layers[1].buffers["mean"]


def scheduled(communicator) -> dict:
    """Adam under ``Chain(Warmup(5), Cosine())`` with early stopping (patience 1, a min_delta no epoch beats,
    so it stops after epoch 2 and restores epoch 1): every step's rate, the history, the weights."""
    x, y = data(37)
    model = network()
    rates = []
    stopper = xc.EarlyStopping(patience=1, min_delta=10.0)
    model.fit(x, y, loss="categorical_cross_entropy", epochs=4, batch_size=8, optimizer=xc.Adam(0.01), seed=1,
              validation_data=(x[:9], y[:9]), schedule=xc.Chain(xc.Warmup(5), xc.Cosine()), early_stopping=stopper,
              on_batch=lambda logs: rates.append(model.optimizer.rate), communicator=communicator)
    out = {"rates": np.array(rates), "learning_rate": np.array(model.history["learning_rate"]),
           "val_loss": np.array(model.history["val_loss"]),
           "stopped": np.array([stopper.stopped_epoch, stopper.restored_epoch])}
    for i, layer in enumerate(model.layers):
        for key, value in layer.params.items():
            out[f"{i}/{key}"] = xc.to_numpy(value)
    return out


def unseeded(communicator) -> dict:
    """A model built without a seed (each rank draws its own weights): its parameters before ``fit``, after
    ``fit(epochs=0)`` (rank 0's start) and after an epoch, with the generator's first draw after each."""
    x, y = data(20)
    model = xc.Sequential([xc.Dense(64, 8), xc.Tanh(), xc.Dense(8, 3), xc.Softmax()], dtype="float64")
    x = x.reshape(20, 64)
    out = {"before": flat(model)}
    model.fit(x, y, epochs=0, batch_size=10, communicator=communicator)
    out["start"] = flat(model)
    out["start_rng"] = np.array(xc.backend.rng_state(model.rng)["state"]["state"] % 2**62)
    model.fit(x, y, epochs=1, batch_size=10, communicator=communicator)
    out["after"] = flat(model)
    return out


def flat(model) -> np.ndarray:
    return np.concatenate([xc.to_numpy(p).ravel() for layer in model.layers for p in layer.params.values()])


def nccl_stand_in(comm) -> dict:
    """The NCCL branch with tests/support/fake_nccl.py: an allreduce of ``rank + 1`` and a broadcast from rank 1."""
    import fake_nccl
    import pytest
    from fake_cupy import FakeCupyArray

    nccl = fake_nccl.FakeNccl(comm._world.comm)
    fake_nccl.install(pytest.MonkeyPatch(), nccl, stream=7)
    summed = FakeCupyArray(np.full(5, comm.rank + 1.0, dtype=np.float32))
    comm.allreduce(summed)
    sent = FakeCupyArray(np.arange(3.0) + 10 * comm.rank)
    comm.broadcast(sent, root=1)
    return {"summed": summed.get(), "sent": sent.get(), "unique_ids": nccl.unique_ids,
            "communicators": len(nccl.made), "comm_id": np.array(nccl.made[0]["comm_id"]),
            "backend": comm.backend}


def main(argv: "list[str]") -> None:
    import xpcnn.distributed

    comm = xpcnn.distributed.init()
    mode = argv[0]
    if mode == "fit":
        path, n, batch, epochs = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
        result = train(comm, n, batch, epochs, *argv[5:6], *map(int, argv[6:7]))
        if comm.rank == 0:
            np.savez(path, **result)
        return
    if mode == "unseeded":
        np.savez(f"{argv[1]}.{comm.rank}.npz", **unseeded(comm))
        return
    if mode == "schedule":
        np.savez(f"{argv[1]}.{comm.rank}.npz", **scheduled(comm))
        return
    if mode == "buffers":
        np.save(f"{argv[1]}.{comm.rank}.npy", running_mean(comm))  # every rank's
        return
    if mode == "nccl":
        np.savez(f"{argv[1]}.{comm.rank}.npz", **nccl_stand_in(comm))
        return
    x, y = data(40)
    model = network()
    if mode == "raise":
        def fail(logs):
            if comm.rank == 1 and logs["batch"] == 2:
                raise RuntimeError("rank one fails on purpose")
        model.fit(x, y, loss="categorical_cross_entropy", batch_size=10, epochs=50, on_batch=fail, communicator=comm)
    elif mode == "mismatch":
        model.fit(x, y, loss="categorical_cross_entropy", batch_size=10 * (comm.rank + 1), communicator=comm)
    elif mode == "forever":
        if comm.rank == 0:
            print("ready", flush=True)
        model.fit(x, y, loss="categorical_cross_entropy", batch_size=10, epochs=10**6, communicator=comm)
    print(f"rank {comm.rank} finished", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
