"""Tests of dqn_helpers.policies: epsilon-greedy, the Q-network policy, the random agent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dqn_helpers.networks import nature_cnn
from dqn_helpers.policies import QPolicy, RandomPolicy, epsilon_greedy

DRAWS = 4_000
# Binomial standard deviation of a frequency near 1/4 over 4,000 draws:
# sqrt(0.25 * 0.75 / 4000) = 0.0068; 0.03 is more than 4 of them.
TOLERANCE = 0.03


def frequencies(choices, num_actions: int) -> np.ndarray:
    """How often each action was chosen, as fractions."""
    return np.bincount(np.asarray(choices), minlength=num_actions) / len(choices)


@pytest.fixture(scope="module")
def q_network():
    """A Nature CNN for 4 actions whose head favours action 2 by a wide margin."""
    model = nature_cnn(4)
    model.get_layer("q_values").bias.assign(np.array([0.0, 0.5, 3.0, -1.0], np.float32))
    return model


@pytest.fixture(scope="module")
def policy(q_network):
    """The QPolicy over that network (compiled once)."""
    return QPolicy(q_network)


@pytest.fixture(scope="module")
def states():
    """A few random uint8 states."""
    return np.random.default_rng(0).integers(0, 256, size=(5, 4, 84, 84), dtype=np.uint8)


# --- epsilon_greedy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q_values", "greedy"),
    [
        ([0.1, 0.9, 0.3], 1),
        ([-5.0, -1.0, -3.0, -2.0], 1),  # all negative: the least negative
        ([7.0], 0),  # one action
        ([2.0, 2.0, 1.0], 0),  # ties: the first maximum, as np.argmax
        ([0.0, 0.0, 0.0, 1e-6], 3),
    ],
)
def test_epsilon_zero_is_always_greedy(q_values, greedy):
    """With epsilon 0 every one of many draws is the argmax."""
    rng = np.random.default_rng(1)
    assert {epsilon_greedy(np.array(q_values), 0.0, rng) for _ in range(200)} == {greedy}


def test_epsilon_one_is_uniform_over_actions():
    """With epsilon 1 the greedy action has no advantage: every action about 1/4 of the time."""
    rng = np.random.default_rng(2)
    q_values = np.array([0.0, 0.0, 10.0, 0.0])
    freq = frequencies([epsilon_greedy(q_values, 1.0, rng) for _ in range(DRAWS)], 4)
    np.testing.assert_allclose(freq, 0.25, atol=TOLERANCE)


def test_intermediate_epsilon_mixes_greedy_and_random():
    """With epsilon 0.3 the greedy action comes 0.7 + 0.3 / 4 = 0.775 of the time, each other 0.075."""
    rng = np.random.default_rng(3)
    freq = frequencies([epsilon_greedy(np.array([1.0, 2.0, 0.0, -1.0]), 0.3, rng) for _ in range(DRAWS)], 4)
    np.testing.assert_allclose(freq, [0.075, 0.775, 0.075, 0.075], atol=TOLERANCE)


def test_epsilon_greedy_returns_python_int():
    """The action is a plain int, as env.step and the replay buffer expect."""
    action = epsilon_greedy(np.array([0.1, 0.2], np.float32), 0.0, np.random.default_rng(0))
    assert type(action) is int


def test_epsilon_greedy_is_reproducible_with_a_seed():
    """The same seed gives the same sequence of actions."""
    q_values = np.array([0.3, 0.1, 0.2])
    first, second = np.random.default_rng(7), np.random.default_rng(7)
    assert [epsilon_greedy(q_values, 0.5, first) for _ in range(50)] == [
        epsilon_greedy(q_values, 0.5, second) for _ in range(50)
    ]


@pytest.mark.parametrize("epsilon", [-0.1, 1.5, math.nan])
def test_invalid_epsilon_raises(epsilon):
    """Epsilon outside [0, 1] (or NaN) raises ValueError."""
    with pytest.raises(ValueError, match=r"epsilon must be in \[0, 1\]"):
        epsilon_greedy(np.array([0.1, 0.2]), epsilon, np.random.default_rng(0))


@pytest.mark.parametrize("q_values", [np.zeros((1, 4)), np.zeros((2, 4)), np.float64(1.0)])
def test_q_values_must_be_one_dimensional(q_values):
    """A batch of Q-values (or a scalar) is rejected: one state at a time."""
    with pytest.raises(ValueError, match=r"q_values must have shape \(num_actions,\)"):
        epsilon_greedy(q_values, 0.1, np.random.default_rng(0))


# --- QPolicy -----------------------------------------------------------------------------


def test_qpolicy_reads_num_actions_from_the_network():
    """num_actions is the network's output width."""
    assert QPolicy(nature_cnn(6)).num_actions == 6


