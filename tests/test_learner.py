"""Tests of dqn_helpers.learner: TD targets, the Huber loss and the DQN update.

The classic DQN mistakes each get a test whose expectation is computed by hand (or
by NumPy from the networks' own outputs) on a tiny batch, chosen so that the
mistaken computation would give a clearly different number.
"""

from __future__ import annotations

import numpy as np
import pytest

from dqn_helpers import learner as learner_module
from dqn_helpers._tensorflow import tf
from dqn_helpers.learner import (
    DQNLearner,
    TrainStepResult,
    cpu_has_native_bfloat16,
    huber_loss,
    resolve_precision,
    td_targets,
)
from dqn_helpers.replay import ReplayBuffer

NUM_ACTIONS = 4
GAMMA = 0.5


def numpy_huber(errors: np.ndarray) -> np.ndarray:
    """Huber loss with delta 1, written independently of the package."""
    errors = np.abs(np.asarray(errors, np.float64))
    return np.where(errors <= 1.0, 0.5 * errors**2, errors - 0.5)


def make_batch(seed: int = 0):
    """A batch of 6 transitions (not square: 4 actions) with varied rewards and terminals."""
    rng = np.random.default_rng(seed)
    states = rng.integers(0, 256, size=(6, 4, 84, 84), dtype=np.uint8)
    next_states = rng.integers(0, 256, size=(6, 4, 84, 84), dtype=np.uint8)
    actions = np.array([0, 1, 2, 3, 0, 1], np.int64)
    rewards = np.array([-1.0, -1.0, 1.0, 2.0, -1.0, 0.0], np.float32)
    terminated = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0], np.float32)
    return states, actions, rewards, next_states, terminated


def set_head_bias(network, bias) -> None:
    """Shift a network's Q-values by a bias per action (its random kernel adds only about +-0.05)."""
    network.get_layer("q_values").bias.assign(np.asarray(bias, np.float32))


def weights(network) -> list[np.ndarray]:
    """Copies of all of a network's weights."""
    return [np.array(w) for w in network.get_weights()]


def assert_weights_equal(left: list[np.ndarray], right: list[np.ndarray]) -> None:
    """Every array bit-identical."""
    assert len(left) == len(right)
    for a, b in zip(left, right):
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def shared_learners():
    """A DQN and a Double DQN learner (two CNNs and a compiled step each) with their initial states, built once."""
    built = {}
    for double_dqn in (False, True):
        learner = DQNLearner(NUM_ACTIONS, learning_rate=1e-3, gamma=GAMMA, double_dqn=double_dqn)
        built[double_dqn] = (learner, learner.get_state())
    return built


def _reset(shared_learners, double_dqn: bool) -> DQNLearner:
    learner, initial = shared_learners[double_dqn]
    learner.set_state(initial)
    return learner


@pytest.fixture
def learner(shared_learners):
    """The shared DQN learner, reset to its initial weights and optimizer state."""
    return _reset(shared_learners, double_dqn=False)


@pytest.fixture
def double_learner(shared_learners):
    """The shared Double DQN learner, reset to its initial state."""
    return _reset(shared_learners, double_dqn=True)


# --- td_targets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rewards", "terminated", "next_q", "gamma", "expected"),
    [
        # Terminal transitions: the target is the reward alone, whatever comes next.
        ([1.0, -1.0], [1.0, 1.0], [[5.0, 7.0], [9.0, 3.0]], 0.99, [1.0, -1.0]),
        # Non-terminal: r + gamma * max_a' Q(s', a') = 1 + 0.5 * 7, 0 + 0.5 * 9.
        ([1.0, 0.0], [0.0, 0.0], [[5.0, 7.0], [9.0, 3.0]], 0.5, [4.5, 4.5]),
        # Mixed: 2 + 0.9 * 4 = 5.6 and 3 (terminal).
        ([2.0, 3.0], [0.0, 1.0], [[4.0, -1.0], [10.0, 20.0]], 0.9, [5.6, 3.0]),
        # gamma = 0: rewards only.
        ([0.5, -0.5], [0.0, 0.0], [[100.0, 1.0], [1.0, 100.0]], 0.0, [0.5, -0.5]),
        # Negative Q-values: the max is the least negative, -1 -> 1 + (-1) = 0.
        ([1.0], [0.0], [[-3.0, -1.0, -2.0]], 1.0, [0.0]),
    ],
)
def test_td_targets_table(rewards, terminated, next_q, gamma, expected):
    """Y = r + gamma (1 - terminated) max_a' Q_target(s', a'), on hand-computed cases."""
    np.testing.assert_allclose(td_targets(rewards, terminated, next_q, gamma).numpy(), expected, rtol=1e-6)


