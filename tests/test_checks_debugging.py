"""The visible checks of notebook 07 pass the fixed script and name each planted mistake.

The script is read from the solution notebook itself: its answer cells are the fixed
functions, and each ``# BUG:`` marker gives the planted line that the release shows.
Planting the bugs one at a time must fail exactly the notebook's test cell of that
mistake (run as nbgrader runs it, hidden tests included), with its message, and leave
every other test cell passing: one mistake costs one exercise.
Variants beyond the planted ones are small functions a student could write while
fixing the script.
"""

import collections
import re

import numpy as np
import pytest

import dqn_helpers.checks
from dqn_helpers import keras, tf
from dqn_helpers.checks import debugging as checks
from dqn_helpers.instructor.release import BUG_MARKER, apply_bug
from tests import cells
from tests.conftest import REPO

NOTEBOOK = REPO / "solutions" / "07_debugging" / "07_debugging.ipynb"
SOURCES = cells.sources(NOTEBOOK)
SCRIPT_CELLS = ["build_model", "sample_batch", "compute_targets", "train_step"]
# The notebook's graded test cells, hidden tests included: what nbgrader runs.
TEST_CELLS = [grade_id for grade_id, cell in cells.code_cells(NOTEBOOK).items() if cells.nbgrader(cell).get("grade")]
HAND_CHECK = "targets_by_hand_check"  # grades the student's own numbers, not a function of the script

# Each planted mistake: a piece of its line, the test cell that must catch it, key words of the message.
PLANTED = {
    "Conv2D(64, 3, 3": (
        "build_model_architecture",
        "convolution 3 .*strides \\(3, 3\\).*Conv2D takes \\(filters, kernel_size, strides",
    ),
    "states, rewards, actions": (
        "sample_batch_fields",
        "`actions` hold the transitions' rewards.*unpacked in another order",
    ),
    "next_q_values.max()": ("compute_targets_per_sample", "max over the whole batch.*axis=1"),
    "-1.0": ("compute_targets_terminal", "terminal targets are all -1.*y = r"),
    "reduce_max": ("train_step_action_taken", "max_a Q\\(s, a\\).*action the agent took"),
}


def script(planted: tuple[str, ...] = ()) -> dict:
    """The script's functions, fixed except for the bugs whose line contains one of ``planted``."""
    namespace = {
        "np": np,
        "keras": keras,
        "tf": tf,
        "layers": keras.layers,
        "collections": collections,
        "checks": dqn_helpers.checks,
    }
    for name in SCRIPT_CELLS:
        lines = [
            apply_bug(line) if any(bug in line.split(BUG_MARKER)[-1] for bug in planted) else line
            for line in SOURCES[name].splitlines()
        ]
        exec("\n".join(lines), namespace)  # noqa: S102 - the course's own notebook
    exec(SOURCES["targets_by_hand"], namespace)  # noqa: S102 - the solution's hand-worked targets
    return namespace


def run_test_cells(namespace: dict) -> dict[str, str | None]:
    """Each graded test cell's failure message, or None where it passes, run on the script in ``namespace``."""
    results = {}
    for name in TEST_CELLS:
        try:
            exec(SOURCES[name], namespace)  # noqa: S102 - the course's own notebook
            results[name] = None
        except AssertionError as error:
            results[name] = str(error)
    return results


def test_the_notebook_plants_exactly_the_catalogued_mistakes():
    """Check that the script's # BUG: markers are the five mistakes this file knows, one line each, one per test cell."""
    bugs = [
        line.split(BUG_MARKER)[1] for name in SCRIPT_CELLS for line in SOURCES[name].splitlines() if BUG_MARKER in line
    ]
    assert len(bugs) == len(PLANTED)
    assert all(sum(key in bug for bug in bugs) == 1 for key in PLANTED)
    assert sorted(cell for cell, _ in PLANTED.values()) == sorted(set(TEST_CELLS) - {HAND_CHECK})


