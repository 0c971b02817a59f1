"""The package's reference versions of earlier exercises agree with the solution notebooks.

Later notebooks import from ``dqn_helpers`` what the student built earlier (so that
one mistake does not cascade from notebook to notebook). These tests take each
exercise that has such a reference out of its *solution* notebook, by the nbgrader
``grade_id`` of its cell, run it in a fresh namespace after the notebook's set-up
cell (IPython magics left out), and compare its behaviour with the package's version
on the same inputs:

- 01_q_learning: ``td_targets``, ``huber_loss`` and ``epsilon_greedy`` against
  ``learner.td_targets``, ``learner.huber_loss`` and ``policies.epsilon_greedy``;
- 03_replay: ``FrameReplayBuffer`` and ``StackReplayBuffer`` against ``replay.ReplayBuffer``;
- 04_q_network: ``build_q_network`` against ``networks.nature_cnn``; ``td_targets``
  (plain and Double DQN) and ``huber_loss`` against ``learner.td_targets`` and
  ``learner.huber_loss``; ``make_train_step`` against the train step of
  ``learner.DQNLearner``.

(Notebooks 00 and 02 have no exercise with a reference: the package's environments
use Gymnasium's own preprocessing wrappers, which notebook 02 compares with the
student's pipeline itself.) No test trains anything: each notebook takes a few
seconds.
"""

from __future__ import annotations

import json
import linecache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dqn_helpers import keras, tf
from dqn_helpers.learner import DQNLearner
from dqn_helpers.learner import huber_loss as reference_huber_loss
from dqn_helpers.learner import td_targets as reference_td_targets
from dqn_helpers.networks import nature_cnn
from dqn_helpers.policies import epsilon_greedy as reference_epsilon_greedy
from dqn_helpers.replay import ReplayBuffer
from tests.conftest import REPO

SOLUTIONS = REPO / "solutions"

# (notebook, grade ids of the cells each exercise needs, besides the set-up cell)
EXERCISES = {
    "01_q_learning": ["td_targets", "epsilon_greedy", "huber_loss"],
    "03_replay": ["batch_type", "StackReplayBuffer", "FrameReplayBuffer"],
    "04_q_network": ["build_q_network", "q_of_actions", "td_targets", "huber_loss", "copy_network", "make_train_step"],
}


def _cells(notebook: str) -> dict[str, str]:
    """The code cells of a solution notebook, by grade_id."""
    path = SOLUTIONS / notebook / f"{notebook}.ipynb"
    cells = json.loads(path.read_text())["cells"]
    found = {}
    for cell in cells:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id")
        if cell["cell_type"] == "code" and grade_id:
            source = cell["source"]
            found[grade_id] = "".join(source) if isinstance(source, list) else source
    return found


def _run_cells(notebook: str, grade_ids: list[str]) -> dict[str, Any]:
    """Run the set-up cell and the named cells of a solution notebook in a fresh namespace; return it."""
    cells = _cells(notebook)
    namespace: dict[str, Any] = {"__name__": f"solution_{notebook}"}
    for grade_id in ["setup", *grade_ids]:
        assert grade_id in cells, f"solutions/{notebook} has no code cell with grade_id {grade_id!r}"
        lines = [line for line in cells[grade_id].splitlines() if not line.lstrip().startswith(("%", "!"))]
        source = "\n".join(lines) + "\n"
        filename = f"<solutions/{notebook}:{grade_id}>"
        # AutoGraph (tf.function) reads a function's source: let it find this cell's.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def notebook_01():
    return _run_cells("01_q_learning", EXERCISES["01_q_learning"])


@pytest.fixture(scope="module")
def notebook_03():
    return _run_cells("03_replay", EXERCISES["03_replay"])


@pytest.fixture(scope="module")
def notebook_04():
    if not (SOLUTIONS / "04_q_network").is_dir():
        pytest.skip("notebook 04 is not written yet")
    return _run_cells("04_q_network", EXERCISES["04_q_network"])


def _close(solution: Any, reference: Any, **tolerance: float) -> bool:
    solution, reference = np.asarray(solution, np.float64), np.asarray(reference, np.float64)
    return solution.shape == reference.shape and np.allclose(solution, reference, **(tolerance or {"rtol": 1e-5, "atol": 1e-6}))


