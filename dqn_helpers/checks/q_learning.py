"""Visible checks of notebook 01, From Q-learning to DQN.

Each ``check_*`` function takes the student's answer, runs it on small cases worked
out by hand, and raises ``AssertionError`` with a message that names the mistake.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from dqn_helpers.checks import StepBudget, as_numbers, call_answer, reference_answers

__all__ = [
    "EARLIER_EXERCISES",
    "check_epsilon_greedy_explores",
    "check_epsilon_greedy_is_greedy",
    "check_huber_gradient_is_clipped",
    "check_huber_loss_values",
    "check_q_learning_bootstraps",
    "check_q_learning_finds_the_safe_shortest_path",
    "check_td_targets_terminal",
    "check_td_targets_values",
    "greedy_path",
]

# Three transitions, two actions; every number distinct so that a max over the wrong
# axis, a missing discount or a broadcast shows up. gamma = 0.5:
#   y0 = 1 + 0.5 * max(2, 6)  = 4.0
#   y1 = 0 + 0.5 * max(-4, -2) = -1.0
#   y2 = 2 + 0.5 * max(10, 8) = 7.0
CLIFF_STEP_LIMIT = 500  # agent steps per CliffWalking episode in the checks
_REWARDS = np.array([1.0, 0.0, 2.0])
_NEXT_Q = np.array([[2.0, 6.0], [-4.0, -2.0], [10.0, 8.0]])
_GAMMA = 0.5
_EXPECTED = np.array([4.0, -1.0, 7.0])


_HINTS = {
    "broadcast": "A max over the batch (axis 0) gives one value per action, which does not line up with one "
    "reward per transition: take the max over the actions, axis=1.",
}


def check_td_targets_values(td_targets: Callable) -> None:
    """Check TD targets on a batch worked out by hand, with no terminal step.

    Raises:
        AssertionError: Naming a wrong shape (a broadcast), a max over the batch
            axis, a missing or squared discount, or other wrong values.
    """
    targets = as_numbers(
        call_answer(td_targets, "td_targets", _REWARDS, np.zeros(3), _NEXT_Q, _GAMMA, hints=_HINTS), "td_targets"
    )
    if targets.shape == (3, 3):
        raise AssertionError(
            "your targets have shape (3, 3) for a batch of 3: an array of shape (3, 1) was broadcast against one "
            "of shape (3,). Keep every per-transition quantity one-dimensional, shape (batch,)"
        )
    if targets.shape != (3,):
        raise AssertionError(f"td_targets must return one target per transition, shape (3,), got shape {targets.shape}")
    if np.allclose(targets, _REWARDS + _GAMMA * _NEXT_Q.max()):
        raise AssertionError(
            "your max runs over the whole batch instead of over each row's actions (axis 1): "
            "each transition bootstraps from its own next state's best action"
        )
    if np.allclose(targets, _REWARDS + _NEXT_Q.max(axis=1)):
        raise AssertionError("your target ignores the discount factor gamma: y = r + gamma * max_a' Q(s', a')")
    if np.allclose(targets, _REWARDS + _GAMMA**2 * _NEXT_Q.max(axis=1)):
        raise AssertionError("your target discounts twice: multiply max_a' Q(s', a') by gamma once")
    if not np.allclose(targets, _EXPECTED):
        raise AssertionError(
            f"for rewards {_REWARDS.tolist()}, next Q-values {_NEXT_Q.tolist()} and gamma = {_GAMMA}, "
            f"the targets are {_EXPECTED.tolist()} (y = r + gamma * max over actions), got {targets.tolist()}"
        )


def check_td_targets_terminal(td_targets: Callable) -> None:
    """Check that a terminal transition's target is its reward alone, for 0/1 floats and for booleans.

    Raises:
        AssertionError: If the target bootstraps past the end of the game, or the
            mask is inverted.
    """
    terminated = np.array([0.0, 1.0, 1.0])
    expected = np.array([_EXPECTED[0], _REWARDS[1], _REWARDS[2]])
    for flags in (terminated, terminated.astype(bool)):
        targets = as_numbers(
            call_answer(td_targets, "td_targets", _REWARDS, flags, _NEXT_Q, _GAMMA, hints=_HINTS), "td_targets"
        )
        if targets.shape == (3,) and np.allclose(targets, _EXPECTED):
            raise AssertionError(
                "your target ignores `terminated`: after the last step of a game there is no next state, "
                "so the target is the reward alone, y = r"
            )
        if targets.shape == (3,) and np.allclose(targets, [_REWARDS[0], _EXPECTED[1], _EXPECTED[2]]):
            raise AssertionError(
                "your terminal mask is inverted: bootstrap where terminated is 0, not where it is 1 "
                "(multiply by 1 - terminated)"
            )
        if targets.shape != (3,) or not np.allclose(targets, expected):
            raise AssertionError(
                f"with terminated = {flags.tolist()} the targets are {expected.tolist()}, got {targets.tolist()}"
            )


def _action_counts(epsilon_greedy: Callable, q_values: np.ndarray, epsilon: float, draws: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(q_values), dtype=int)
    for _ in range(draws):
        action = call_answer(epsilon_greedy, "epsilon_greedy", q_values, epsilon, rng)
        if not isinstance(action, (int, np.integer)) or not 0 <= action < len(q_values):
            raise AssertionError(
                f"epsilon_greedy must return an action index from 0 to {len(q_values) - 1} (an int), got {action!r}"
            )
        counts[action] += 1
    return counts


def check_epsilon_greedy_is_greedy(epsilon_greedy: Callable) -> None:
    """Check that with epsilon = 0 the best action is always chosen.

    Raises:
        AssertionError: If another action is picked, or not an integer index.
    """
    for q_values in (np.array([0.1, 0.9, 0.3]), np.array([-5.0, -1.0, -3.0, -2.0]), np.array([7.0, 2.0])):
        counts = _action_counts(epsilon_greedy, q_values, epsilon=0.0, draws=50, seed=0)
        best = int(np.argmax(q_values))
        if counts[best] != 50:
            picked = int(np.argmax(counts))
            hint = (
                " (that is the worst action: argmin instead of argmax?)" if picked == int(np.argmin(q_values)) else ""
            )
            raise AssertionError(
                f"with epsilon = 0 the greedy action {best} of Q = {q_values.tolist()} must always be chosen, "
                f"but your function chose {counts.tolist()} times each action{hint}"
            )


def check_epsilon_greedy_explores(epsilon_greedy: Callable) -> None:
    """Check the action frequencies with epsilon = 1 and epsilon = 0.2.

    With probability epsilon the action is uniform over *all* actions, the greedy
    one included: with 4 actions and epsilon = 0.2, the greedy action comes
    0.8 + 0.2 / 4 = 85% of the time and each other one 5%.

    Raises:
        AssertionError: If exploration is missing, inverted, or leaves out actions.
    """
    q_values = np.array([0.5, 2.0, -1.0, 0.0])
    draws = 4000
    uniform = _action_counts(epsilon_greedy, q_values, epsilon=1.0, draws=draws, seed=1) / draws
    if uniform[1] > 0.9:
        raise AssertionError(
            "with epsilon = 1 every action must be random, but yours stays greedy: is the comparison with epsilon inverted?"
        )
    if uniform[1] < 0.1:
        raise AssertionError(
            "with epsilon = 1 your function never picks the greedy action: a random action is drawn from all "
            "actions, the greedy one included"
        )
    if np.any(np.abs(uniform - 0.25) > 0.04):
        raise AssertionError(
            f"with epsilon = 1 each of the 4 actions should come about 25% of the time, got {np.round(uniform, 3).tolist()}"
        )
    mixed = _action_counts(epsilon_greedy, q_values, epsilon=0.2, draws=draws, seed=2) / draws
    if abs(mixed[1] - 0.85) > 0.03:
        raise AssertionError(
            f"with epsilon = 0.2 and 4 actions the greedy action should come 0.8 + 0.2/4 = 85% of the time, "
            f"got {mixed[1]:.1%}: explore with probability epsilon, exploit otherwise"
        )


def check_huber_loss_values(huber_loss: Callable) -> None:
    """Check the Huber loss, elementwise, inside and outside ``delta``.

    Raises:
        AssertionError: Naming a squared loss, an absolute loss, a missing 1/2,
            or a non-elementwise result.
    """
    errors = np.array([0.5, -0.5, 3.0, -3.0, 0.0])
    # |e| <= 1: 0.5 e^2 -> 0.125; |e| = 3 > 1: 1 * (3 - 0.5) = 2.5.
    expected = np.array([0.125, 0.125, 2.5, 2.5, 0.0])
    loss = as_numbers(call_answer(huber_loss, "huber_loss", errors), "huber_loss")
    if loss.shape != errors.shape:
        raise AssertionError(
            f"huber_loss must work elementwise: errors of shape {errors.shape} give losses of shape {errors.shape}, got {loss.shape}"
        )
    if np.allclose(loss, errors**2) or np.allclose(loss, 0.5 * errors**2):
        raise AssertionError("your loss is quadratic everywhere: beyond |error| = delta the Huber loss grows linearly")
    if np.allclose(loss, np.abs(errors)):
        raise AssertionError(
            "your loss is |error| everywhere: within |error| <= delta the Huber loss is 0.5 * error**2"
        )
    if np.allclose(loss, [0.25, 0.25, 5.0, 5.0, 0.0]):
        raise AssertionError(
            "your loss is twice too large: the quadratic part is 0.5 * error**2, the linear part delta * (|error| - delta / 2)"
        )
    if not np.allclose(loss, expected):
        raise AssertionError(
            f"for errors {errors.tolist()} and delta = 1 the losses are {expected.tolist()}, got {loss.tolist()}"
        )
    # delta = 2: |e| = 3 -> 2 * (3 - 1) = 4; |e| = 0.5 -> 0.125.
    wide = as_numbers(call_answer(huber_loss, "huber_loss", np.array([0.5, 3.0]), delta=2.0), "huber_loss")
    if not np.allclose(wide, [0.125, 4.0]):
        raise AssertionError(
            f"with delta = 2 the losses of errors [0.5, 3.0] are [0.125, 4.0], got {wide.tolist()}: use delta, not 1"
        )


def check_huber_gradient_is_clipped(huber_gradient: Callable) -> None:
    """Check that the gradient of the Huber loss is the error clipped to [-delta, delta].

    Raises:
        AssertionError: If the gradient is unclipped, a sign, or ignores delta.
    """
    errors = np.array([-3.0, -0.5, 0.0, 0.25, 2.0])
    gradient = as_numbers(call_answer(huber_gradient, "huber_gradient", errors), "huber_gradient")
    if gradient.shape == errors.shape and np.allclose(gradient, errors):
        raise AssertionError("your gradient is the raw error, as for a squared loss: the Huber loss caps it at +-delta")
    if gradient.shape == errors.shape and np.allclose(gradient, np.sign(errors)):
        raise AssertionError("your gradient is the sign of the error everywhere: within +-delta it is the error itself")
    if gradient.shape != errors.shape or not np.allclose(gradient, [-1.0, -0.5, 0.0, 0.25, 1.0]):
        raise AssertionError(
            f"for errors {errors.tolist()} and delta = 1 the gradient is [-1, -0.5, 0, 0.25, 1], got {gradient.tolist()}"
        )
    wide = as_numbers(call_answer(huber_gradient, "huber_gradient", np.array([-3.0, 1.5]), delta=2.0), "huber_gradient")
    if not np.allclose(wide, [-2.0, 1.5]):
        raise AssertionError(
            f"with delta = 2 the gradient of errors [-3, 1.5] is [-2, 1.5], got {wide.tolist()}: clip to +-delta"
        )


class _OneStateEnv(gym.Env):
    """One state, two actions; every step pays 1 and ends the episode, by ``terminated`` or by ``truncated``."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, ends_by: str):
        self.ends_by = ends_by

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 1.0, self.ends_by == "terminated", self.ends_by == "truncated", {}