def test_qpolicy_q_values_match_the_network(policy, q_network, states):
    """q_values(state) is the network's output for that one state."""
    for state in states:
        q = policy.q_values(state)
        assert q.shape == (4,)
        np.testing.assert_allclose(q, q_network(state[None]).numpy()[0], rtol=1e-6)


def test_qpolicy_greedy_is_the_argmax(policy, q_network, states):
    """With epsilon 0 the policy picks the network's argmax (action 2 here) for every state."""
    rng = np.random.default_rng(0)
    expected = q_network(states).numpy().argmax(axis=1)
    assert list(expected) == [2] * len(states)  # the head bias dominates
    assert [policy(state, rng, 0.0) for state in states] == list(expected)
    assert all(type(policy(state, rng)) is int for state in states)  # epsilon defaults to 0


def test_qpolicy_epsilon_one_is_uniform(policy, states):
    """With epsilon 1 the strongly preferred action 2 is no more frequent than the others."""
    rng = np.random.default_rng(4)
    freq = frequencies([policy(states[0], rng, 1.0) for _ in range(DRAWS)], 4)
    np.testing.assert_allclose(freq, 0.25, atol=TOLERANCE)


def test_qpolicy_intermediate_epsilon(policy, states):
    """With epsilon 0.2: action 2 with probability 0.8 + 0.2 / 4 = 0.85."""
    rng = np.random.default_rng(5)
    freq = frequencies([policy(states[1], rng, 0.2) for _ in range(1_000)], 4)
    # Over 1,000 draws the standard deviation is sqrt(0.85 * 0.15 / 1000) = 0.011.
    np.testing.assert_allclose(freq, [0.05, 0.05, 0.85, 0.05], atol=0.045)


def test_qpolicy_act_is_the_argmax_of_each_state(policy, q_network, states):
    """act() on a batch with epsilon 0 returns each state's argmax, as int64 of shape (batch,)."""
    actions = policy.act(states, np.random.default_rng(0), 0.0)
    assert actions.shape == (len(states),) and actions.dtype == np.int64
    np.testing.assert_array_equal(actions, q_network(states).numpy().argmax(axis=1))


def test_qpolicy_act_explores_each_state_independently(policy, states):
    """With epsilon 0.5, each row is random on its own: the greedy action 2 has probability 0.5 + 0.5 / 4."""
    rng = np.random.default_rng(7)
    batch = np.repeat(states[:1], 8, axis=0)
    actions = np.concatenate([policy.act(batch, rng, 0.5) for _ in range(250)])  # 2,000 draws
    # A shared coin per batch would give the same frequency but all-or-nothing rows.
    rows = actions.reshape(250, 8)
    assert ((rows == 2).all(axis=1)).mean() < 0.2  # independent rows: 0.625**8 = 0.02
    np.testing.assert_allclose((actions == 2).mean(), 0.625, atol=0.05)


@pytest.mark.parametrize("epsilon", [-0.1, 1.5])
def test_qpolicy_act_rejects_epsilon_out_of_range(policy, states, epsilon):
    """Epsilon outside [0, 1] is an error that names the value."""
    with pytest.raises(ValueError, match=rf"epsilon must be in \[0, 1\], got {epsilon}"):
        policy.act(states, np.random.default_rng(0), epsilon)


# --- RandomPolicy --------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 1.0])
def test_random_policy_is_uniform_whatever_epsilon(epsilon):
    """The random agent ignores epsilon: uniform over its actions."""
    rng = np.random.default_rng(6)
    policy = RandomPolicy(4)
    state = np.zeros((4, 84, 84), np.uint8)
    choices = [policy(state, rng, epsilon) for _ in range(DRAWS)]
    assert all(type(action) is int for action in choices[:10])
    np.testing.assert_allclose(frequencies(choices, 4), 0.25, atol=TOLERANCE)


def test_random_policy_covers_all_actions_and_no_more():
    """Every one of 18 actions appears, and none outside range(18)."""
    rng = np.random.default_rng(8)
    choices = {RandomPolicy(18)(None, rng) for _ in range(1_000)}
    assert choices == set(range(18))


@pytest.mark.parametrize("num_actions", [0, -3])
def test_random_policy_rejects_non_positive_actions(num_actions):
    """A random agent needs at least one action."""
    with pytest.raises(ValueError, match=f"num_actions must be positive, got {num_actions}"):
        RandomPolicy(num_actions)