# --- notebook 01 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_td_targets_of_01_agree(notebook_01, seed):
    """The NumPy td_targets of notebook 01 and learner.td_targets give the same targets."""
    rng = np.random.default_rng(seed)
    batch, actions = int(rng.integers(1, 40)), int(rng.integers(2, 19))
    rewards, next_q = rng.normal(size=batch), rng.normal(size=(batch, actions))
    terminated, gamma = (rng.random(batch) < 0.3).astype(np.float64), float(rng.uniform(0.5, 1.0))
    solution = notebook_01["td_targets"](rewards, terminated, next_q, gamma)
    assert _close(solution, reference_td_targets(rewards, terminated, next_q, gamma))


@pytest.mark.parametrize("delta", [1.0, 0.5, 2.5])
def test_huber_loss_of_01_agrees(notebook_01, delta):
    """The NumPy huber_loss of notebook 01 and learner.huber_loss agree elementwise, any delta."""
    errors = np.random.default_rng(3).normal(scale=3.0, size=(5, 7))
    assert _close(notebook_01["huber_loss"](errors, delta=delta), reference_huber_loss(errors, delta=delta))


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_epsilon_greedy_of_01_agrees(notebook_01, epsilon):
    """Both versions draw from the generator in the same order: the same seed gives the same actions."""
    q_values = np.random.default_rng(4).normal(size=(200, 5))
    solution_rng, reference_rng = np.random.default_rng(5), np.random.default_rng(5)
    solution = [notebook_01["epsilon_greedy"](q, epsilon, solution_rng) for q in q_values]
    reference = [reference_epsilon_greedy(q, epsilon, reference_rng) for q in q_values]
    assert solution == reference


# --- notebook 03 ---------------------------------------------------------------------------------

FRAME_SHAPE = (3, 3)
STACK = 4


def _play(buffers: list, episodes: int, seed: int) -> None:
    """Add the same random episodes (ending by termination or truncation) to every buffer."""
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        length = int(rng.integers(1, 9))
        state = np.zeros((STACK, *FRAME_SHAPE), np.uint8)
        state[-1] = rng.integers(1, 256, FRAME_SHAPE)
        for t in range(1, length + 1):
            next_state = np.concatenate([state[1:], rng.integers(1, 256, (1, *FRAME_SHAPE)).astype(np.uint8)])
            action, reward = int(rng.integers(4)), float(rng.integers(-1, 2))
            terminated = t == length and episode % 3 != 2
            truncated = t == length and not terminated
            for buffer in buffers:
                buffer.add(state.copy(), action, reward, next_state.copy(), terminated, truncated=truncated)
            state = next_state


def _transitions(buffer, draws: int = 3_000, seed: int = 0) -> set[bytes]:
    """The distinct transitions a buffer hands out over many draws."""
    batch = buffer.sample(draws, np.random.default_rng(seed))
    return {
        b"|".join([batch.states[i].tobytes(), bytes([int(batch.actions[i])]), np.float32(batch.rewards[i]).tobytes(),
                   batch.next_states[i].tobytes(), bytes([int(batch.terminated[i])])])  # fmt: skip
        for i in range(draws)
    }


@pytest.mark.parametrize(("capacity", "episodes"), [(200, 6), (30, 12), (17, 25)])
def test_frame_replay_buffer_of_03_agrees(notebook_03, capacity, episodes):
    """FrameReplayBuffer and replay.ReplayBuffer hold and sample the same transitions, wrapped around or not."""
    solution = notebook_03["FrameReplayBuffer"](capacity, frame_shape=FRAME_SHAPE, stack_size=STACK)
    reference = ReplayBuffer(capacity, frame_shape=FRAME_SHAPE, stack_size=STACK)
    _play([solution, reference], episodes, seed=capacity)
    assert len(solution) == len(reference)
    assert solution.nbytes == reference.nbytes
    assert _transitions(solution) == _transitions(reference)


def test_stack_replay_buffer_of_03_agrees_before_wrapping(notebook_03):
    """StackReplayBuffer, which keeps whole stacks, holds the same transitions as ReplayBuffer while nothing is overwritten."""
    solution = notebook_03["StackReplayBuffer"](500, frame_shape=FRAME_SHAPE, stack_size=STACK)
    reference = ReplayBuffer(500, frame_shape=FRAME_SHAPE, stack_size=STACK)
    _play([solution, reference], 8, seed=1)
    assert len(solution) == len(reference)
    assert _transitions(solution) == _transitions(reference)


# --- notebook 04 ---------------------------------------------------------------------------------

SMALL_STATE = (4, 44, 44)  # the Nature CNN fits 44x44 frames (10x10, 4x4, 2x2 after the convolutions): fast


