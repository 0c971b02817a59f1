r"""Uniform experience replay that stores every 84x84 frame once.

A transition's state and next state are stacks of 4 frames that overlap in 3 of
them, and consecutive transitions overlap again. Storing the stacks would keep each
frame 8 times; this buffer keeps one frame per transition (the newest frame of the
next state) and rebuilds the stacks when it samples, as Dopamine's circular replay
buffer does.

Memory per transition, at capacity:

====================  =====================
frame                 84 x 84 x 1 B = 7,056 B
action                1 B (uint8)
reward                4 B (float32)
terminated            1 B (bool)
position in episode   1 B (uint8, capped at 255)
**total**             **7,063 B**
====================  =====================

against 2 x 4 x 84 x 84 x 4 B = 225,792 B for float32 stack pairs. Each episode
also uses one slot for its first frame, which is not a transition.

Stacks never cross an episode start: frames from before it are zeros, exactly as
``FrameStackObservation(..., padding_type="zero")`` in :mod:`dqn_helpers.envs`
pads them, so the states the agent learns from are the states it acted on.

With ``n_step > 1`` a sampled transition carries the discounted sum of up to
``n_step`` rewards and the state reached after them (Sutton 1988; Hessel et al.
2018 found it one of Rainbow's most useful parts):

.. math::

    R = \sum_{j=0}^{k-1} \gamma^j r_{t+j}, \qquad
    y = R + \gamma^k (1 - \text{terminated}) \max_{a'} Q_{\bar\theta}(s_{t+k}, a')

where ``k = n_step``, or fewer where the episode ends first (or where the buffer's
newest transition is reached): the batch's ``discounts`` hold each ``gamma**k``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from dqn_helpers.envs import FRAME_SHAPE, STACK_SIZE

__all__ = ["Batch", "ReplayBuffer", "VectorReplayBuffer"]

_POSITION_CAP = np.iinfo(np.uint8).max


class Batch(NamedTuple):
    """A batch of transitions; the first axis of every array is the batch."""

    states: np.ndarray  # uint8, (B, 4, 84, 84)
    actions: np.ndarray  # int64, (B,)
    rewards: np.ndarray  # float32, (B,)
    next_states: np.ndarray  # uint8, (B, 4, 84, 84)
    terminated: np.ndarray  # float32, (B,): 1.0 where the episode really ended
    # float32, (B,): gamma**k for a k-step return; None for one-step transitions (the learner's gamma).
    discounts: np.ndarray | None = None


class ReplayBuffer:
    """A circular, uniform replay buffer of ``uint8`` frame stacks.

    Call :meth:`add` once per agent step with the transition just taken. Within an
    episode, each ``state`` must be the previous ``next_state``; an episode ends
    with ``terminated`` or ``truncated``, and the next ``add`` starts a new one.

    Args:
        capacity: How many transitions to keep (agent steps); the oldest are
            overwritten first.
        frame_shape: Shape of one frame.
        stack_size: Frames per state.
        n_step: Rewards summed per sampled transition before bootstrapping (1: plain DQN).
        gamma: Discount per agent step within those rewards (used only if ``n_step > 1``).

    Raises:
        ValueError: If ``capacity`` is not positive or smaller than a stack, or
            ``n_step`` or ``gamma`` is out of range.

    Example:
        >>> buffer = ReplayBuffer(capacity=100, frame_shape=(2, 2), stack_size=4)
        >>> state = np.zeros((4, 2, 2), np.uint8)
        >>> for t in range(1, 6):
        ...     next_state = np.concatenate([state[1:], np.full((1, 2, 2), t, np.uint8)])
        ...     buffer.add(state, action=1, reward=1.0, next_state=next_state, terminated=False)
        ...     state = next_state
        >>> len(buffer)
        5
        >>> batch = buffer.sample(3, np.random.default_rng(0))
        >>> batch.states.shape, batch.next_states.dtype
        ((3, 4, 2, 2), dtype('uint8'))
    """

    _ARRAYS = ("frames", "actions", "rewards", "terminated", "positions")

    def __init__(
        self,
        capacity: int,
        frame_shape: tuple[int, ...] = FRAME_SHAPE,
        stack_size: int = STACK_SIZE,
        *,
        n_step: int = 1,
        gamma: float = 0.99,
    ):
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        if stack_size <= 0:
            raise ValueError(f"stack_size must be positive, got {stack_size}")
        if capacity <= stack_size:
            raise ValueError(f"capacity must exceed stack_size ({stack_size}), got {capacity}")
        if n_step <= 0 or n_step >= capacity:
            raise ValueError(f"n_step must be positive and below capacity ({capacity}), got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.n_step = n_step
        self.gamma = gamma
        self.capacity = capacity
        self.frame_shape = tuple(frame_shape)
        self.stack_size = stack_size
        self._frames = np.zeros((capacity, *self.frame_shape), dtype=np.uint8)
        self._actions = np.zeros(capacity, dtype=np.uint8)
        self._rewards = np.zeros(capacity, dtype=np.float32)
        self._terminated = np.zeros(capacity, dtype=bool)
        # Agent steps since the episode's first frame (0 marks that frame's slot).
        self._positions = np.zeros(capacity, dtype=np.uint8)
        self._written = 0  # slots ever written: the logical index of the next one
        self._transitions = 0  # transitions among the slots still held
        self._episode_open = False

    def __len__(self) -> int:
        """The number of transitions held (the oldest few may lack frames to sample)."""
        return self._transitions

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays (allocated up front, at full capacity)."""
        return sum(getattr(self, f"_{name}").nbytes for name in self._ARRAYS)

    def add(
        self,
        state: np.ndarray,
        action: int,
        reward: float,
        next_state: np.ndarray,
        terminated: bool,
        truncated: bool = False,
    ) -> None:
        """Store one transition.

        Args:
            state: The stack the agent acted on, ``uint8`` of shape ``(stack_size, *frame_shape)``.
            action: The action taken (0-255).
            reward: The reward received (already clipped, if clipping is wanted).
            next_state: The stack that followed.
            terminated: True if the episode really ended here (no bootstrapping).
            truncated: True if the episode was cut short (a time limit): the
                target still bootstraps from ``next_state``, but the next ``add``
                starts a new episode.

        Raises:
            ValueError: If a stack has the wrong shape or dtype, the action is out
                of range, or ``state`` does not continue the previous transition.
        """
        self._check_stack("state", state)
        self._check_stack("next_state", next_state)
        if int(action) != action or not 0 <= action <= 255:
            raise ValueError(f"action must be an integer in [0, 255], got {action}")
        if self._episode_open:
            previous = self._frames[(self._written - 1) % self.capacity]
            if not np.array_equal(state[-1], previous):
                raise ValueError(
                    "state does not continue the previous transition: within an episode, each state must be "
                    "the previous next_state (is `state = next_state` missing?), and an episode must end with "
                    "terminated=True or truncated=True before a new one starts"
                )
            position = min(int(self._positions[(self._written - 1) % self.capacity]) + 1, _POSITION_CAP)
        else:
            self._write_slot(state[-1], 0, 0.0, False, position=0)
            position = 1
        self._write_slot(next_state[-1], action, reward, terminated, position)
        self._episode_open = not (terminated or truncated)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Draw transitions uniformly at random, with replacement.

        Args:
            batch_size: How many transitions to draw.
            rng: The random generator to draw with (pass one for reproducibility).

        Returns:
            A :class:`Batch` of NumPy arrays.

        Raises:
            ValueError: If ``batch_size`` is not positive or the buffer is empty.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if self._transitions == 0:
            raise ValueError("cannot sample from an empty replay buffer: add transitions first")
        indices = np.empty(0, dtype=np.int64)
        oldest = max(0, self._written - self.capacity)
        while indices.size < batch_size:
            candidates = rng.integers(oldest, self._written, size=2 * batch_size)
            indices = np.concatenate([indices, candidates[self._valid(candidates, oldest)]])
        indices = indices[:batch_size]
        slots = indices % self.capacity
        rewards, last = self._rewards[slots], indices
        if self.n_step > 1:
            rewards, last = self._n_step_returns(indices)
        return Batch(
            states=self._stacks(indices - 1),
            actions=self._actions[slots].astype(np.int64),
            rewards=rewards,
            next_states=self._stacks(last),
            terminated=self._terminated[last % self.capacity].astype(np.float32),
            discounts=None if self.n_step == 1 else (self.gamma ** (last - indices + 1)).astype(np.float32),
        )

    def _n_step_returns(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The discounted reward sums from ``indices`` on, and the logical index of each sum's last transition.

        A sum stops after ``n_step`` transitions, after a terminated one, before the
        next episode's first frame (its position is 0) and at the newest transition.
        """
        rewards = self._rewards[indices % self.capacity].astype(np.float64)
        last = indices.copy()
        going = ~self._terminated[indices % self.capacity]
        for j in range(1, self.n_step):
            later = indices + j
            slots = later % self.capacity
            going &= (later < self._written) & (self._positions[slots] > 0)
            rewards += np.where(going, self.gamma**j * self._rewards[slots], 0.0)
            last = np.where(going, later, last)
            going &= ~self._terminated[slots]
        return rewards.astype(np.float32), last

    def state_dict(self) -> dict[str, np.ndarray]:
        """The buffer's contents and cursors, for a checkpoint (``np.savez`` can store it).

        The arrays are the buffer's own, not copies (a full buffer holds gigabytes):
        save them before the next :meth:`add`.
        """
        arrays = {name: getattr(self, f"_{name}") for name in self._ARRAYS}
        counters = np.array([self._written, self._transitions], dtype=np.int64)
        return {**arrays, "counters": counters}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned.

        The episode that was under way when the state was saved cannot go on (the
        environment restarts), so it counts as truncated: its transitions still
        bootstrap, and the next ``add`` starts a new episode.

        Raises:
            ValueError: If the arrays do not fit this buffer's capacity and shapes.
        """
        self.check_state_dict(state)
        for name in self._ARRAYS:
            getattr(self, f"_{name}")[...] = state[name]
        self._written, self._transitions = (int(n) for n in state["counters"])
        self._episode_open = False

    def check_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Check that :meth:`load_state_dict` can load ``state``, without loading it.

        Raises:
            ValueError: If the arrays do not fit this buffer's capacity and shapes.
        """
        missing = [name for name in (*self._ARRAYS, "counters") if name not in state]
        if missing:
            raise ValueError(f"replay state lacks {', '.join(missing)}: it was not made by ReplayBuffer.state_dict")
        for name in self._ARRAYS:
            mine, theirs = getattr(self, f"_{name}"), np.asarray(state[name])
            if theirs.shape != mine.shape or theirs.dtype != mine.dtype:
                raise ValueError(
                    f"replay state does not fit this buffer: {name} needs {mine.dtype} {mine.shape}, "
                    f"got {theirs.dtype} {theirs.shape}"
                )

    def _write_slot(self, frame: np.ndarray, action: int, reward: float, terminated: bool, position: int) -> None:
        slot = self._written % self.capacity
        if self._written >= self.capacity and self._positions[slot] > 0:
            self._transitions -= 1  # overwriting the oldest transition
        self._frames[slot] = frame
        self._actions[slot] = action
        self._rewards[slot] = reward
        self._terminated[slot] = terminated
        self._positions[slot] = position
        self._written += 1
        if position > 0:
            self._transitions += 1

    def _valid(self, indices: np.ndarray, oldest: int) -> np.ndarray:
        """Which logical indices are transitions whose frames are all still held."""
        positions = self._positions[indices % self.capacity].astype(np.int64)
        # The state reaches back min(position, stack_size) slots, or to the episode start.
        return (positions > 0) & (indices - np.minimum(positions, self.stack_size) >= oldest)

    def _stacks(self, newest: np.ndarray) -> np.ndarray:
        """Rebuild the stacks whose newest frames sit at logical indices ``newest``."""
        offsets = np.arange(self.stack_size - 1, -1, -1)  # oldest frame first
        logical = newest[:, None] - offsets[None, :]
        stacks = self._frames[logical % self.capacity]
        # A frame belongs to the stack only if it comes after the episode's first frame.
        positions = self._positions[newest % self.capacity].astype(np.int64)
        before_episode = offsets[None, :] > positions[:, None]
        stacks[before_episode] = 0
        return stacks

    def _check_stack(self, name: str, stack: np.ndarray) -> None:
        expected = (self.stack_size, *self.frame_shape)
        if not isinstance(stack, np.ndarray) or stack.shape != expected or stack.dtype != np.uint8:
            got = (
                f"{stack.dtype} array of shape {stack.shape}" if isinstance(stack, np.ndarray) else type(stack).__name__
            )
            raise ValueError(f"{name} must be a uint8 array of shape {expected}, got {got}")


class VectorReplayBuffer:
    """Replay for several environments that step together: one :class:`ReplayBuffer` each.

    Consecutive transitions from different environments belong to different
    episodes, so each environment keeps its own stream of frames (``capacity //
    num_envs`` transitions). Sampling is uniform over every transition held.

    Args:
        capacity: How many transitions to keep in all (agent steps).
        num_envs: How many environments add a transition at each :meth:`add`.
        frame_shape: Shape of one frame.
        stack_size: Frames per state.
        n_step: Rewards summed per sampled transition (see :class:`ReplayBuffer`).
        gamma: Discount per agent step within those rewards.

    Raises:
        ValueError: If ``num_envs`` is not positive or ``capacity // num_envs`` is
            not a valid :class:`ReplayBuffer` capacity.

    Example:
        >>> buffer = VectorReplayBuffer(capacity=20, num_envs=2, frame_shape=(2, 2), stack_size=2)
        >>> states = np.zeros((2, 2, 2, 2), np.uint8)
        >>> next_states = np.ones((2, 2, 2, 2), np.uint8)
        >>> buffer.add(states, np.array([0, 1]), np.array([0.0, 1.0]), next_states,
        ...            np.array([False, True]), np.array([False, False]))
        >>> len(buffer), buffer.sample(5, np.random.default_rng(0)).states.shape
        (2, (5, 2, 2, 2))
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        frame_shape: tuple[int, ...] = FRAME_SHAPE,
        stack_size: int = STACK_SIZE,
        *,
        n_step: int = 1,
        gamma: float = 0.99,
    ):
        if num_envs <= 0:
            raise ValueError(f"num_envs must be positive, got {num_envs}")
        if capacity < num_envs:
            raise ValueError(f"capacity ({capacity}) must be at least num_envs ({num_envs})")
        self.capacity = capacity
        self.buffers = [
            ReplayBuffer(capacity // num_envs, frame_shape, stack_size, n_step=n_step, gamma=gamma)
            for _ in range(num_envs)
        ]

    def __len__(self) -> int:
        """The number of transitions held, over all environments."""
        return sum(len(buffer) for buffer in self.buffers)

    @property
    def nbytes(self) -> int:
        """Bytes held by all the buffers' arrays."""
        return sum(buffer.nbytes for buffer in self.buffers)

    def add(
        self,
        states: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_states: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Store one transition per environment; the first axis of every argument is the environment.

        Raises:
            ValueError: If an argument does not hold one entry per environment, or
                as :meth:`ReplayBuffer.add` for each transition.
        """
        arguments = {
            "states": states,
            "actions": actions,
            "rewards": rewards,
            "next_states": next_states,
            "terminated": terminated,
            "truncated": truncated,
        }
        for name, values in arguments.items():
            if len(values) != len(self.buffers):
                raise ValueError(f"{name} must hold one entry per environment ({len(self.buffers)}), got {len(values)}")
        for i, buffer in enumerate(self.buffers):
            buffer.add(states[i], actions[i], rewards[i], next_states[i], bool(terminated[i]), bool(truncated[i]))

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Draw transitions uniformly at random over all environments, with replacement.

        Raises:
            ValueError: If ``batch_size`` is not positive or no transition is held.
        """
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        sizes = np.array([len(buffer) for buffer in self.buffers], dtype=np.float64)
        if sizes.sum() == 0:
            raise ValueError("cannot sample from an empty replay buffer: add transitions first")
        counts = rng.multinomial(batch_size, sizes / sizes.sum())
        parts = [buffer.sample(int(n), rng) for buffer, n in zip(self.buffers, counts) if n > 0]
        return Batch(*(None if arrays[0] is None else np.concatenate(arrays) for arrays in zip(*parts)))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every buffer's :meth:`ReplayBuffer.state_dict`, keys prefixed by the environment's index."""
        return {
            f"{i}/{key}": value for i, buffer in enumerate(self.buffers) for key, value in buffer.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned; all buffers or none.

        Raises:
            ValueError: If the state was saved with another number of environments
                or does not fit the buffers.
        """
        saved_envs = {key.split("/", 1)[0] for key in state}
        if saved_envs != {str(i) for i in range(len(self.buffers))}:
            raise ValueError(
                f"replay state holds {len(saved_envs)} environments' buffers, this one has {len(self.buffers)}"
            )
        parts = [
            {key.split("/", 1)[1]: value for key, value in state.items() if key.startswith(f"{i}/")}
            for i in range(len(self.buffers))
        ]
        for buffer, part in zip(self.buffers, parts):
            buffer.check_state_dict(part)
        for buffer, part in zip(self.buffers, parts):
            buffer.load_state_dict(part)