class _ChainEnv(gym.Env):
    """States 0 -> 1 -> 2 -> end, whatever the action; reaching the end pays 1."""

    observation_space = gym.spaces.Discrete(3)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = 0
        return 0, {}

    def step(self, action):
        self.position += 1
        if self.position == 3:
            return 2, 1.0, True, False, {}
        return self.position, 0.0, False, False, {}


def _reference_td_targets(rewards, terminated, next_q_values, gamma):
    """Exercise 1's answer: y = r + gamma * (1 - terminated) * max_a' Q(s', a')."""
    not_over = 1.0 - np.asarray(terminated, dtype=np.float64)
    return np.asarray(rewards, dtype=np.float64) + gamma * not_over * np.max(next_q_values, axis=1)


def _reference_epsilon_greedy(q_values, epsilon, rng):
    """Exercise 2's answer: a uniformly random action with probability epsilon, else the greedy one.

    dqn_helpers.policies.epsilon_greedy is the same rule, but importing that module
    loads TensorFlow, which notebook 01 and its checks do without.
    """
    if rng.random() < epsilon:
        return int(rng.integers(len(q_values)))
    return int(np.argmax(q_values))


# What q_learning calls of the earlier exercises: the checks (and the hidden tests) of
# exercise 4 run it with these, so that a mistake in td_targets or epsilon_greedy costs
# only their own points (checks.reference_answers).
EARLIER_EXERCISES = {"td_targets": _reference_td_targets, "epsilon_greedy": _reference_epsilon_greedy}