def test_td_targets_terminal_equals_reward_even_with_large_next_values():
    """A terminated transition never bootstraps past the end of the game."""
    targets = td_targets([0.0, 1.0, -1.0], [1.0, 1.0, 1.0], np.full((3, 4), 1e6, np.float32), 0.99)
    np.testing.assert_array_equal(targets.numpy(), [0.0, 1.0, -1.0])


def test_td_targets_max_is_over_actions_not_batch():
    """On a non-square batch with distinct values the max runs along the action axis."""
    next_q = np.array([[1.0, 5.0, 2.0], [7.0, 2.0, 3.0]], np.float32)  # 2 transitions, 3 actions
    # Row maxima are 5 and 7; the column maxima (the mistake) would be [7, 5, 3].
    targets = td_targets([0.0, 0.0], [0.0, 0.0], next_q, 1.0)
    assert targets.shape == (2,)
    np.testing.assert_array_equal(targets.numpy(), [5.0, 7.0])


def test_td_targets_shape_and_dtype():
    """Targets are float32 of shape (batch,), even from float64 and integer inputs."""
    targets = td_targets(np.array([1, 2, 3]), np.array([0, 0, 1]), np.ones((3, 5)), 0.5)
    assert targets.shape == (3,)
    assert targets.dtype == tf.float32
    np.testing.assert_array_equal(targets.numpy(), [1.5, 2.5, 3.0])


@pytest.mark.parametrize(
    ("rewards", "terminated", "next_q"),
    [
        (np.ones((3, 1)), np.zeros(3), np.ones((3, 2))),  # (B, 1) reward: would broadcast to (B, B)
        (np.ones(3), np.zeros((3, 1)), np.ones((3, 2))),  # (B, 1) terminated
        (np.ones(3), np.zeros(3), np.ones(3)),  # next Q-values without the action axis
        (np.ones(3), np.zeros(3), np.ones((3, 2, 1))),  # an extra axis
    ],
)
def test_td_targets_rejects_shapes_that_would_broadcast(rewards, terminated, next_q):
    """Shapes other than (B,), (B,), (B, A) raise ValueError instead of broadcasting."""
    with pytest.raises(ValueError, match=r"expected rewards and terminated of shape \(batch,\)"):
        td_targets(rewards, terminated, next_q, 0.99)


@pytest.mark.parametrize(
    ("rewards", "terminated", "next_q", "next_q_online"),
    [
        (np.ones(3), np.ones(1), np.ones((3, 2)), None),  # one terminal flag would mark the whole batch
        (np.ones(1), np.zeros(1), np.ones((3, 2)), None),  # one reward broadcast over three next states
        (np.ones(2), np.zeros(2), np.ones((3, 2)), None),
        (np.ones(3), np.zeros(3), np.ones((3, 2)), np.ones((3, 4))),  # online Q-values of another action count
    ],
)
def test_td_targets_rejects_batches_that_do_not_line_up(rewards, terminated, next_q, next_q_online):
    """Batch sizes that differ raise ValueError instead of broadcasting silently."""
    with pytest.raises(ValueError, match="same batch size|same shape"):
        td_targets(rewards, terminated, next_q, 0.99, next_q_online)