def _states(count: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


@pytest.mark.parametrize(("num_actions", "input_shape"), [(4, (4, 84, 84)), (6, SMALL_STATE)])
def test_build_q_network_of_04_is_nature_cnn(notebook_04, num_actions, input_shape):
    """build_q_network and networks.nature_cnn have the same layers and weights, and with equal weights the same Q-values."""
    solution = notebook_04["build_q_network"](num_actions, input_shape=input_shape)
    reference = nature_cnn(num_actions, input_shape=input_shape)
    assert [layer.name for layer in solution.layers] == [layer.name for layer in reference.layers]
    assert [w.shape for w in solution.get_weights()] == [w.shape for w in reference.get_weights()]
    assert solution.count_params() == reference.count_params()
    solution.set_weights(reference.get_weights())
    states = _states(3, input_shape, seed=num_actions)
    assert _close(solution(states), reference(states), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("double", [False, True], ids=["plain", "double_dqn"])
@pytest.mark.parametrize("seed", range(3))
def test_td_targets_of_04_agree(notebook_04, seed, double):
    """The TensorFlow td_targets of notebook 04 and learner.td_targets agree, plain and Double DQN."""
    rng = np.random.default_rng(seed)
    batch, actions = int(rng.integers(1, 40)), int(rng.integers(2, 19))
    arguments = [tf.constant(rng.normal(size=batch), tf.float32), tf.constant(rng.random(batch) < 0.3, tf.float32),
                 tf.constant(rng.normal(size=(batch, actions)), tf.float32), float(rng.uniform(0.5, 1.0))]  # fmt: skip
    if double:
        arguments.append(tf.constant(rng.normal(size=(batch, actions)), tf.float32))
    assert _close(notebook_04["td_targets"](*arguments), reference_td_targets(*arguments))


def test_huber_loss_of_04_agrees(notebook_04):
    """The TensorFlow huber_loss of notebook 04 is learner.huber_loss."""
    errors = tf.constant(np.random.default_rng(6).normal(scale=3.0, size=50), tf.float32)
    for delta in (1.0, 0.7):
        assert _close(notebook_04["huber_loss"](errors, delta=delta), reference_huber_loss(errors, delta=delta))


@pytest.mark.parametrize("double", [False, True], ids=["plain", "double_dqn"])
def test_train_step_of_04_agrees_with_the_learner(notebook_04, double):
    """From the same weights and batch, make_train_step's step and DQNLearner's step give the same loss and new weights."""
    num_actions, batch_size, gamma, learning_rate = 4, 6, 0.9, 1e-3
    learner = DQNLearner(num_actions, learning_rate=learning_rate, gamma=gamma, double_dqn=double, input_shape=SMALL_STATE)
    rng = np.random.default_rng(7)
    # A target network that differs from the online one, so that taking the wrong one shows.
    learner.target_network.set_weights([w + rng.normal(0.0, 0.05, w.shape).astype(np.float32)
                                        for w in learner.target_network.get_weights()])  # fmt: skip
    online = notebook_04["build_q_network"](num_actions, input_shape=SMALL_STATE)
    online.set_weights(learner.online_network.get_weights())
    target = notebook_04["copy_network"](online)
    target.set_weights(learner.target_network.get_weights())
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, epsilon=learner.optimizer.epsilon)
    step = notebook_04["make_train_step"](online, target, optimizer, gamma=gamma, double_dqn=double)

    batch = (
        tf.constant(_states(batch_size, SMALL_STATE, seed=8)),
        tf.constant(rng.integers(0, num_actions, batch_size), tf.int64),
        tf.constant(rng.uniform(-2.0, 2.0, batch_size), tf.float32),
        tf.constant(_states(batch_size, SMALL_STATE, seed=9)),
        tf.constant([0.0, 1.0, 0.0, 0.0, 1.0, 0.0], tf.float32),
    )
    solution_loss = step(*batch)
    reference_loss, _ = learner._train_step(*batch, tf.fill((batch_size,), tf.constant(gamma, tf.float32)))
    assert _close(solution_loss, reference_loss, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(online.get_weights(), learner.online_network.get_weights()):
        assert _close(mine, theirs, rtol=1e-4, atol=1e-6)
    for mine, theirs in zip(target.get_weights(), learner.target_network.get_weights()):
        assert np.array_equal(mine, theirs)


def test_every_exercise_cell_named_here_exists():
    """The table above names real cells: renaming an exercise's grade_id must update these tests."""
    for notebook, grade_ids in EXERCISES.items():
        if (SOLUTIONS / notebook).is_dir():
            cells = _cells(notebook)
            missing = [grade_id for grade_id in ["setup", *grade_ids] if grade_id not in cells]
            assert not missing, f"solutions/{notebook} lacks the cells {missing}"