def _learn(q_learning: Callable, env: gym.Env, episodes: int, gamma: float, seed: int = 0) -> tuple[np.ndarray, list]:
    with reference_answers(q_learning, **EARLIER_EXERCISES):
        result = call_answer(q_learning, "q_learning", env, episodes, alpha=0.5, gamma=gamma, epsilon=0.1, seed=seed)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise AssertionError(f"q_learning must return (q_table, returns), got {type(result).__name__}")
    q_table, returns = np.asarray(result[0], dtype=np.float64), list(result[1])
    expected_shape = (env.observation_space.n, env.action_space.n)
    if q_table.shape != expected_shape:
        raise AssertionError(
            f"the Q-table must have one row per state and one column per action, {expected_shape}, got {q_table.shape}"
        )
    if len(returns) != episodes:
        raise AssertionError(f"q_learning must return one return per episode ({episodes}), got {len(returns)}")
    return q_table, returns


def check_q_learning_bootstraps(q_learning: Callable) -> None:
    """Check that the update bootstraps exactly when it should, and moves through the states.

    On a one-state game paying 1 per step with gamma = 0.5, Q converges to 1 when
    each step ends the game (terminated) and to 1 / (1 - 0.5) = 2 when each step is
    cut off by a time limit (truncated), since the game could have gone on. Each
    wrong value points at its own mistake: 2 in the first game is bootstrapping after
    ``terminated``; 1 in the second (with 1 in the first) is truncation taken for the
    end; anything else is in how the update moves Q. It runs with the package's
    ``td_targets`` and ``epsilon_greedy`` (:data:`EARLIER_EXERCISES`).

    Raises:
        AssertionError: Naming a target that ignores ``terminated``, truncation treated
            as termination, an update that does not move Q toward its target, or a loop
            that never moves to the next state; or saying what it saw and the likely causes.
    """
    q_terminated, returns = _learn(q_learning, _OneStateEnv("terminated"), episodes=60, gamma=0.5)
    if not np.allclose(returns, 1.0):
        raise AssertionError(
            f"each episode of this test game pays exactly 1, but your returns are {sorted(set(returns))}"
        )
    ended = q_terminated.max()
    if abs(ended - 2.0) < 0.25:
        raise AssertionError(
            "your update bootstraps after `terminated`: when the game is over there is no next state, "
            f"so Q should approach the reward, 1, but it reached {ended:.2f}, the value of a game that goes on. "
            "Give the target the `terminated` that env.step returned"
        )
    if abs(ended - 1.0) > 0.1:
        growing = " and keeps growing: is alpha * target added without taking Q(s, a) off?" if ended > 2.5 else ""
        raise AssertionError(
            "in a test game where every step pays 1 and ends the game, Q should settle at the reward, 1, but it "
            f"reached {ended:.2f}{growing}. The update must move Q(s, a) toward its target by "
            "alpha * (target - Q(s, a))"
        )
    q_truncated, _ = _learn(q_learning, _OneStateEnv("truncated"), episodes=60, gamma=0.5)
    cut = q_truncated.max()
    if abs(cut - 1.0) < 0.1:
        raise AssertionError(
            "your update treats a time-limit truncation as the end of the game: after `truncated` the game could "
            "have gone on, so the target must still bootstrap (pass `terminated`, not `terminated or truncated`); "
            f"Q should approach 2, but it is {cut:.2f}, as if every step ended the game"
        )
    if abs(cut - 2.0) > 0.25:
        raise AssertionError(
            "in a test game cut off by a time limit after every step, Q should settle at 1 / (1 - gamma) = 2, since "
            f"the game could have gone on, but it reached {cut:.2f}. Likely causes: the target does not add "
            "gamma * max Q(next_state) (look at q_table[[next_state]] and gamma), or the update is not "
            "alpha * (target - Q(s, a))"
        )
    q_chain, _ = _learn(q_learning, _ChainEnv(), episodes=60, gamma=0.9)
    if np.allclose(q_chain[1:], 0.0):
        raise AssertionError(
            "only the first state's Q-values ever change: the update always uses the first state. "
            "Is `state = next_state` missing?"
        )