def test_double_dqn_target_uses_target_value_at_online_argmax():
    """Double DQN: the online network picks a', the target network values it."""
    next_q_target = np.array([[1.0, 10.0], [4.0, 2.0]], np.float32)
    next_q_online = np.array([[5.0, 0.0], [0.0, 9.0]], np.float32)  # argmax [0, 1]; target's argmax is [1, 0]
    targets = td_targets([0.0, 0.0], [0.0, 0.0], next_q_target, 1.0, next_q_online=next_q_online)
    # Q_target at the online argmax: [1, 2]. The mistakes give other numbers: the target's own
    # argmax [10, 4], online values at online argmax [5, 9], online values at target argmax [0, 0].
    np.testing.assert_array_equal(targets.numpy(), [1.0, 2.0])


def test_double_dqn_target_respects_terminal_and_gamma():
    """Double DQN targets also use r + gamma (1 - terminated) ... ."""
    next_q_target = np.array([[1.0, 10.0, 3.0], [4.0, 2.0, 8.0]], np.float32)
    next_q_online = np.array([[0.0, 0.0, 1.0], [2.0, 0.0, 0.0]], np.float32)  # argmax [2, 0]
    targets = td_targets([1.0, -1.0], [0.0, 1.0], next_q_target, 0.5, next_q_online=next_q_online)
    np.testing.assert_allclose(targets.numpy(), [1.0 + 0.5 * 3.0, -1.0])


def test_truncated_transitions_keep_bootstrapping():
    """A time-limit truncation is stored as not terminated, so its target bootstraps."""
    buffer = ReplayBuffer(capacity=16, frame_shape=(2, 2), stack_size=4)
    state = np.zeros((4, 2, 2), np.uint8)
    for t in range(1, 4):  # three steps, the last one cut off by a time limit
        next_state = np.concatenate([state[1:], np.full((1, 2, 2), t, np.uint8)])
        buffer.add(state, action=0, reward=1.0, next_state=next_state, terminated=False, truncated=t == 3)
        state = next_state
    batch = buffer.sample(32, np.random.default_rng(0))
    np.testing.assert_array_equal(batch.terminated, np.zeros(32))
    next_q = np.tile([[2.0, 3.0]], (32, 1)).astype(np.float32)
    # Every target is 1 + 0.5 * 3 = 2.5, the truncated last step included.
    np.testing.assert_array_equal(td_targets(batch.rewards, batch.terminated, next_q, 0.5).numpy(), np.full(32, 2.5))


# --- huber_loss ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "delta", "expected"),
    [
        (0.0, 1.0, 0.0),
        (0.5, 1.0, 0.125),  # 0.5 * 0.5^2
        (-0.5, 1.0, 0.125),
        (1.0, 1.0, 0.5),  # both branches agree at |e| = delta
        (-3.0, 1.0, 2.5),  # 1 * (3 - 0.5)
        (100.0, 1.0, 99.5),
        (1.5, 2.0, 1.125),  # quadratic inside delta = 2: 0.5 * 1.5^2
        (-5.0, 2.0, 8.0),  # 2 * (5 - 1)
    ],
)
def test_huber_loss_values(error, delta, expected):
    """0.5 e^2 for |e| <= delta, delta (|e| - delta / 2) beyond."""
    assert float(huber_loss([error], delta=delta).numpy()[0]) == pytest.approx(expected)


def test_huber_loss_is_elementwise():
    """A vector of errors gives a vector of losses of the same shape."""
    errors = np.array([-2.0, -0.2, 0.0, 0.7, 4.0], np.float32)
    losses = huber_loss(errors).numpy()
    assert losses.shape == (5,)
    np.testing.assert_allclose(losses, numpy_huber(errors), rtol=1e-6)


@pytest.mark.parametrize(
    ("delta", "errors", "expected_gradient"),
    [
        (1.0, [-3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0, 50.0], [-1.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.0, 1.0]),
        (2.0, [-5.0, -1.5, 0.5, 2.5], [-2.0, -1.5, 0.5, 2.0]),
    ],
)
def test_huber_gradient_is_the_clipped_error(delta, errors, expected_gradient):
    """D Huber / d e is e clipped to [-delta, delta], so one bad target cannot blow up a step."""
    errors = tf.Variable(np.array(errors, np.float32))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(huber_loss(errors, delta=delta))
    np.testing.assert_allclose(tape.gradient(total, errors).numpy(), expected_gradient, rtol=1e-6)