def test_the_fixed_script_passes_every_check_visible_and_hidden():
    """Check that the solution's functions pass every test cell, hidden tests included."""
    results = run_test_cells(script())
    assert all(failure is None for failure in results.values()), results


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_each_planted_mistake_fails_its_own_check_only(bug):
    """Check that one planted bug fails its check with a message naming it, and no other check."""
    check, message = PLANTED[bug]
    results = run_test_cells(script((bug,)))
    assert results[check] is not None, f"the check {check} passed the planted bug {bug!r}"
    assert re.search(message, results[check]), results[check]
    assert {name for name, failure in results.items() if failure} == {check}, results


def test_the_released_script_fails_every_check():
    """Check that the script as students get it (every bug planted) fails all five checks, each with its message."""
    results = run_test_cells(script(tuple(PLANTED)))
    for check, message in PLANTED.values():
        assert results[check] and re.search(message, results[check]), results[check]


# --- variants beyond the planted mistakes --------------------------------------------------------


def _targets(rule):
    def compute_targets(rewards, dones, next_q_values, gamma=0.99):
        return rule(rewards, dones, next_q_values, gamma)

    return compute_targets


BUGGY_TARGETS = [
    (_targets(lambda r, d, q, g: r + g * q.max(axis=1)), checks.check_compute_targets_terminal, "ignore `dones`"),
    (
        _targets(lambda r, d, q, g: np.where(d > 0, r + g * q.max(axis=1), r)),
        checks.check_compute_targets_terminal,
        "your targets are inverted",
    ),
    (
        _targets(lambda r, d, q, g: np.where(d > 0, r + g * q.max(axis=1), r)),
        checks.check_compute_targets_per_sample,
        "is the test on `dones` inverted",
    ),
    (
        _targets(lambda r, d, q, g: r + 0.99 * (1 - d) * q.max(axis=1)),
        checks.check_compute_targets_per_sample,
        "ignore the gamma they are given",
    ),
    (
        _targets(lambda r, d, q, g: np.where(d > 0, 0.0, r + g * q.max(axis=1))),
        checks.check_compute_targets_terminal,
        "all 0, whatever the reward",
    ),
    (
        _targets(lambda r, d, q, g: r + g * (1 - d) * q.max(axis=0)),
        checks.check_compute_targets_per_sample,
        "could not be broadcast.*maxima over the actions, axis=1",
    ),
    (
        _targets(lambda r, d, q, g: r + g * (1 - d) * q.max(axis=1, keepdims=True)),
        checks.check_compute_targets_per_sample,
        "shape \\(4,\\), got \\(4, 4\\)",
    ),
    (
        _targets(lambda r, d, q, g: r + (1 - d) * q.max(axis=1)),
        checks.check_compute_targets_per_sample,
        "ignore the discount",
    ),
    (
        _targets(lambda r, d, q, g: r + g * (1 - d) * q.mean(axis=1)),
        checks.check_compute_targets_per_sample,
        "mean of the next Q-values",
    ),
    (
        _targets(lambda r, d, q, g: r + g * (1 - d) * q[:, 0]),
        checks.check_compute_targets_per_sample,
        "the targets are \\[4.0, 2.5, 6.5, -0.5\\]",
    ),
]


@pytest.mark.parametrize(
    ("hand_targets", "message"),
    [
        ([1.98, -1.0, 4.95], "transition 1: .*-1 is what the script's compute_targets gives"),
        ([1.98, 1.0 + 0.99 * 4.0, 4.95], "transition 1: .*done is True: nothing comes after"),
        ([1.98, 0.0, 4.95], "transition 1: .*the target keeps it"),
        ([2.0, 1.0, 4.95], "transition 0: .*not discounted"),
        ([0.99 * 0.875, 1.0, 4.95], "transition 0: .*averages the four Q-values"),
        ([1.98, 1.0, 0.99 * 1.0], "transition 2: .*Q-value of NOOP, not the largest"),
        ([1.98, 1.0, 7.0], "transition 2: your target is 7.0000.*r \\+ 0.99 \\* max over the four"),
        ([1.98, 1.0], "a list of three numbers, one per transition, got shape \\(2,\\)"),
    ],
)
def test_hand_targets_are_graded_and_each_mistake_named(hand_targets, message):
    """Check that the hand-worked targets are judged on their own: a copy of the script's output fails, named."""
    checks.check_targets_by_hand([0.0 + 0.99 * 2.0, 1.0, 0.0 + 0.99 * 5.0])
    with pytest.raises(AssertionError, match=message):
        checks.check_targets_by_hand(hand_targets)