def greedy_path(q_table: np.ndarray, env: gym.Env, max_steps: int = 100) -> tuple[list[int], float]:
    """Follow the greedy policy of a Q-table from a reset; return the states visited and the return.

    Example:
        >>> env = gym.make("CliffWalking-v1")
        >>> states, total = greedy_path(np.zeros((48, 4)), env, max_steps=3)  # all ties: always "up"
        >>> states, total
        ([36, 24, 12, 0], -3.0)
    """
    state, _ = env.reset(seed=0)
    states, total = [int(state)], 0.0
    for _ in range(max_steps):
        state, reward, terminated, truncated, _ = env.step(int(np.argmax(q_table[state])))
        states.append(int(state))
        total += float(reward)
        if terminated or truncated:
            break
    return states, total


def check_q_learning_finds_the_safe_shortest_path(q_learning: Callable, episodes: int = 200) -> None:
    """Check that Q-learning on CliffWalking learns the optimal path: 13 steps along the cliff, return -13.

    It runs with the package's ``td_targets`` and ``epsilon_greedy`` (:data:`EARLIER_EXERCISES`).

    Raises:
        AssertionError: If the greedy policy does not reach the goal in 13 steps.
    """
    # The time limit keeps a policy that walks into a wall from running forever; the
    # step budget stops a loop that also ignores the limit's `truncated`.
    env = StepBudget(gym.make("CliffWalking-v1", max_episode_steps=CLIFF_STEP_LIMIT), max_steps=2 * CLIFF_STEP_LIMIT)
    q_table, _ = _learn(q_learning, env, episodes=episodes, gamma=0.99, seed=3)
    states, total = greedy_path(q_table, env)
    if total != -13:
        raise AssertionError(
            f"after {episodes} episodes the greedy policy should walk the 13-step path along the cliff (return -13), "
            f"but from the start it visits {states[:20]}{'...' if len(states) > 20 else ''} with return {total:g}"
        )