# --- DQNLearner ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\], got 1.5"),
        ({"gamma": -0.1}, r"gamma must be in \[0, 1\], got -0.1"),
        ({"learning_rate": 0.0}, "learning_rate must be positive, got 0.0"),
        ({"learning_rate": -1e-4}, "learning_rate must be positive"),
    ],
)
def test_learner_rejects_bad_settings(kwargs, message):
    """Out-of-range gamma or learning rate raise ValueError."""
    with pytest.raises(ValueError, match=message):
        DQNLearner(NUM_ACTIONS, **kwargs)


def test_target_network_is_a_separate_trainable_free_copy(learner):
    """Two distinct networks with distinct variables; the target one has nothing to train."""
    assert learner.target_network is not learner.online_network
    online_ids = {id(v) for v in learner.online_network.weights}
    assert online_ids.isdisjoint(id(v) for v in learner.target_network.weights)
    assert learner.target_network.trainable_variables == []
    # Built synced: equal values.
    assert_weights_equal(weights(learner.target_network), weights(learner.online_network))


def test_train_step_returns_floats(learner):
    """train_step reports a TrainStepResult of Python floats."""
    result = learner.train_step(*make_batch())
    assert isinstance(result, TrainStepResult)
    assert isinstance(result.loss, float) and isinstance(result.mean_q, float)


def test_train_step_leaves_target_network_bit_identical(learner):
    """Gradients never reach the target network and train_step does not sync it."""
    before_target, before_online = weights(learner.target_network), weights(learner.online_network)
    for seed in range(3):
        learner.train_step(*make_batch(seed))
    assert_weights_equal(weights(learner.target_network), before_target)
    changed = [not np.array_equal(a, b) for a, b in zip(weights(learner.online_network), before_online)]
    assert all(changed), "every online variable should move after three Adam steps"


def test_sync_target_copies_without_aliasing(learner):
    """sync_target makes the target equal to the online network, yet later updates leave it alone."""
    learner.train_step(*make_batch(0))
    assert not all(
        np.array_equal(a, b) for a, b in zip(weights(learner.target_network), weights(learner.online_network))
    )
    learner.sync_target()
    synced = weights(learner.online_network)
    assert_weights_equal(weights(learner.target_network), synced)
    learner.train_step(*make_batch(1))
    assert_weights_equal(weights(learner.target_network), synced)  # a copy, not the same variables
    assert not np.array_equal(weights(learner.online_network)[0], synced[0])


def _hand_computed(learner, batch, *, double: bool):
    """Loss, mean Q and the classic mistakes' losses, from the networks' outputs before the step."""
    states, actions, rewards, next_states, terminated = batch
    rows = np.arange(len(actions))
    q = learner.online_network(states).numpy().astype(np.float64)
    next_q_target = learner.target_network(next_states).numpy().astype(np.float64)
    next_q_online = learner.online_network(next_states).numpy().astype(np.float64)
    not_done = 1.0 - terminated
    if double:
        next_values = next_q_target[rows, next_q_online.argmax(axis=1)]
    else:
        next_values = next_q_target.max(axis=1)
    targets = rewards + GAMMA * not_done * next_values
    q_taken = q[rows, actions]
    mistakes = {
        "max_a Q(s, a) instead of Q(s, a_taken)": targets - q.max(axis=1),
        "online network for the target": rewards + GAMMA * not_done * next_q_online.max(axis=1) - q_taken,
        "terminated ignored": rewards + GAMMA * next_values - q_taken,
    }
    if double:
        mistakes["Double DQN with the target's argmax"] = (
            rewards + GAMMA * not_done * next_q_target.max(axis=1) - q_taken
        )
    else:
        mistakes["Double DQN used"] = (
            rewards + GAMMA * not_done * next_q_target[rows, next_q_online.argmax(axis=1)] - q_taken
        )
    expected = numpy_huber(targets - q_taken).mean()
    return expected, q_taken.mean(), {name: numpy_huber(e).mean() for name, e in mistakes.items()}


