"""The fit loop (xpcnn/train/loop.py): the order in which each epoch visits the samples."""

import numpy as np

import xpcnn as xc


class Recorder(xc.Layer):
    """The identity, recording the first feature of every sample a training pass sees (the sample's index)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, training=True):
        if training:
            self.seen.extend(int(round(v)) for v in np.asarray(x)[:, 0])
        return x

    def backward(self, output_gradient, learning_rate=None):
        return output_gradient


def orders(model_seed=3, fit_seed=None, epochs=3, n=12, batch=5):
    x = np.zeros((n, 2))
    x[:, 0] = np.arange(n)
    y = np.eye(2)[np.arange(n) % 2]
    recorder = Recorder()
    model = xc.Sequential([recorder, xc.Dense(2, 2), xc.Softmax()], seed=model_seed, dtype="float64")
    model.fit(x, y, epochs=epochs, batch_size=batch, learning_rate=1e-3, seed=fit_seed, workers=1)
    return [recorder.seen[e * n:(e + 1) * n] for e in range(epochs)]


def test_every_epoch_visits_every_sample_once_in_a_new_order_drawn_from_the_models_generator():
    got = orders(model_seed=3)
    rng = np.random.default_rng(3)  # Sequential(seed=3) shuffles with its own generator, seeded alike
    assert got == [rng.permutation(12).tolist() for _ in range(3)]
    assert all(sorted(epoch) == list(range(12)) for epoch in got)
    assert len({tuple(epoch) for epoch in got}) == 3


def test_fit_seed_changes_the_order_reproducibly():
    first = orders(fit_seed=7)
    again = orders(model_seed=5, fit_seed=7)  # the fit's seed decides, not the model's
    other = orders(fit_seed=8)
    unseeded = orders()
    rng = np.random.default_rng(7)
    assert first == again == [rng.permutation(12).tolist() for _ in range(3)]
    assert first != other and first != unseeded


def test_without_shuffling_every_epoch_visits_in_order():
    x, y = np.zeros((6, 2)), np.eye(2)[np.arange(6) % 2]
    x[:, 0] = np.arange(6)
    recorder = Recorder()
    xc.Sequential([recorder, xc.Dense(2, 2), xc.Softmax()], seed=0).fit(x, y, epochs=2, batch_size=4, shuffle=False)
    assert recorder.seen == list(range(6)) * 2


class Rows(xc.Layer):
    """The identity, recording how many rows each training and each inference pass gets."""

    preserves_shape = True  # (no pass on one zero sample to infer the output's shape)

    def __init__(self):
        super().__init__()
        self.rows = {"train": [], "infer": []}  # shared by the workers' replicas (a shallow copy of the layer)

    def forward(self, x, training=True):
        self.rows["train" if training else "infer"].append(int(x.shape[0]))
        return x

    def backward(self, output_gradient, learning_rate=None):
        return output_gradient


def test_with_workers_every_training_and_validation_pass_runs_on_one_workers_share():
    rng = np.random.default_rng(0)
    x, x_val = rng.random((40, 2)), rng.random((16, 2))
    y, y_val = np.eye(2)[np.arange(40) % 2], np.eye(2)[np.arange(16) % 2]
    rows = Rows()
    model = xc.Sequential([rows, xc.Dense(2, 2), xc.Softmax()], seed=0, dtype="float64")
    model.fit(x, y, epochs=1, batch_size=20, learning_rate=1e-3, workers=2, validation_data=(x_val, y_val))
    assert model.parallelism.workers == 2
    assert rows.rows["train"] == [10] * 4  # two batches of 20, each as two shares of 10: never a whole batch
    assert rows.rows["infer"] == [8, 8]    # the validation set (one batch of up to 256), split alike


def test_a_non_finite_loss_names_its_epoch_step_steps_and_learning_rate():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2)), rng.random((40, 2))
    model = xc.Sequential([xc.Dense(2, 2)], seed=0, dtype="float64")
    model.fit(x, y, epochs=1, batch_size=10, learning_rate=1e-3, loss="mse")  # one finished epoch
    try:
        model.fit(x, y, epochs=1, batch_size=10, learning_rate=1e150, loss="mse")
    except xc.TrainingError as exc:
        error = exc
    else:
        raise AssertionError("a loss of inf trained on")
    assert (error.epoch, error.step, error.loss) == (2, 3, float("inf"))
    assert str(error).startswith("epoch 2, step 3/4: the training loss is inf; training stopped.")
    assert "after step 2 of epoch 2" in str(error) and "holds the 1 finished epoch(s)" in str(error)
    assert str(error).endswith("Try a lower learning rate (now 1e+150)")


def test_with_workers_a_callback_that_asks_to_stop_stops_after_that_epoch():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2)), np.eye(2)[np.arange(40) % 2]
    model = xc.Sequential([xc.Dense(2, 2), xc.Softmax()], seed=0, dtype="float64")
    history = model.fit(x, y, epochs=5, batch_size=20, learning_rate=1e-3, workers=2, on_epoch=lambda logs: True)
    assert model.parallelism.workers == 2 and model.epoch == 1
    assert len(history["loss"]) == 1


def test_on_batch_gets_each_batch_number_count_and_size_with_a_short_last_batch():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2)), np.eye(2)[np.arange(40) % 2]
    logs = []
    model = xc.Sequential([xc.Dense(2, 2), xc.Softmax()], seed=0, dtype="float64")
    history = model.fit(x, y, epochs=1, batch_size=15, learning_rate=1e-3, on_batch=logs.append)
    assert [(g["epoch"], g["batch"], g["batches"], g["size"]) for g in logs] == [(1, 1, 3, 15), (1, 2, 3, 15),
                                                                                (1, 3, 3, 10)]
    assert {"loss", "correct"} <= set(logs[0])
    last = logs[-1]  # the running values are read at the last batch: the epoch's own
    assert (last["running_loss"], last["running_accuracy"]) == (history["loss"][0], history["accuracy"][0])


def test_an_epochs_seconds_and_samples_per_second_are_its_own():
    import time

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 2)), np.eye(2)[np.arange(40) % 2]
    model = xc.Sequential([xc.Dense(2, 2), xc.Softmax()], seed=0, dtype="float64")
    start = time.perf_counter()
    history = model.fit(x, y, epochs=1, batch_size=15, learning_rate=1e-3)
    wall = time.perf_counter() - start
    seconds = history["seconds"][0]
    assert 0 < seconds <= wall  # the epoch's part of the call, not a time of day
    assert history["samples_per_s"][0] == 40 / seconds


class SecondOfTwoRanks:
    """What ``run_epochs`` asks of a data-parallel run, as rank 1 of 2 sees it, without a second process:
    the rank trains on its half of each batch (``local``), and stops when rank 0 decides to (``agree``)."""

    def __init__(self, model, rank0_stops_after):
        self.model, self.rank0_stops_after = model, rank0_stops_after
        self.rows, self.asked = [], []

    def local(self, lo, hi):
        from xpcnn.distributed.communicator import shard

        return shard(lo, hi, 1, 2)

    def step(self, xb, yb, batch):
        self.rows.append([int(v) for v in np.asarray(xb)[:, 0]])
        xp = self.model.xp
        return xp.asarray(0.5, dtype=xp.float64), xp.asarray(0.0, dtype=xp.float64)  # as the allreduce gives them

    def evaluate(self, x, y, loss_fns, batch_size):
        return {"loss": 0.5, "accuracy": 0.0}

    def agree(self, stop):
        self.asked.append(stop)
        return len(self.asked) >= self.rank0_stops_after  # rank 0's decision, whatever this rank's


def test_a_rank_trains_its_own_rows_of_each_batch_and_stops_when_rank_0_decides():
    from xpcnn.losses import get_loss
    from xpcnn.train.loop import run_epochs

    x, y = np.zeros((10, 2)), np.eye(2)[np.arange(10) % 2]
    x[:, 0] = np.arange(10)
    model = xc.Sequential([xc.Dense(2, 2), xc.Softmax()], seed=0, dtype="float64")
    model.compile(optimizer="sgd", loss="categorical_cross_entropy")
    rank = SecondOfTwoRanks(model, rank0_stops_after=2)
    run_epochs(model, x, y, get_loss("categorical_cross_entropy"), epochs=5, batch_size=4, shuffle=False,
               validation_data=None, on_batch=None, on_epoch=lambda logs: True, parallel=rank, stopper=None)
    assert rank.rows == [[2, 3], [6, 7], [9]] * 2  # rank 1's half of [0, 4), [4, 8), [8, 10), never the whole
    assert rank.asked == [True, True] and model.epoch == 2  # its own callback's stop waits for rank 0's
