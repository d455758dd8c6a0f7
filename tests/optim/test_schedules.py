"""Learning-rate schedules (xpcnn/optim/schedules.py): formulas against PyTorch, fit, checkpoints, exact resume."""

import json
import math
import re
import warnings

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from xpcnn.errors import ConfigError, ConfigTypeError
from xpcnn.optim.schedules import (Chain, Cosine, Schedule, StepDecay, Warmup, ZeroRateWarning, parse, parse_schedule,
                                   check_schedule, saved_spec)


def torch_rates(make_scheduler, lr, count):
    """The rate PyTorch's optimizer holds before each of ``count`` scheduler steps."""
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(torch.optim.lr_scheduler, opt)
    rates = []
    for _ in range(count):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def test_step_decay_per_epoch_is_pytorch_steplr():
    ours = [StepDecay(3, 0.5).learning_rate(0.1, 99, e) for e in range(10)]
    theirs = torch_rates(lambda s, o: s.StepLR(o, step_size=3, gamma=0.5), 0.1, 10)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[2] == 0.1 and ours[3] == 0.05  # it changes between epochs, not within one (the step count is moot)


@pytest.mark.parametrize("min_lr", [0.0, 0.01])
def test_cosine_per_epoch_is_pytorch_cosine_annealing_and_then_holds_the_minimum(min_lr):
    ours = [Cosine(8, min_lr).learning_rate(0.1, 0, e) for e in range(9)]
    theirs = torch_rates(lambda s, o: s.CosineAnnealingLR(o, T_max=8, eta_min=min_lr), 0.1, 9)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)
    assert Cosine(8, min_lr).learning_rate(0.1, 0, 20) == pytest.approx(min_lr, abs=1e-18)


def test_warmup_per_step_is_pytorch_linear_lr_from_one_over_w():
    w = 5
    ours = [Warmup(w).learning_rate(0.1, k, 0) for k in range(8)]
    theirs = torch_rates(lambda s, o: s.LinearLR(o, start_factor=1 / w, end_factor=1.0, total_iters=w - 1), 0.1, 8)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[0] == pytest.approx(0.02) and ours[4:] == [0.1] * 4


def test_a_chain_multiplies_the_factors_of_warmup_and_cosine():
    chain = Chain(Warmup(4), Cosine(10, 0.001))
    for k, e in [(0, 0), (2, 0), (3, 1), (40, 5), (100, 12)]:
        expected = min(1, (k + 1) / 4) * Cosine(10, 0.001).learning_rate(0.1, k, e)
        assert chain.learning_rate(0.1, k, e) == pytest.approx(expected, rel=1e-15)


# -- the spec grammar ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,expected", [
    ("step:10", StepDecay(10, 0.1)), ("step:10:0.5", StepDecay(10, 0.5)), ("cosine", Cosine()),
    ("cosine:30", Cosine(30)), ("cosine:30:1e-05", Cosine(30, 1e-5)), ("cosine::0.001", Cosine(None, 0.001)),
    ("warmup:500", Warmup(500)), ("warmup:500,cosine", Chain(Warmup(500), Cosine())),
    (" warmup:5 , step:2:0.3 ", Chain(Warmup(5), StepDecay(2, 0.3))),
])
def test_specs_parse_and_every_schedule_writes_the_spec_that_reads_it_back(spec, expected):
    schedule = parse_schedule(spec)
    assert schedule == expected and parse_schedule(schedule.spec()) == schedule
    resolved = schedule.resolve(7)
    assert parse_schedule(resolved.spec()) == resolved
    assert all(getattr(part, "epochs", 1) is not None for part in resolved.parts())  # no open length left