@pytest.mark.parametrize("double", [False, True], ids=["dqn", "double_dqn"])
def test_train_step_loss_is_huber_of_target_minus_q_taken(learner, double_learner, double):
    """The reported loss is mean Huber(r + gamma (1-done) Q_target(s', .) - Q(s, a_taken)), before the update."""
    learner = double_learner if double else learner
    # Make the networks disagree clearly: the online Q-values are about [0, 1, 2, 3] (argmax 3),
    # the target's about [4, -2, 3, -2] (argmax 0; their random kernels add only about +-0.05).
    # With gamma 0.5 the non-terminal targets are about r + 2 (DQN: max 4) or r - 1 (Double DQN:
    # the target's -2 at the online argmax 3). DQN errors y - Q(s, a) are then about
    # [1, -2, 1, 1, -1, 1], a loss near (0.5 + 1.5 + 4 * 0.5) / 6 = 0.67; Double DQN errors about
    # [-2, -2, -2, -2, -1, -2], a loss near (5 * 1.5 + 0.5) / 6 = 1.33. Each mistake is 0.25 or
    # more away (found by a search over small integer biases and rewards).
    set_head_bias(learner.online_network, [0.0, 1.0, 2.0, 3.0])
    set_head_bias(learner.target_network, [4.0, -2.0, 3.0, -2.0])
    batch = make_batch()
    expected_loss, expected_mean_q, mistaken = _hand_computed(learner, batch, double=double)
    result = learner.train_step(*batch)
    assert result.loss == pytest.approx(expected_loss, rel=1e-4)
    assert result.mean_q == pytest.approx(expected_mean_q, rel=1e-4, abs=1e-5)
    for name, loss in mistaken.items():  # the batch tells the right loss from each mistake
        assert abs(loss - expected_loss) > 0.1, name


def test_second_step_still_bootstraps_from_the_old_target_network(learner):
    """After one update, the next step's targets come from the unsynced target network's values."""
    set_head_bias(learner.online_network, [0.0, 1.0, 2.0, 3.0])
    set_head_bias(learner.target_network, [4.0, -2.0, 3.0, -2.0])
    states, actions, rewards, next_states, terminated = batch = make_batch()
    next_max_before = learner.target_network(next_states).numpy().max(axis=1)  # about 4
    learner.train_step(*batch)
    q_taken = learner.online_network(states).numpy()[np.arange(6), actions]
    targets = rewards + GAMMA * (1.0 - terminated) * next_max_before
    # Had the step synced the target network, its max would be the online one, about 3.
    assert learner.train_step(*batch).loss == pytest.approx(numpy_huber(targets - q_taken).mean(), rel=1e-4)


def test_td_targets_with_a_discount_per_transition():
    """n-step transitions bootstrap with their own gamma**k; terminal ones still do not bootstrap."""
    targets = td_targets([1.0, 1.0, 1.0], [0.0, 0.0, 1.0], [[2.0, 4.0], [2.0, 4.0], [2.0, 4.0]], [0.5, 0.25, 0.5])
    np.testing.assert_allclose(targets.numpy(), [3.0, 2.0, 1.0])


@pytest.mark.parametrize("gamma", [np.full((3, 1), 0.5), np.full(2, 0.5), np.full((3, 3), 0.5)])
def test_td_targets_rejects_discounts_that_would_broadcast(gamma):
    """A (batch, 1) or wrongly sized discount raises instead of producing a (batch, batch) target."""
    with pytest.raises(ValueError, match=r"gamma must be a number or one per transition, shape \(3,\)"):
        td_targets(np.ones(3), np.zeros(3), np.ones((3, 2)), gamma)


