"""Acting: epsilon-greedy action selection over a Q-network, and a random agent."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from dqn_helpers._tensorflow import keras, tf

__all__ = ["Policy", "QPolicy", "RandomPolicy", "epsilon_greedy"]


class Policy(Protocol):
    """Anything that picks an action for one state."""

    num_actions: int

    def __call__(self, state: np.ndarray, rng: np.random.Generator, epsilon: float = 0.0) -> int:
        """Choose an action for one state."""


def epsilon_greedy(q_values: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """Pick a uniformly random action with probability ``epsilon``, else the greedy one.

    Args:
        q_values: Q-values of one state, shape ``(num_actions,)``.
        epsilon: Probability of a random action, in [0, 1].
        rng: The random generator.

    Returns:
        The chosen action.

    Raises:
        ValueError: If ``epsilon`` is outside [0, 1] or ``q_values`` is not 1-D.

    Example:
        >>> epsilon_greedy(np.array([0.1, 0.9, 0.3]), 0.0, np.random.default_rng(0))
        1
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    q_values = np.asarray(q_values)
    if q_values.ndim != 1:
        raise ValueError(f"q_values must have shape (num_actions,), got {q_values.shape}")
    if rng.random() < epsilon:
        return int(rng.integers(q_values.shape[0]))
    return int(np.argmax(q_values))


class QPolicy:
    """Epsilon-greedy policy over a Keras Q-network, with a compiled forward pass.

    Call it with one state (evaluation, videos) or use :meth:`act` for a batch of
    states, one per environment (training over several environments at once).

    Args:
        q_network: Maps a batch of ``uint8`` states to Q-values ``(batch, num_actions)``.

    Example:
        >>> from dqn_helpers.networks import nature_cnn
        >>> policy = QPolicy(nature_cnn(4))
        >>> policy(np.zeros((4, 84, 84), np.uint8), np.random.default_rng(0), epsilon=1.0) in range(4)
        True
        >>> policy.act(np.zeros((3, 4, 84, 84), np.uint8), np.random.default_rng(0), epsilon=0.0).shape
        (3,)
    """

    def __init__(self, q_network: keras.Model):
        self.q_network = q_network
        self.num_actions = int(q_network.output_shape[-1])
        state_spec = tf.TensorSpec((None, *q_network.input_shape[1:]), tf.uint8)
        self._forward = tf.function(lambda states: q_network(states, training=False), input_signature=[state_spec])

    def q_values(self, state: np.ndarray) -> np.ndarray:
        """The Q-values of one state, shape ``(num_actions,)``."""
        return self._forward(state[None])[0].numpy()

    def act(self, states: np.ndarray, rng: np.random.Generator, epsilon: float = 0.0) -> np.ndarray:
        """Epsilon-greedy actions for a batch of states, each random with probability ``epsilon``.

        Args:
            states: ``uint8`` states of shape ``(batch, *state_shape)``.
            rng: The random generator.
            epsilon: Probability of a random action, in [0, 1].

        Returns:
            ``int64`` actions of shape ``(batch,)``.
        """
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        explore = rng.random(len(states)) < epsilon
        actions = rng.integers(self.num_actions, size=len(states))
        # Skip the forward pass when every action will be random anyway.
        if not explore.all():
            actions = np.where(explore, actions, self._forward(states).numpy().argmax(axis=1))
        return actions

    def __call__(self, state: np.ndarray, rng: np.random.Generator, epsilon: float = 0.0) -> int:
        """Choose an action for one state (greedy, or random with probability ``epsilon``)."""
        return int(self.act(state[None], rng, epsilon)[0])


class RandomPolicy:
    """The uniformly random agent, the floor every score is compared with."""

    def __init__(self, num_actions: int):
        if num_actions <= 0:
            raise ValueError(f"num_actions must be positive, got {num_actions}")
        self.num_actions = num_actions

    def __call__(self, state: np.ndarray, rng: np.random.Generator, epsilon: float = 1.0) -> int:
        """Choose a uniformly random action."""
        return int(rng.integers(self.num_actions))
