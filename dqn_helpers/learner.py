r"""Learning: TD targets, the Huber loss, a compiled train step, target-network sync.

The DQN loss for a batch of transitions ``(s, a, r, s', terminated)`` is

.. math::

    y = r + \gamma \, (1 - \text{terminated}) \, \max_{a'} Q_{\bar\theta}(s', a')

    L(\theta) = \operatorname{mean}\, \text{Huber}\big(y - Q_\theta(s, a)\big)

where :math:`\bar\theta` are the target network's weights, copied from the online
weights :math:`\theta` every few thousand steps and never trained. Double DQN (van
Hasselt et al. 2016) lets the online network choose :math:`a'` and the target
network value it, which removes most of the max operator's overestimation.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dqn_helpers._tensorflow import keras, tf
from dqn_helpers.networks import PRECISIONS, nature_cnn

__all__ = ["DQNLearner", "TrainStepResult", "cpu_has_native_bfloat16", "huber_loss", "resolve_precision", "td_targets"]

# CPU flags (Linux's /proc/cpuinfo names) of instructions that compute bfloat16 products natively.
NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bfloat16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Tell whether this CPU multiplies bfloat16 natively (AVX512_BF16 or AMX_BF16).

    Without them, oneDNN emulates bfloat16 and a bfloat16 update is several times
    slower than a float32 one (``benchmarks/train_speed.py --impl updates`` measures it).
    Where the flags cannot be read (not Linux), the answer is False: float32 is the
    safe choice.

    Args:
        cpuinfo: The file that lists the CPU's flags.

    Example:
        >>> cpu_has_native_bfloat16("/no/such/file")
        False
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in NATIVE_BFLOAT16_FLAGS)


def resolve_precision(precision: str) -> str:
    """The compute precision a setting asks for: ``"auto"`` is bfloat16 where the CPU has it natively, else float32.

    Raises:
        ValueError: If ``precision`` is none of ``"auto"``, ``"float32"``, ``"bfloat16"``.

    Example:
        >>> resolve_precision("float32")
        'float32'
    """
    if precision == "auto":
        return "bfloat16" if cpu_has_native_bfloat16() else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto' or one of {sorted(PRECISIONS)}, got {precision!r}")
    return precision


def td_targets(
    rewards: tf.Tensor,
    terminated: tf.Tensor,
    next_q_target: tf.Tensor,
    gamma: float | tf.Tensor,
    next_q_online: tf.Tensor | None = None,
) -> tf.Tensor:
    """Bellman targets for a batch, with the terminal mask.

    ``y = r + gamma * (1 - terminated) * max_a' Q_target(s', a')``; with
    ``next_q_online`` (Double DQN): ``y = r + gamma * (1 - terminated) *
    Q_target(s', argmax_a' Q_online(s', a'))``. A truncated (time-limit) episode is
    not terminated: its target still bootstraps.

    Args:
        rewards: Shape ``(batch,)``.
        terminated: 1.0 where the episode really ended, shape ``(batch,)``.
        next_q_target: Target network's Q-values of the next states, ``(batch, actions)``.
        gamma: Discount factor in [0, 1], or one per transition, shape ``(batch,)``
            (``gamma**k`` for the k-step returns of an n-step replay).
        next_q_online: Online network's Q-values of the next states, for Double DQN.

    Returns:
        The targets, float32 of shape ``(batch,)``.

    Raises:
        ValueError: If ranks or batch sizes disagree (a ``(batch, 1)`` reward or
            discount would broadcast into a ``(batch, batch)`` target).

    Example:
        >>> td_targets([1.0, 1.0], [0.0, 1.0], [[2.0, 3.0], [5.0, 4.0]], gamma=0.5).numpy()
        array([2.5, 1. ], dtype=float32)
    """
    rewards = tf.convert_to_tensor(rewards, tf.float32)
    terminated = tf.convert_to_tensor(terminated, tf.float32)
    next_q_target = tf.convert_to_tensor(next_q_target, tf.float32)
    if rewards.shape.rank != 1 or terminated.shape.rank != 1 or next_q_target.shape.rank != 2:
        raise ValueError(
            "expected rewards and terminated of shape (batch,) and next Q-values of shape (batch, actions), got "
            f"{rewards.shape}, {terminated.shape} and {next_q_target.shape}"
        )
    batch_sizes = {rewards.shape[0], terminated.shape[0], next_q_target.shape[0]} - {None}
    if len(batch_sizes) > 1:
        raise ValueError(
            "rewards, terminated and next Q-values must have the same batch size, got "
            f"{rewards.shape[0]}, {terminated.shape[0]} and {next_q_target.shape[0]}"
        )
    gamma = tf.convert_to_tensor(gamma, tf.float32)
    if gamma.shape.rank not in (0, 1) or (gamma.shape.rank == 1 and gamma.shape[0] not in (None, rewards.shape[0])):
        raise ValueError(
            f"gamma must be a number or one per transition, shape ({rewards.shape[0]},), got shape {gamma.shape}"
        )
    if next_q_online is None:
        next_values = tf.reduce_max(next_q_target, axis=1)
    else:
        next_q_online = tf.convert_to_tensor(next_q_online, tf.float32)
        if next_q_online.shape != next_q_target.shape:
            raise ValueError(
                f"online and target next Q-values must have the same shape, got {next_q_online.shape} "
                f"and {next_q_target.shape}"
            )
        next_actions = tf.argmax(next_q_online, axis=1)
        next_values = tf.gather(next_q_target, next_actions, axis=1, batch_dims=1)
    return rewards + gamma * (1.0 - terminated) * next_values


def huber_loss(errors: tf.Tensor, delta: float = 1.0) -> tf.Tensor:
    """Elementwise Huber loss: quadratic for ``|e| <= delta``, linear beyond.

    ``0.5 e^2`` near zero and ``delta (|e| - delta / 2)`` in the tails, so one bad
    target cannot produce a huge gradient: the gradient is ``e`` clipped to
    ``[-delta, delta]``.

    Example:
        >>> huber_loss([0.5, -3.0]).numpy()
        array([0.125, 2.5  ], dtype=float32)
    """
    errors = tf.convert_to_tensor(errors, tf.float32)
    absolute = tf.abs(errors)
    quadratic = tf.minimum(absolute, delta)
    return 0.5 * tf.square(quadratic) + delta * (absolute - quadratic)


class TrainStepResult(NamedTuple):
    """What one update reports."""

    loss: float
    mean_q: float


class DQNLearner:
    """The online and target Q-networks, the optimizer and the update rule.

    Args:
        num_actions: Number of discrete actions.
        learning_rate: Adam's step size.
        gamma: Discount factor.
        double_dqn: Use the Double DQN target.
        adam_epsilon: Adam's epsilon (Dopamine and CleanRL use 1.5e-4 / 1e-8 scaled
            to the loss; larger is steadier with sparse rewards).
        input_shape: Shape of one state.
        precision: Compute precision of the networks' hidden layers: ``"float32"``,
            ``"bfloat16"`` (Q-values, targets and the loss stay float32; weights too),
            or ``"auto"`` (:func:`resolve_precision`).
        jit_compile: Compile the update with XLA. ``None`` chooses by precision:
            XLA for float32 (fastest measured on our CPUs), TensorFlow's graph with
            oneDNN's kernels for bfloat16 (XLA on CPU computes bfloat16 convolutions
            in float32 with casts around them).

    Example:
        >>> learner = DQNLearner(num_actions=4)
        >>> states = np.zeros((2, 4, 84, 84), np.uint8)
        >>> result = learner.train_step(states, np.array([0, 1]), np.array([1.0, 0.0], np.float32),
        ...                             states, np.array([1.0, 0.0], np.float32))
        >>> result.loss > 0
        True
    """

    def __init__(
        self,
        num_actions: int,
        *,
        learning_rate: float = 1e-4,
        gamma: float = 0.99,
        double_dqn: bool = False,
        adam_epsilon: float = 1.5e-4,
        input_shape: tuple[int, int, int] = (4, 84, 84),
        precision: str = "float32",
        jit_compile: bool | None = None,
    ):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        self.gamma = gamma
        self.double_dqn = double_dqn
        self.precision = resolve_precision(precision)
        self.jit_compile = self.precision == "float32" if jit_compile is None else bool(jit_compile)
        if self.precision == "bfloat16" and not cpu_has_native_bfloat16():
            warnings.warn(
                "this CPU has no native bfloat16 (AVX512_BF16 or AMX_BF16): bfloat16 updates will be several times "
                "slower than float32 ones; use precision='float32' or 'auto'",
                stacklevel=2,
            )
        self.online_network = nature_cnn(
            num_actions, input_shape=input_shape, name="online_network", precision=self.precision
        )
        self.target_network = nature_cnn(
            num_actions, input_shape=input_shape, name="target_network", precision=self.precision
        )
        self.target_network.trainable = False
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate, epsilon=adam_epsilon)
        self.optimizer.build(self.online_network.trainable_variables)
        self.sync_target()
        batch_states = tf.TensorSpec((None, *input_shape), tf.uint8)
        batch_vector = tf.TensorSpec((None,), tf.float32)
        # XLA compiles the whole float32 update (forward passes, backward pass, Adam) into one
        # program; benchmarks/train_speed.py --impl updates measures it against the other paths.
        self._compiled_step = tf.function(
            self._train_step,
            input_signature=[
                batch_states,
                tf.TensorSpec((None,), tf.int64),
                batch_vector,
                batch_states,
                batch_vector,
                batch_vector,
            ],
            jit_compile=self.jit_compile,
        )

    @property
    def compute_path(self) -> dict[str, object]:
        """How updates are computed here: precision, XLA or not, and whether the CPU has native bfloat16."""
        return {"precision": self.precision, "xla": self.jit_compile, "cpu_native_bfloat16": cpu_has_native_bfloat16()}

    def sync_target(self) -> None:
        """Copy the online weights into the target network."""
        for target, online in zip(self.target_network.weights, self.online_network.weights):
            target.assign(online)

    def train_step(
        self,
        states: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_states: np.ndarray,
        terminated: np.ndarray,
        discounts: np.ndarray | None = None,
    ) -> TrainStepResult:
        """One gradient step on a batch; returns the loss and the mean Q(s, a).

        ``discounts`` are the bootstrap discounts of n-step transitions (``gamma**k``
        each); without them every transition is one step and discounted by ``gamma``.
        """
        rewards = np.asarray(rewards, np.float32)
        if discounts is None:
            discounts = np.full(rewards.shape, self.gamma, np.float32)
        loss, mean_q = self._compiled_step(
            states,
            np.asarray(actions, np.int64),
            rewards,
            next_states,
            np.asarray(terminated, np.float32),
            np.asarray(discounts, np.float32),
        )
        return TrainStepResult(float(loss), float(mean_q))

    def _train_step(self, states, actions, rewards, next_states, terminated, discounts):
        next_q_target = self.target_network(next_states, training=False)
        next_q_online = self.online_network(next_states, training=False) if self.double_dqn else None
        targets = tf.stop_gradient(td_targets(rewards, terminated, next_q_target, discounts, next_q_online))
        variables = self.online_network.trainable_variables
        with tf.GradientTape() as tape:
            q_values = tf.cast(self.online_network(states, training=True), tf.float32)  # float32 in both precisions
            q_taken = tf.gather(q_values, actions, axis=1, batch_dims=1)
            loss = tf.reduce_mean(huber_loss(targets - q_taken))
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, tf.reduce_mean(q_taken)

    def _variable_groups(self):
        return (
            ("online", self.online_network.weights),
            ("target", self.target_network.weights),
            ("optimizer", self.optimizer.variables),
        )

    def get_state(self) -> dict[str, np.ndarray]:
        """All weights and optimizer slots as NumPy arrays, for a checkpoint."""
        state = {}
        for prefix, variables in self._variable_groups():
            state.update({f"{prefix}/{i}": v.numpy() for i, v in enumerate(variables)})
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned.

        Raises:
            ValueError: If the arrays do not fit these networks.
        """
        # Check everything before assigning anything, so a bad state leaves the learner as it was.
        pairs = []
        for prefix, variables in self._variable_groups():
            for i, variable in enumerate(variables):
                value = state.get(f"{prefix}/{i}")
                if value is None or tuple(value.shape) != tuple(variable.shape):
                    got = "nothing" if value is None else f"shape {value.shape}"
                    raise ValueError(
                        f"checkpoint does not fit: {prefix} variable {i} needs shape {variable.shape}, got {got}"
                    )
                pairs.append((variable, value))
        for variable, value in pairs:
            variable.assign(value)