def test_train_step_uses_the_batch_discounts(learner):
    """Discounts equal to gamma give the one-step loss; zero discounts give a target of the reward alone."""
    set_head_bias(learner.online_network, [0.0, 1.0, 2.0, 3.0])
    set_head_bias(learner.target_network, [4.0, -2.0, 3.0, -2.0])
    states, actions, rewards, next_states, terminated = batch = make_batch()
    q_taken = learner.online_network(states).numpy()[np.arange(6), actions]
    next_max = learner.target_network(next_states).numpy().max(axis=1)
    discounts = np.array([0.0, 0.5, 0.25, 0.0, 0.5, 0.125], np.float32)
    targets = rewards + discounts * (1.0 - terminated) * next_max
    state = learner.get_state()
    one_step = learner.train_step(*batch).loss
    learner.set_state(state)
    assert learner.train_step(*batch, np.full(6, GAMMA, np.float32)).loss == pytest.approx(one_step, rel=1e-6)
    learner.set_state(state)
    assert learner.train_step(*batch, discounts).loss == pytest.approx(numpy_huber(targets - q_taken).mean(), rel=1e-4)


def test_train_step_accepts_loose_dtypes(learner):
    """Python lists and int32/float64 arrays are converted for the compiled step."""
    states, actions, rewards, next_states, terminated = make_batch()
    result = learner.train_step(
        states, actions.astype(np.int32).tolist(), rewards.astype(np.float64), next_states, terminated.astype(bool)
    )
    assert np.isfinite(result.loss)


def test_overfits_one_fixed_batch(learner):
    """Fifty steps on the same batch at learning rate 1e-3 cut the loss below a fifth."""
    rng = np.random.default_rng(3)
    states = rng.integers(0, 256, size=(8, 4, 84, 84), dtype=np.uint8)
    actions = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    rewards = np.array([1.0, -1.0, 0.5, 2.0, -2.0, 1.0, 0.0, 1.5], np.float32)
    terminated = np.ones(8, np.float32)  # targets = rewards, fixed
    # Q starts near 0: initial loss about mean(0.5, 0.5, 0.125, 1.5, 1.5, 0.5, 0, 1.125) = 0.72.
    losses = [learner.train_step(states, actions, rewards, states, terminated).loss for _ in range(50)]
    assert losses[0] > 0.5
    assert losses[-1] < 0.2 * losses[0]


# --- get_state / set_state ------------------------------------------------------------


@pytest.fixture(scope="module")
def other_learner():
    """A second learner of the same shape, to restore states into."""
    return DQNLearner(NUM_ACTIONS, learning_rate=1e-3, gamma=GAMMA)


def test_get_state_covers_networks_and_optimizer(learner):
    """One array per online and target variable, and the optimizer's slots."""
    state = learner.get_state()
    online = [key for key in state if key.startswith("online/")]
    target = [key for key in state if key.startswith("target/")]
    optimizer = [key for key in state if key.startswith("optimizer/")]
    assert len(online) == len(target) == 10  # kernel and bias of 3 convolutions and 2 dense layers
    assert len(optimizer) >= 2 * 10  # Adam: two moments per trainable variable, plus counters
    for i, variable in enumerate(learner.online_network.weights):
        assert np.shape(state[f"online/{i}"]) == tuple(variable.shape)


def test_set_state_round_trip(learner, other_learner):
    """A fresh learner given get_state() acts, learns and counts exactly like the original."""
    for seed in range(2):
        learner.train_step(*make_batch(seed))
    learner.sync_target()
    learner.train_step(*make_batch(2))  # online and target now differ, Adam has 3 steps of moments
    other_learner.set_state(learner.get_state())
    states = make_batch(5)[0]
    for name in ("online_network", "target_network"):
        np.testing.assert_array_equal(
            getattr(other_learner, name)(states).numpy(), getattr(learner, name)(states).numpy()
        )
    assert int(other_learner.optimizer.iterations.numpy()) == int(learner.optimizer.iterations.numpy()) == 3
    # Same moments: the next update is the same too.
    batch = make_batch(6)
    np.testing.assert_allclose(other_learner.train_step(*batch).loss, learner.train_step(*batch).loss, rtol=1e-6)
    for a, b in zip(weights(other_learner.online_network), weights(learner.online_network)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _broken(state, key, value):
    """A copy of state with one entry replaced (value None: removed)."""
    state = dict(state)
    if value is None:
        del state[key]
    else:
        state[key] = value
    return state


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "online/0",
            np.zeros((4, 4, 4, 32), np.float32),
            r"online variable 0 needs shape \(8, 8, 4, 32\), got shape \(4, 4, 4, 32\)",
        ),
        ("target/9", np.zeros(6, np.float32), r"target variable 9 needs shape \(4,\), got shape \(6,\)"),
        ("optimizer/0", None, "optimizer variable 0 needs shape .*, got nothing"),
    ],
)
def test_set_state_rejects_states_that_do_not_fit(learner, other_learner, key, value, message):
    """A wrong shape or a missing array raises ValueError naming the variable."""
    with pytest.raises(ValueError, match=message):
        other_learner.set_state(_broken(learner.get_state(), key, value))


