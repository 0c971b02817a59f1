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
  ``learner.DQNLearner``;
- 05_training_loop: ``linear_schedule`` against ``schedules.linear_schedule``;
- 06_evaluation: ``EpsilonGreedyPolicy`` against ``policies.QPolicy``, ``evaluate_agent``
  against ``evaluation.evaluate`` (on real Breakout games) and ``write_video`` against
  ``video.write_video``.

(Notebooks 00 and 02 have no exercise with a reference: the package's environments
use Gymnasium's own preprocessing wrappers, which notebook 02 compares with the
student's pipeline itself.) No test trains anything: each notebook takes a few
seconds.
"""

from __future__ import annotations

import linecache
import sys
import types
from typing import Any

import imageio.v2 as imageio
import numpy as np
import pytest

from dqn_helpers import keras, tf
from dqn_helpers.envs import make_env
from dqn_helpers.evaluation import evaluate as reference_evaluate
from dqn_helpers.learner import DQNLearner
from dqn_helpers.learner import huber_loss as reference_huber_loss
from dqn_helpers.learner import td_targets as reference_td_targets
from dqn_helpers.networks import nature_cnn
from dqn_helpers.policies import QPolicy, RandomPolicy
from dqn_helpers.policies import epsilon_greedy as reference_epsilon_greedy
from dqn_helpers.replay import ReplayBuffer
from dqn_helpers.schedules import linear_schedule as reference_linear_schedule
from dqn_helpers.video import write_video as reference_write_video
from tests import cells
from tests.conftest import REPO

SOLUTIONS = REPO / "solutions"

# (notebook, grade ids of the cells each exercise needs, besides the set-up cell)
EXERCISES = {
    "01_q_learning": ["td_targets", "epsilon_greedy", "huber_loss"],
    "03_replay": ["batch_type", "StackReplayBuffer", "FrameReplayBuffer"],
    "04_q_network": ["build_q_network", "q_of_actions", "td_targets", "huber_loss", "copy_network", "make_train_step"],
    "05_training_loop": ["linear_schedule"],
    "06_evaluation": ["EpsilonGreedyPolicy", "evaluate_agent", "write_video"],
}


def _cells(notebook: str) -> dict[str, str]:
    """The code cells of a solution notebook, by grade_id."""
    return cells.sources(SOLUTIONS / notebook / f"{notebook}.ipynb")


def _run_cells(notebook: str, grade_ids: list[str]) -> dict[str, Any]:
    """Run the set-up cell and the named cells of a solution notebook in a fresh namespace; return it."""
    cells = _cells(notebook)
    # A module of its own, known to sys.modules as a notebook's __main__ is: AutoGraph looks a
    # function's module up there (for a lambda in tf.function it warns, and gives up, if it is missing).
    module = types.ModuleType(f"solution_{notebook}")
    sys.modules[module.__name__] = module
    namespace: dict[str, Any] = module.__dict__
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


@pytest.fixture(scope="module")
def notebook_05():
    return _run_cells("05_training_loop", EXERCISES["05_training_loop"])


@pytest.fixture(scope="module")
def notebook_06():
    return _run_cells("06_evaluation", EXERCISES["06_evaluation"])


def _close(solution: Any, reference: Any, **tolerance: float) -> bool:
    solution, reference = np.asarray(solution, np.float64), np.asarray(reference, np.float64)
    return solution.shape == reference.shape and np.allclose(
        solution, reference, **(tolerance or {"rtol": 1e-5, "atol": 1e-6})
    )


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
        b"|".join(
            [
                batch.states[i].tobytes(),
                bytes([int(batch.actions[i])]),
                np.float32(batch.rewards[i]).tobytes(),
                batch.next_states[i].tobytes(),
                bytes([int(batch.terminated[i])]),
            ]
        )
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
    arguments = [
        tf.constant(rng.normal(size=batch), tf.float32),
        tf.constant(rng.random(batch) < 0.3, tf.float32),
        tf.constant(rng.normal(size=(batch, actions)), tf.float32),
        float(rng.uniform(0.5, 1.0)),
    ]
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
    learner = DQNLearner(
        num_actions, learning_rate=learning_rate, gamma=gamma, double_dqn=double, input_shape=SMALL_STATE
    )
    rng = np.random.default_rng(7)
    # A target network that differs from the online one, so that taking the wrong one shows.
    learner.target_network.set_weights(
        [w + rng.normal(0.0, 0.05, w.shape).astype(np.float32) for w in learner.target_network.get_weights()]
    )
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


# --- notebook 05 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "duration", "step"),
    [
        (1.0, 0.1, 1_000_000, 0),  # decreasing (Nature DQN's epsilon): the start
        (1.0, 0.1, 1_000_000, 250_000),
        (1.0, 0.1, 1_000_000, 999_999),
        (1.0, 0.1, 1_000_000, 1_000_000),  # step == duration: the floor
        (1.0, 0.1, 1_000_000, 2_000_000),  # past the duration: held
        (1.0, 0.01, 250_000, 123_457),
        (0.5, 0.05, 37, 1),
        (0.5, 0.05, 37, 37),
        (0.5, 0.05, 37, 38),
        (1.0, 0.0, 1, 0),  # the shortest schedule
        (1.0, 0.0, 1, 1),
        (0.0, 1.0, 100, 0),  # increasing
        (0.0, 1.0, 100, 33),
        (0.0, 1.0, 100, 100),
        (0.0, 1.0, 100, 10_000),
        (0.4, 1.0, 3, 2),
        (-1.0, 2.0, 7, 3),  # through zero
        (0.3, 0.3, 10, 5),  # constant
    ],
)
def test_linear_schedule_of_05_agrees(notebook_05, start, end, duration, step):
    """linear_schedule and schedules.linear_schedule give the same value, decreasing or increasing, before and after duration.

    Up to rounding: the package rounds to 12 decimals, so that the floor comes out exactly
    ``end`` (1.0 + (0.1 - 1.0) is 0.09999999999999998 in floating point); the notebook does not.
    """
    solution = notebook_05["linear_schedule"](start, end, duration, step)
    reference = reference_linear_schedule(start, end, duration, step)
    assert isinstance(solution, float)
    assert solution == pytest.approx(reference, rel=1e-12, abs=1e-12)


# --- notebook 06 ---------------------------------------------------------------------------------

POLICY_ACTIONS = 6


@pytest.fixture(scope="module")
def policies_06(notebook_06):
    """The notebook's EpsilonGreedyPolicy and a QPolicy over one small seeded Nature CNN, 8 states, their greedy actions."""
    rng = np.random.default_rng(0)
    network = nature_cnn(POLICY_ACTIONS, input_shape=SMALL_STATE)
    # Seeded weights (He-like scale), without touching Keras's global seed.
    network.set_weights(
        [
            (
                rng.normal(0.0, 1.0 / np.sqrt(np.prod(w.shape[:-1])), w.shape)
                if w.ndim > 1
                else rng.normal(0.0, 0.1, w.shape)
            ).astype(np.float32)
            for w in network.get_weights()
        ]
    )
    # Random states of different brightness, so that their greedy actions are not all the same.
    states = np.stack([rng.integers(0, rng.integers(1, 256), SMALL_STATE).astype(np.uint8) for _ in range(8)])
    reference = QPolicy(network)
    greedy = [int(np.argmax(reference.q_values(state))) for state in states]
    assert len(set(greedy)) > 1, "the states all have the same greedy action: the test would not tell them apart"
    return notebook_06["EpsilonGreedyPolicy"](network), reference, states, greedy


def test_epsilon_greedy_policy_q_values_of_06_agree(policies_06):
    """EpsilonGreedyPolicy.q_values and QPolicy.q_values give the same Q-values of one state."""
    solution, reference, states, _ = policies_06
    assert solution.num_actions == reference.num_actions == POLICY_ACTIONS
    for state in states:
        assert _close(solution.q_values(state), reference.q_values(state))


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_epsilon_greedy_policy_of_06_agrees(policies_06, epsilon):
    """The same rng seed gives the same action, in each state, at any epsilon.

    Both draw rng.random() to decide whether to explore, then rng.integers(num_actions)
    for the random action (the same numbers as QPolicy's size-1 draws); but QPolicy draws
    the random action whether it explores or not, the notebook's only when it explores.
    So a fresh generator per call gives the same actions at any epsilon; one generator over
    many calls gives the same sequence at epsilon 0 and 1 only (at 0.3 see the next test).
    """
    solution, reference, states, greedy = policies_06
    for seed in range(5):
        for state in states:
            mine = solution(state, np.random.default_rng(seed), epsilon)
            theirs = reference(state, np.random.default_rng(seed), epsilon)
            assert type(mine) is int and mine == theirs
    if epsilon in (0.0, 1.0):
        solution_rng, reference_rng = np.random.default_rng(1), np.random.default_rng(1)
        mine = [solution(state, solution_rng, epsilon) for state in np.tile(states, (5, 1, 1, 1))]
        theirs = [reference(state, reference_rng, epsilon) for state in np.tile(states, (5, 1, 1, 1))]
        assert mine == theirs
        if epsilon == 0.0:
            assert mine == greedy * 5


def test_epsilon_greedy_policy_of_06_explores_as_often(policies_06):
    """At epsilon 0.3, over one generator, both take a non-greedy action as often as epsilon says, each action among them.

    A random action is the greedy one with probability 1/num_actions, so the share of
    non-greedy actions is epsilon * (num_actions - 1) / num_actions = 0.25; 300 draws of
    each give it within 4 standard deviations (0.1).
    """
    solution, reference, states, greedy = policies_06
    epsilon, draws = 0.3, 300
    expected = epsilon * (POLICY_ACTIONS - 1) / POLICY_ACTIONS
    tolerance = 4 * np.sqrt(expected * (1 - expected) / draws)
    shares = {}
    for name, policy in [("notebook", solution), ("QPolicy", reference)]:
        rng = np.random.default_rng(2)
        indices = np.arange(draws) % len(states)
        actions = np.array([policy(states[i], rng, epsilon) for i in indices])
        explored = actions != np.array(greedy)[indices]
        shares[name] = explored.mean()
        assert abs(shares[name] - expected) < tolerance, f"{name}: {shares[name]:.3f} not greedy, not {expected}"
        assert set(actions[explored].tolist()) == set(range(POLICY_ACTIONS)), f"{name}: not every action is explored"
    assert abs(shares["notebook"] - shares["QPolicy"]) < np.sqrt(2) * tolerance


class _RecordingPolicy:
    """The random agent, noting every state it is handed, the epsilon it is given and the action it picks."""

    def __init__(self, num_actions: int):
        self.random = RandomPolicy(num_actions)
        self.num_actions = num_actions
        self.calls: list[tuple[bytes, float, int]] = []

    def __call__(self, state, rng, epsilon=0.0):
        action = self.random(state, rng, epsilon)
        self.calls.append((np.asarray(state).tobytes(), epsilon, action))
        return action


def test_evaluate_agent_of_06_agrees_on_breakout(notebook_06):
    """On 2 short real Breakout games, evaluate_agent and evaluation.evaluate show the policy the same states, same scores."""
    episodes, epsilon, seed, max_frames = 2, 0.05, 2, 400  # seed 2: games that score points (0 and 2)
    solution_policy, reference_policy = _RecordingPolicy(4), _RecordingPolicy(4)
    with make_env(training=False, max_episode_frames=max_frames) as env:  # as evaluation.evaluate builds it
        solution = notebook_06["evaluate_agent"](env, solution_policy, episodes, epsilon=epsilon, seed=seed)
    reference = reference_evaluate(
        reference_policy, episodes=episodes, epsilon=epsilon, seed=seed, max_episode_frames=max_frames, progress=False
    )
    assert isinstance(solution, np.ndarray) and solution.dtype == np.float64
    assert np.array_equal(solution, reference)
    assert len(solution_policy.calls) == len(reference_policy.calls)
    assert solution_policy.calls == reference_policy.calls


@pytest.mark.parametrize("scale", [1, 2])
def test_write_video_of_06_agrees(notebook_06, tmp_path, scale):
    """write_video and video.write_video write MP4s that decode to the same number of frames, pixel for pixel the same."""
    frames = list(np.random.default_rng(scale).integers(0, 256, (5, 210, 160, 3), dtype=np.uint8))
    solution_path, reference_path = tmp_path / "notebook" / "clip.mp4", tmp_path / "reference" / "clip.mp4"
    solution_count = notebook_06["write_video"](iter(frames), solution_path, fps=15, scale=scale)
    reference_count = reference_write_video(iter(frames), reference_path, fps=15, scale=scale)
    assert solution_count == reference_count == len(frames)
    decoded = {}
    for name, path in [("notebook", solution_path), ("reference", reference_path)]:
        with imageio.get_reader(path, format="FFMPEG") as reader:
            decoded[name] = np.stack([np.asarray(frame) for frame in reader])
    assert decoded["notebook"].shape == decoded["reference"].shape == (len(frames), 210 * scale, 160 * scale, 3)
    assert np.array_equal(decoded["notebook"], decoded["reference"])


def test_every_exercise_cell_named_here_exists():
    """The table above names real cells: renaming an exercise's grade_id must update these tests."""
    for notebook, grade_ids in EXERCISES.items():
        if (SOLUTIONS / notebook).is_dir():
            cells = _cells(notebook)
            missing = [grade_id for grade_id in ["setup", *grade_ids] if grade_id not in cells]
            assert not missing, f"solutions/{notebook} lacks the cells {missing}"