@pytest.mark.parametrize("spec,message", [
    ("", "empty spec"), ("linear:3", "unknown kind 'linear'"), ("step", "expected step:EVERY"),
    ("step:0", "every must be an integer >= 1"), ("step:2.5", "EVERY must be an integer"),
    ("step:2:0", "gamma must be in (0, 1]"), ("step:2:1.5", "gamma must be in (0, 1]"),
    ("step:2:x", "GAMMA must be a number"), ("cosine:0", "epochs must be an integer >= 1"),
    ("cosine:3:-1", "min_lr must be >= 0"), ("cosine:1:2:3", "expected cosine[:EPOCHS[:MIN_LR]]"),
    ("warmup", "expected warmup:STEPS"), ("warmup:", "expected warmup:STEPS"), ("warmup:nan", "STEPS must be"),
    ("warmup:5,warmup:6", "each kind of schedule at most once"), ("warmup:5,", "an empty item"),
    ("cosine:3:inf", "min_lr must be >= 0 and finite"),
])
def test_bad_specs_are_config_errors_naming_the_part_and_the_expected_form(spec, message):
    with pytest.raises(ConfigError) as info:
        parse_schedule(spec)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_constructor_arguments_and_non_schedules_are_refused():
    with pytest.raises(ConfigTypeError, match="every must be an integer"):
        StepDecay(2.5)
    with pytest.raises(ConfigTypeError, match="steps must be an integer"):
        Warmup("5")
    with pytest.raises(ConfigTypeError, match="not a schedule"):
        Chain(Warmup(2), "cosine")
    with pytest.raises(ConfigError, match="at least one"):
        Chain()
    with pytest.raises(ConfigTypeError, match="must be a string"):
        parse_schedule(3)
    with pytest.raises(ConfigError, match="number of epochs is not set"):
        Cosine().learning_rate(0.1, 0, 0)
    model, (x, y) = dense_model(), data()
    with pytest.raises(ConfigTypeError, match="schedule must be an xpcnn schedule"):
        model.fit(x, y, schedule="cosine")
    assert model.epoch == 0 and model.schedule is None


# -- in fit ----------------------------------------------------------------------------------------

def dense_model(seed=0):
    return xc.Sequential([xc.Dense(4, 3), xc.Sigmoid()], seed=seed)


def data(n=20):
    rng = np.random.default_rng(1)
    return rng.random((n, 4), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


def params(model):
    return {f"{i}.{k}": backend.to_numpy(v) for i, layer in enumerate(model.layers) for k, v in layer.params.items()}


def assert_same_params(a, b):
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)