@pytest.mark.parametrize(("compute_targets", "check", "message"), BUGGY_TARGETS)
def test_target_mistakes_beyond_the_planted_ones_are_named(compute_targets, check, message):
    """Check that other wrong targets fail their check with a message that names the mistake."""
    with pytest.raises(AssertionError, match=message):
        check(compute_targets)


def _global_generator(memory, batch_size, rng):
    """A sampler that draws with np.random instead of the rng it is given."""
    return script()["sample_batch"](memory, batch_size, np.random.default_rng())


def _sampler(order=(0, 1, 2, 3, 4), replace=False, fail=False, first_rows=False):
    def sample_batch(memory, batch_size, rng):
        if fail:
            raise IndexError("deque index out of range")
        drawn = range(batch_size) if first_rows else rng.choice(len(memory), size=batch_size, replace=replace)
        chosen = [memory[i] for i in drawn]
        fields = list(zip(*chosen))
        states, actions, rewards, next_states, dones = (fields[i] for i in order)
        return (
            np.stack(states),
            np.array(actions, np.int64),
            np.array(rewards, np.float32),
            np.stack(next_states),
            np.array(dones, np.float32),
        )

    return sample_batch


BUGGY_SAMPLERS = [
    (_sampler(order=(3, 1, 2, 0, 4)), "`states` hold the transitions' next_states"),
    (_sampler(order=(0, 1, 4, 3, 2)), "`rewards` hold the transitions' dones"),
    (_sampler(replace=True), "drew a transition twice"),
    (_sampler(first_rows=True), "drew the same transitions, \\[0, 1, 2, 3\\], with four differently seeded generators"),
    (_global_generator, "with generators seeded alike drew different transitions"),
    (_sampler(fail=True), "sample_batch\\(memory, 4, rng\\) raised IndexError: deque index out of range"),
]


@pytest.mark.parametrize(("sample_batch", "message"), BUGGY_SAMPLERS)
def test_sampling_mistakes_beyond_the_planted_one_are_named(sample_batch, message):
    """Check that other wrong batches fail with a message that names the field or the mistake."""
    with pytest.raises(AssertionError, match=message):
        checks.check_sample_batch(sample_batch)


def _stepper(*, loss="huber", train_target=False):
    functions = script()

    def train_step(model, target_model, optimizer, states, actions, rewards, next_states, dones):
        targets = functions["compute_targets"](rewards, dones, target_model(next_states).numpy())
        trained = target_model if train_target else model
        with tf.GradientTape() as tape:
            q_taken = tf.gather(trained(states), actions, axis=1, batch_dims=1)
            error = targets - q_taken
            value = tf.reduce_mean(error**2) if loss == "mse" else keras.losses.Huber()(targets, q_taken)
        optimizer.apply_gradients(zip(tape.gradient(value, trained.trainable_variables), trained.trainable_variables))
        return float(value)

    return train_step


def test_a_compute_targets_mistake_costs_only_its_own_cells():
    """Check that the train-step check runs the student's train_step with the package's compute_targets."""
    namespace = script()
    namespace["compute_targets"] = lambda rewards, dones, next_q_values, gamma=0.99: rewards + next_q_values.max(axis=0)
    results = run_test_cells(namespace)
    assert results["train_step_action_taken"] is None, results["train_step_action_taken"]
    assert results["compute_targets_per_sample"] is not None
    assert namespace["compute_targets"](np.zeros(2), np.zeros(2), np.ones((2, 2))).tolist() == [1.0, 1.0]  # put back


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loss": "mse"}, "mean squared error, not the Huber loss"),
        ({"train_target": True}, "changed the target network"),
    ],
)
def test_train_step_mistakes_beyond_the_planted_one_are_named(options, message):
    """Check that a squared-error loss and a trained target network are named."""
    with pytest.raises(AssertionError, match=message):
        checks.check_train_step_action_taken(_stepper(**options))