def test_set_state_from_another_action_count_raises(learner):
    """A 4-action checkpoint does not fit a 6-action learner."""
    with pytest.raises(ValueError, match=r"online variable 8 needs shape \(512, 6\), got shape \(512, 4\)"):
        DQNLearner(6).set_state(learner.get_state())


def test_a_rejected_set_state_changes_nothing(learner, other_learner):
    """A state whose last variable does not fit is refused before any weight is assigned."""
    before = weights(other_learner.online_network)
    last_optimizer_key = max(
        (k for k in learner.get_state() if k.startswith("optimizer/")), key=lambda k: int(k.split("/")[1])
    )
    state = _broken(learner.get_state(), last_optimizer_key, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="does not fit"):
        other_learner.set_state(state)
    assert_weights_equal(weights(other_learner.online_network), before)


# --- compute path: precision and XLA ----------------------------------------------------------

ZEN4_FLAGS = "flags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16 avx512_vnni\n"
ZEN1_FLAGS = "flags\t\t: fpu sse2 avx avx2 fma\n"


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        (ZEN4_FLAGS * 2, True),  # one flags line per core
        ("flags\t\t: fpu avx2 amx_bf16 amx_tile\n", True),
        (ZEN1_FLAGS, False),
        ("flags\t\t: fpu avx512f avx512_bf16x\n", False),  # a longer flag is not the flag
    ],
)
def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path, cpuinfo, native):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\n" + cpuinfo)
    assert cpu_has_native_bfloat16(path) is native


@pytest.mark.parametrize(("native", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_takes_bfloat16_only_where_native(monkeypatch, native, expected):
    monkeypatch.setattr(learner_module, "cpu_has_native_bfloat16", lambda: native)
    assert resolve_precision("auto") == expected
    assert resolve_precision("float32") == "float32" and resolve_precision("bfloat16") == "bfloat16"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match=r"precision must be 'auto' or one of \['bfloat16', 'float32'\], got 'fp16'"):
        DQNLearner(NUM_ACTIONS, precision="fp16")


def test_default_compute_path_is_float32_with_xla(learner):
    assert learner.compute_path == {
        "precision": "float32",
        "xla": True,
        "cpu_native_bfloat16": cpu_has_native_bfloat16(),
    }


def test_bfloat16_learner_warns_without_native_support_and_learns_like_float32(monkeypatch, learner):
    """The bfloat16 update (oneDNN's graph, no XLA) makes the same progress on a batch as the float32 one."""
    monkeypatch.setattr(learner_module, "cpu_has_native_bfloat16", lambda: False)
    with pytest.warns(UserWarning, match="no native bfloat16"):
        half = DQNLearner(NUM_ACTIONS, learning_rate=1e-3, gamma=GAMMA, precision="bfloat16")
    assert half.compute_path["precision"] == "bfloat16" and half.compute_path["xla"] is False
    half.set_state(learner.get_state())  # the same float32 weights and optimizer state
    states, actions, rewards, next_states, terminated = make_batch(seed=4)
    full_losses, half_losses = [], []
    for _ in range(8):
        full_losses.append(learner.train_step(states, actions, rewards, next_states, terminated).loss)
        half_losses.append(half.train_step(states, actions, rewards, next_states, terminated).loss)
    assert isinstance(half_losses[0], float)
    # bfloat16 rounds each product to 8 significant bits: the two paths drift apart by a few per cent of the start.
    np.testing.assert_allclose(half_losses, full_losses, rtol=0.05, atol=0.03 * full_losses[0])
    assert half_losses[-1] < 0.5 * half_losses[0]