def test_fit_takes_the_epoch_schedules_rate_in_every_step_of_the_epoch():
    x, y = data()
    scheduled, by_hand = dense_model(), dense_model()
    scheduled.fit(x, y, epochs=4, batch_size=6, optimizer=xc.SGD(0.2), schedule=StepDecay(2, 0.5))
    for e in range(4):
        by_hand.fit(x, y, epochs=1, batch_size=6, optimizer=xc.SGD(0.2 * 0.5 ** (e // 2)))
    assert_same_params(scheduled, by_hand)
    assert scheduled.history["learning_rate"] == [0.2, 0.2, 0.1, 0.1]
    assert scheduled.optimizer.learning_rate == 0.2  # the base rate stays the optimizer's setting


def test_fit_ramps_the_warmup_every_step_and_continues_it_in_the_next_fit():
    x, y = data()
    model = dense_model()
    rates = []
    model.fit(x, y, epochs=1, batch_size=6, optimizer=xc.SGD(0.3), schedule=Warmup(6),
              on_batch=lambda logs: rates.append(model.optimizer.rate))
    model.fit(x, y, epochs=1, batch_size=6, on_batch=lambda logs: rates.append(model.optimizer.rate))
    assert rates == pytest.approx([0.3 * k / 6 for k in range(1, 7)] + [0.3, 0.3])
    assert model.schedule == Warmup(6)


def test_cosine_without_a_length_ends_at_the_last_epoch_of_its_fit():
    x, y = data()
    model = dense_model()
    model.fit(x, y, epochs=2, batch_size=10, optimizer=xc.SGD(0.1))
    model.fit(x, y, epochs=3, batch_size=10, schedule=Cosine())
    assert model.schedule == Cosine(5)
    assert model.history["learning_rate"][2:] == pytest.approx(
        [0.1 * (1 + math.cos(math.pi * e / 5)) / 2 for e in (2, 3, 4)])
    model.schedule = None
    model.fit(x, y, epochs=1, batch_size=10)
    assert model.history["learning_rate"][-1] == 0.1 and model.optimizer.scheduled_rate is None


def test_a_fit_past_the_end_of_a_cosine_warns_in_one_line_instead_of_training_at_rate_zero_silently():
    # Issue 25, item 3: a second fit after fit(schedule=Cosine()) followed Cosine(2) past its end at rate 0
    x, y = data()
    model = dense_model()
    model.fit(x, y, epochs=2, batch_size=10, optimizer=xc.SGD(0.1), schedule=Cosine())
    with pytest.warns(ZeroRateWarning) as caught:
        model.fit(x, y, epochs=1, batch_size=10)
    (warning,) = caught
    assert str(warning.message) == (
        "fit: the model's schedule (from an earlier fit or a checkpoint) cosine:2:0.0 gives learning rate 0 from "
        "epoch 3 on, so this fit changes nothing; set model.schedule = None to train at the base rate 0.1, or pass "
        "schedule=...")
    with pytest.warns(ZeroRateWarning, match=r"^fit: the schedule cosine:2:0\.0 gives learning rate 0"):
        model.fit(x, y, epochs=1, batch_size=10, schedule=Cosine(2))
    model.schedule = None  # the fix the warning names
    before = [np.array(p) for layer in model.layers for p in layer.params.values()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, epochs=1, batch_size=10)
        model.fit(x, y, epochs=1, batch_size=10, schedule=Cosine(2, 0.01))  # a minimum above 0: no word
        model.fit(x, y, epochs=1, batch_size=10, schedule=Cosine())  # anneals over this fit: no word
    after = [np.array(p) for layer in model.layers for p in layer.params.values()]
    assert any(np.max(np.abs(a - b)) > 1e-4 for a, b in zip(after, before))


class OneRank:
    """A communicator of one process, without MPI: runs fit's data-parallel path with sums over one rank."""

    rank, size, is_root, backend = 0, 1, True, "test"

    def __init__(self):
        self.settings = []

    def check_same(self, config, what="configuration"):
        self.settings.append(config)

    def broadcast_object(self, obj, root=0):
        return obj

    def allgather_object(self, obj):
        return [obj]

    def broadcast(self, buffer, root=0):
        return buffer

    def allreduce(self, buffer):
        return buffer


def test_the_data_parallel_path_takes_the_same_scheduled_rates():
    x, y = data()
    plain, shared, comm = dense_model(), dense_model(), OneRank()
    schedule = Chain(Warmup(3), StepDecay(1, 0.5))
    plain.fit(x, y, epochs=3, batch_size=4, optimizer=xc.SGD(0.1, momentum=0.9), schedule=schedule, seed=2)
    shared.fit(x, y, epochs=3, batch_size=4, optimizer=xc.SGD(0.1, momentum=0.9), schedule=schedule, seed=2,
               communicator=comm)
    assert_same_params(plain, shared)
    assert shared.history["learning_rate"] == plain.history["learning_rate"] == [0.1, 0.05, 0.025]
    assert comm.settings[0]["schedule"] == "warmup:3,step:1:0.5"  # the ranks check they follow the same one


# -- checkpoints and exact resume -----------------------------------------------------------------

def conv_model(seed=3):
    return xc.Sequential([
        xc.Convolutional((1, 8, 8), 3, 2, padding="same"), xc.ReLU(), xc.MaxPool2D(2),
        xc.Flatten(), xc.Dense(2 * 4 * 4, 3), xc.Softmax(),
    ], seed=seed)


def image_data(n=22):
    rng = np.random.default_rng(5)
    return rng.random((n, 1, 8, 8), dtype=np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]


@pytest.mark.parametrize("schedule", [Chain(Warmup(7), Cosine(6, 1e-4)), StepDecay(2, 0.3)])
@pytest.mark.parametrize("optimizer", [lambda: xc.SGD(0.2, momentum=0.9), lambda: xc.Adam(0.01)])
def test_k_epochs_saved_then_resumed_equal_an_uninterrupted_run_bit_for_bit(tmp_path, schedule, optimizer):
    x, y = image_data()
    fit = dict(loss="categorical_cross_entropy", batch_size=5)
    straight = conv_model()
    straight.fit(x, y, epochs=6, optimizer=optimizer(), schedule=schedule, **fit)
    first = conv_model()
    first.fit(x, y, epochs=3, optimizer=optimizer(), schedule=schedule, **fit)
    save_checkpoint(tmp_path / "half.npz", first)
    resumed = load_checkpoint(tmp_path / "half.npz")
    assert resumed.schedule == schedule
    resumed.fit(x, y, epochs=3, **fit)  # the checkpoint's optimizer and schedule
    assert_same_params(resumed, straight)
    assert resumed.history["loss"] == straight.history["loss"]
    assert resumed.history["learning_rate"] == straight.history["learning_rate"]
    assert len(set(straight.history["learning_rate"])) > 1  # the rate did change


def bn_dropout_model(seed=4):
    """convnet-bn in small: Conv-BatchNorm-ReLU, pooling, Dropout, Dense-BatchNorm1D-ReLU, Dropout, Dense."""
    return xc.Sequential([
        xc.Convolutional((1, 8, 8), 3, 4, padding="same"), xc.BatchNorm2D(4), xc.ReLU(), xc.MaxPool2D(2),
        xc.Flatten(), xc.Dropout(0.25), xc.Dense(4 * 4 * 4, 6), xc.BatchNorm1D(6), xc.ReLU(), xc.Dropout(0.5),
        xc.Dense(6, 3), xc.Softmax(),
    ], seed=seed)


def buffers(model):
    return {f"{i}.{k}": backend.to_numpy(v) for i, layer in enumerate(model.layers) for k, v in layer.buffers.items()}


@pytest.mark.parametrize("stop_after", [1, 3, 4])
def test_batchnorm_dropout_and_a_schedule_resume_bit_for_bit(tmp_path, stop_after):
    """The checkpoint keeps the running statistics, the generator the Dropout masks come from, the step
    count and the epoch the schedule reads: k epochs, save, load, the rest equal one run to the last bit."""
    x, y = image_data(23)
    schedule = Chain(Warmup(6), StepDecay(2, 0.5))
    fit = dict(loss="categorical_cross_entropy", batch_size=5, validation_data=image_data(7))
    straight = bn_dropout_model()
    straight.fit(x, y, epochs=5, optimizer=xc.Adam(0.02), schedule=schedule, **fit)
    first = bn_dropout_model()
    first.fit(x, y, epochs=stop_after, optimizer=xc.Adam(0.02), schedule=schedule, **fit)
    save_checkpoint(tmp_path / "part.npz", first)
    resumed = load_checkpoint(tmp_path / "part.npz")
    resumed.fit(x, y, epochs=5 - stop_after, **fit)
    assert_same_params(resumed, straight)
    got, expected = buffers(resumed), buffers(straight)
    assert got.keys() == expected.keys() and len(got) == 4  # two BatchNorms, mean and variance each
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    for key in ("loss", "val_loss", "learning_rate"):
        assert resumed.history[key] == straight.history[key], key
    assert straight.history["learning_rate"] == pytest.approx([0.02 * 5 / 6, 0.02, 0.01, 0.01, 0.005])
    # the Dropout masks matter: the same run with another generator state ends elsewhere
    other = load_checkpoint(tmp_path / "part.npz")
    other.rng = backend.new_rng(99)
    other.fit(x, y, epochs=5 - stop_after, **fit)
    assert not np.array_equal(params(other)["6.weights"], params(straight)["6.weights"])


def test_a_checkpoint_without_a_schedule_loads_without_one_and_a_bad_spec_is_a_checkpoint_error(tmp_path):
    model = dense_model()
    model.fit(*data(), epochs=1, batch_size=10)
    path = tmp_path / "m.npz"
    save_checkpoint(path, model)
    assert load_checkpoint(path).schedule is None
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    for spec, message in [("warmup:0", "bad learning-rate schedule 'warmup:0'"), (7, "must be a string")]:
        arrays["meta"] = np.array(json.dumps({**meta, "schedule": spec}))
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
    del meta["schedule"]  # a checkpoint from before schedules
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    assert load_checkpoint(path).schedule is None


def test_a_schedule_steps_on_array_api_strict_device1(device1):
    x, y = data()
    model = dense_model().to(device1)
    model.fit(x, y, epochs=2, batch_size=7, optimizer=xc.Adam(0.01), schedule=Chain(Warmup(2), Cosine()))
    assert model.history["learning_rate"] == pytest.approx([0.01, 0.005])
    assert backend.Device.of(model.layers[0].params["weights"]) == model.device


def test_parse_reads_none_as_no_schedule_and_anything_else_as_parse_schedule():
    assert parse("none") is None and parse(" none ") is None
    assert parse("cosine") == Cosine() and parse("warmup:3,step:2") == Chain(Warmup(3), StepDecay(2))
    with pytest.raises(ConfigError, match="schedule 'none:3': unknown kind 'none'"):
        parse("none:3")
    with pytest.raises(ConfigError, match=r"schedule 'warmup:3,none': 'none' \(no schedule\) stands alone"):
        parse("warmup:3,none")


def test_every_concrete_spec_the_readme_shows_parses():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    specs = [s for s in re.findall(r"`((?:step|cosine|warmup)[^`\s]*)`", readme) if not re.search(r"[A-Z]", s)]
    assert {"step:10:0.1", "cosine", "warmup:500,cosine"} <= set(specs)
    for spec in specs:
        parse_schedule(spec)


# -- bad combinations (a new user's mistakes) ------------------------------------------------------

def test_a_cosine_minimum_above_the_base_rate_is_refused_before_any_step_as_keras_alpha_users_would_misread_it():
    model, (x, y) = dense_model(), data()
    with pytest.raises(ConfigError, match=r"^Cosine: min_lr 0\.1 is above the base learning rate 0\.001, so the rate "
                                          r"would rise; min_lr is a learning rate, not a fraction of it$"):
        model.fit(x, y, optimizer=xc.Adam(1e-3), schedule=Chain(Warmup(2), Cosine(3, 0.1)), epochs=3)
    assert model.epoch == 0 and model.schedule is None and model.optimizer is None and model.loss is None
    model.fit(x, y, learning_rate=0.1, schedule=Cosine(3, 0.1), epochs=1)  # equal: a constant rate, accepted
    assert model.history["learning_rate"] == [pytest.approx(0.1)]
    with pytest.raises(ConfigError, match="above the base learning rate 0.05"):  # the model's schedule, a new rate
        model.fit(x, y, optimizer=xc.SGD(0.05), epochs=1)
    assert model.epoch == 1


def test_fit_with_zero_epochs_leaves_an_open_cosine_open_for_the_fit_that_trains():
    model, (x, y) = dense_model(), data()
    model.fit(x, y, schedule=Cosine(), epochs=0)
    assert model.schedule == Cosine() and model.schedule.epochs is None
    model.fit(x, y, epochs=2)
    assert model.schedule == Cosine(2) and model.history["learning_rate"] == pytest.approx([0.1, 0.05])


@pytest.mark.parametrize("spec,message", [
    ("step:2.5", "^schedule 'step:2.5': EVERY must be an integer, got '2.5'$"),
    ("cosine,", r"^schedule 'cosine,': an empty item; expected items such as"),
    (",", "^schedule ',': an empty item"),
    ("none,cosine", r"^schedule 'none,cosine': 'none' \(no schedule\) stands alone, not in a list$"),
])
def test_spec_errors_name_the_spec_once_and_say_what_is_wrong_with_a_list(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse(spec)


class _Half(xc.Schedule):
    """A user's own schedule: fit follows it, but no spec reads it back."""

    kind = "half"

    def factor(self, base, step, epoch):
        return 0.5


class _HalfWithSpec(_Half):
    def spec(self):
        return "half"


@pytest.mark.parametrize("schedule", [_Half(), _HalfWithSpec()])
def test_a_schedule_a_checkpoint_cannot_rebuild_is_refused_by_save_and_nothing_is_written(tmp_path, schedule):
    model, (x, y) = dense_model(), data()
    model.fit(x, y, schedule=schedule, epochs=1)
    assert model.history["learning_rate"] == [0.05]
    with pytest.raises(CheckpointError, match=r"^save_checkpoint: the schedule .* cannot be saved"):
        save_checkpoint(tmp_path / "m.npz", model)
    assert list(tmp_path.iterdir()) == []
    model.schedule = None
    save_checkpoint(tmp_path / "m.npz", model)
    assert load_checkpoint(tmp_path / "m.npz").schedule is None


@pytest.mark.parametrize("make", [lambda n: StepDecay(n), lambda n: Cosine(n), lambda n: Warmup(n)])
def test_counts_past_ten_to_the_fifteen_are_refused_not_an_overflow_inside_a_step(make):
    from xpcnn.optim.schedules import MAX_COUNT
    assert make(MAX_COUNT).learning_rate(0.1, 10, 3) > 0
    with pytest.raises(ConfigError, match=r"must be an integer <= 1000000000000000, got 10000000000000000000\.\.\. "
                                          r"\(401 digits\)$"):
        make(10 ** 400)
    with pytest.raises(ConfigError, match="must be an integer <= 1000000000000000"):
        parse("cosine:1" + "0" * 400)


@pytest.mark.parametrize("value", ["cosine", Cosine])
def test_a_schedule_or_optimizer_set_by_hand_to_a_non_object_is_named_by_fit_and_save(tmp_path, value):
    model, (x, y) = dense_model(), data()
    model.schedule = value
    with pytest.raises(ConfigTypeError, match=r"^fit \(model\.schedule\): schedule must be an xpcnn schedule"):
        model.fit(x, y)
    with pytest.raises(CheckpointError, match=r"^save_checkpoint: model\.schedule: schedule must be an xpcnn"):
        save_checkpoint(tmp_path / "m.npz", model)
    model.schedule, model.optimizer = None, "adam"
    with pytest.raises(ConfigTypeError, match=r"^model\.optimizer must be an xpcnn Optimizer \(SGD, Adam\) or None, "
                                              r"got 'adam'$"):
        model.fit(x, y)
    with pytest.raises(CheckpointError, match=r"^save_checkpoint: model\.optimizer must be an xpcnn Optimizer"):
        save_checkpoint(tmp_path / "m.npz", model)
    assert list(tmp_path.iterdir()) == [] and model.epoch == 0


# -- what the mutation run found untested (docs/mutation.md) ----------------------------------------

def test_each_schedule_writes_the_shortest_spec_of_the_grammar():
    assert Cosine().spec() == "cosine" and Cosine(None, 0.0).spec() == "cosine"
    assert Cosine(None, 0.001).spec() == "cosine::0.001" and Cosine(None, 1.0).spec() == "cosine::1.0"
    assert Cosine(30, 1e-5).spec() == "cosine:30:1e-05" and StepDecay(10).spec() == "step:10:0.1"
    assert Chain(Warmup(5), Cosine()).spec() == "warmup:5,cosine"
    # a saved open cosine keeps its minimum: the rate it anneals to when fit gives it a length
    assert parse_schedule(Cosine(None, 0.001).spec()).resolve(4).learning_rate(0.1, 0, 4) == 0.001


def test_an_open_cosine_resolves_to_the_last_epoch_and_keeps_its_minimum():
    assert Cosine(None, 0.01).resolve(5).epochs == 5 and Cosine(None, 0.01).resolve(5).min_lr == 0.01
    assert Cosine().resolve(1).epochs == 1 and Cosine().resolve(0).epochs == 1  # at least one epoch
    assert Cosine(3, 0.02).resolve(9) == Cosine(3, 0.02)  # a set length stays
    # min_lr is a rate (CosineAnnealingLR's eta_min), not a fraction of the base: half way, (0.1 + 0.01) / 2
    assert math.isclose(Cosine(4, 0.01).learning_rate(0.1, 0, 2), 0.055, rel_tol=1e-12)
    assert math.isclose(Cosine(4, 0.01).learning_rate(0.1, 0, 4), 0.01, rel_tol=1e-12)


def test_every_schedules_repr_is_the_call_that_builds_it():
    names = {"StepDecay": StepDecay, "Cosine": Cosine, "Warmup": Warmup, "Chain": Chain}
    for schedule in (StepDecay(3, 0.5), Cosine(), Cosine(8, 0.01), Warmup(5), Chain(Warmup(5), StepDecay(2, 0.3))):
        assert eval(repr(schedule), names) == schedule  # noqa: S307 - our own repr
    assert repr(StepDecay(3, 0.5)) == "StepDecay(every=3, gamma=0.5)"
    assert repr(Chain(Warmup(5), Cosine(8))) == "Chain(Warmup(steps=5), Cosine(epochs=8, min_lr=0.0))"


def test_a_schedule_without_a_spec_says_so_under_its_own_name():
    class Halve(Schedule):
        def factor(self, base, step, epoch):
            return 0.5

    with pytest.raises(ConfigError, match=r"^Halve: a schedule needs a spec\(\) that xpcnn.parse_schedule reads back "
                                          r"to be saved in a checkpoint or shared between ranks$"):
        Halve().spec()


def test_constructor_errors_name_the_schedule_in_one_line():
    with pytest.raises(ConfigError, match=r"^Cosine: epochs must be an integer >= 1, got 0$"):
        Cosine(0)
    with pytest.raises(ConfigError, match=r"^Cosine: the number of epochs is not set; pass Cosine\(epochs=T\) or "
                                          r"give it to fit$"):
        Cosine().factor(0.1, 0, 0)
    with pytest.raises(ConfigError, match=r"^Chain: needs at least one schedule$"):
        Chain()
    with pytest.raises(ConfigError, match=r"^Chain: each kind of schedule at most once, got cosine, warmup twice$"):
        Chain(Warmup(2), Cosine(), Chain(Warmup(3), Cosine(4)))
    with pytest.raises(ConfigError, match=r"^StepDecay: every must be an integer >= 1, got 0$"):
        StepDecay(0)
    with pytest.raises(ConfigError, match=r"^StepDecay: gamma must be in \(0, 1\], got 0.0$"):
        StepDecay(2, 0.0)
    with pytest.raises(ConfigError, match=r"^Cosine: min_lr must be >= 0 and finite, got -1.0$"):
        Cosine(3, -1.0)
    with pytest.raises(ConfigError, match=r"^Warmup: steps must be an integer >= 1, got 0$"):
        Warmup(0)


def test_warmup_of_one_step_is_the_full_rate_from_the_first_step():
    assert [Warmup(1).learning_rate(0.1, k, 0) for k in range(3)] == [0.1, 0.1, 0.1]


@pytest.mark.parametrize("spec,form", [("step:2:0.5:9", "step:EVERY[:GAMMA]"), ("warmup:5:7", "warmup:STEPS")])
def test_a_spec_with_more_fields_than_its_kind_takes_is_refused(spec, form):
    with pytest.raises(ConfigError, match=rf"^schedule '{spec}': expected {re.escape(form)}$"):
        parse_schedule(spec)


def test_a_schedule_that_cannot_be_saved_shows_its_missing_spec_as_none():
    class Halve(Schedule):
        def factor(self, base, step, epoch):
            return 0.5

    with pytest.raises(ConfigError, match=r"cannot be saved: its spec None does not read back as it"):
        saved_spec(Halve())


@pytest.mark.parametrize("spec,message", [
    ("cosine:x", "EPOCHS must be an integer, got 'x'"), ("cosine:3:y", "MIN_LR must be a number, got 'y'"),
    ("step:x", "EVERY must be an integer, got 'x'"), ("step:2:y", "GAMMA must be a number, got 'y'"),
    ("warmup:y", "STEPS must be an integer, got 'y'"),
])
def test_a_field_that_is_not_a_number_is_named_as_the_grammar_names_it(spec, message):
    with pytest.raises(ConfigError, match=rf"^schedule '{spec}': {message}$"):
        parse_schedule(spec)


def test_a_one_item_spec_is_that_schedule_and_none_is_only_parses_word():
    assert type(parse_schedule("warmup:500")) is Warmup
    assert repr(parse_schedule("step:3:0.5")) == repr(StepDecay(3, 0.5))
    with pytest.raises(ConfigError, match=r"^schedule 'none': unknown kind 'none'; expected step:EVERY\[:GAMMA\]"):
        parse_schedule("none")  # parse_schedule names a schedule; parse reads "none" as no schedule
    with pytest.raises(ConfigError, match=r"^schedule: empty spec; expected e.g. step:10:0.1, cosine or "
                                          r"warmup:500,cosine$"):
        parse_schedule("  ")


def test_a_non_schedule_is_named_as_fits_argument_by_default():
    with pytest.raises(ConfigTypeError, match=r"^fit: schedule must be an xpcnn schedule \(StepDecay, Cosine, Warmup, "
                                              r"Chain\) or None, got 'cosine'$"):
        check_schedule("cosine")


def test_schedules_are_equal_when_they_give_the_same_rates_and_not_otherwise():
    assert StepDecay(3, 0.5) == StepDecay(3, 0.5) and Chain(Warmup(2), Cosine(4)) == parse_schedule("warmup:2,cosine:4")
    assert StepDecay(3, 0.5) != StepDecay(4, 0.5) and StepDecay(3, 0.5) != StepDecay(3, 0.25)
    assert Cosine(3) != Warmup(3) and Cosine(3) != Cosine(3, 0.01) and Chain(Warmup(2)) != Chain(Warmup(2), Cosine(4))
    assert StepDecay(3, 0.5) != "step:3:0.5"  # a spec is not a schedule
    assert len({StepDecay(3, 0.5), parse_schedule("step:3:0.5"), Warmup(3)}) == 2
