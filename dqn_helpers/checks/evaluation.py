"""Visible checks of notebook 06, Evaluation and gameplay video.

Three exercises, three groups of checks:

- the evaluation policy, a class ``Policy(q_network)`` with ``num_actions``,
  ``q_values(state)`` and ``policy(state, rng, epsilon)``: run on a tiny Keras
  network whose Q-values are pixels of the state, so every expected value is known;
- the evaluation loop ``evaluate_agent(env, policy, episodes, epsilon=..., seed=...)``:
  run on a scripted game of five lives with known points per step (Breakout's brick
  values 1, 4 and 7), which records how it was reset and stepped, then on real
  Breakout against :func:`dqn_helpers.evaluation.evaluate`;
- the video writer ``write_video(frames, path, fps=..., scale=...)``: the file is
  read back with imageio and compared with the frames, pixel by pixel.

Each check raises ``AssertionError`` with a message that names the mistake.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from dqn_helpers.checks import StepBudget, call_answer
from dqn_helpers.envs import STATE_SHAPE

__all__ = [
    "check_evaluate_agent_full_games",
    "check_evaluate_agent_matches_the_protocol_on_breakout",
    "check_evaluate_agent_no_op_starts",
    "check_policy_explores",
    "check_policy_is_greedy",
    "check_policy_q_values",
    "check_video_format",
    "check_video_odd_sizes",
    "check_video_pixels",
    "q_values_network",
]

BRICK_POINTS = (1, 4, 7)  # Breakout's bricks: 1 point (low rows), 4 (middle), 7 (top)
LIVES = 5
_Q_SCALE, _Q_OFFSET = 0.25, -20.0  # the tiny network's Q-values: 0.25 * pixel - 20


# --- the evaluation policy ------------------------------------------------------------------------


def q_values_network(num_actions: int = 4):
    """A tiny Keras Q-network whose Q-values are pixels of the state: ``0.25 * state[-1, 0, a] - 20``.

    It takes a batch of ``uint8`` states ``(batch, 4, 84, 84)`` like the Nature CNN, so
    a check can make any action the greedy one by writing the first row of the newest
    frame. A state scaled to [0, 1] is cast back to ``uint8`` by the input layer and
    comes out as zeros, as it would in the Nature CNN.
    """
    from dqn_helpers._tensorflow import keras, tf

    states = keras.Input(STATE_SHAPE, dtype="uint8", name="states")
    pixels = keras.layers.Lambda(
        lambda s: tf.cast(s[:, -1, 0, :num_actions], "float32") * _Q_SCALE + _Q_OFFSET, output_shape=(num_actions,)
    )(states)
    return keras.Model(states, pixels, name="pixel_q_network")


def _state_with_q(q_pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random uint8 state whose first row of its newest frame starts with ``q_pixels``."""
    state = rng.integers(0, 256, size=STATE_SHAPE, dtype=np.uint8)
    state[-1, 0, : len(q_pixels)] = q_pixels
    return state


def _expected_q(state: np.ndarray, num_actions: int) -> np.ndarray:
    return state[-1, 0, :num_actions].astype(np.float64) * _Q_SCALE + _Q_OFFSET


def _with_reference_q_values(policy_class: Callable, num_actions: int) -> Callable:
    """The student's class with the network's exact Q-values in place of its own ``q_values``.

    The checks of choosing an action use it, so that a mistake in ``q_values`` costs only
    the check of ``q_values``, and their messages speak of the choice alone.
    """
    if not isinstance(policy_class, type) or not callable(getattr(policy_class, "q_values", None)):
        return policy_class

    def q_values(self: Any, state: np.ndarray) -> np.ndarray:
        return _expected_q(np.asarray(state), num_actions)

    return type(policy_class.__name__, (policy_class,), {"q_values": q_values})


def _build_policy(policy_class: Callable, num_actions: int) -> Any:
    network = q_values_network(num_actions)
    policy = call_answer(policy_class, f"{getattr(policy_class, '__name__', 'your policy')}(q_network)", network)
    if getattr(policy, "num_actions", None) != num_actions:
        raise AssertionError(
            f"policy.num_actions must be the number of the network's outputs, {num_actions} here, got "
            f"{getattr(policy, 'num_actions', 'no attribute')!r}: read it from q_network.output_shape[-1]"
        )
    return policy


_BATCH_HINTS = {
    "expected shape=(None, 4, 84, 84), found shape=(4, 84, 84)": "The network takes a batch of states: give it a "
    "batch of one, state[None], of shape (1, 4, 84, 84)",
    "only length-1 arrays": "int() got several numbers: is the argmax over the batch axis (axis 0) of Q-values of "
    "shape (1, num_actions), which gives one number per action? Take the argmax of one state's Q-values "
    "(shape (num_actions,)), over the actions",
    "only 0-dimensional arrays": "int() got several numbers: is the argmax over the batch axis (axis 0) of Q-values "
    "of shape (1, num_actions), which gives one number per action? Take the argmax of one state's Q-values "
    "(shape (num_actions,)), over the actions",
    "out of bounds for array of dimension 1": "q_values returns one state's Q-values, shape (num_actions,): it has "
    "no axis 1, the actions are axis 0 (or -1)",
}


def check_policy_q_values(policy_class: Callable, *, num_actions: int = 4, seed: int = 0) -> None:
    """Check that ``policy.q_values(state)`` returns the network's Q-values of one state, shape ``(num_actions,)``.

    Args:
        policy_class: The student's policy class, built as ``policy_class(q_network)``.
        num_actions: Outputs of the test network.
        seed: Seeds the random states.

    Raises:
        AssertionError: If ``num_actions`` is wrong, the state is not batched, the batch
            axis is kept, the state was scaled (the network scales it), or the values differ.
    """
    policy = _build_policy(policy_class, num_actions)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        state = _state_with_q(rng.permutation(np.arange(40, 40 + 30 * num_actions, 30))[:num_actions], rng)
        given = state.copy()
        q_values = call_answer(policy.q_values, "q_values(state)", given, hints=_BATCH_HINTS)
        if not np.array_equal(given, state):
            raise AssertionError(
                "q_values changed the state passed to it: leave it as it is (it is the agent's observation)"
            )
        try:
            q_values = np.asarray(q_values, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise AssertionError(
                f"q_values must return a NumPy array of numbers, got {type(q_values).__name__}"
            ) from error
        expected = _expected_q(state, num_actions)
        if q_values.shape == (1, num_actions):
            raise AssertionError(
                f"q_values must return shape ({num_actions},), one state's Q-values, got {q_values.shape}: the network "
                "returns a batch of one row, take row 0 of it"
            )
        if q_values.shape != (num_actions,):
            raise AssertionError(
                f"q_values must return shape ({num_actions},), one value per action, got {q_values.shape}"
            )
        if np.allclose(q_values, _expected_q(np.zeros_like(state), num_actions)):
            raise AssertionError(
                f"q_values returned {q_values.tolist()}, the network's Q-values of an all-black state: was the state "
                "scaled to [0, 1] (state / 255) or converted to float? The network takes uint8 frames from 0 to 255 "
                "and scales them itself; a float input is cast back to uint8 and rounds to zeros"
            )
        if not np.allclose(q_values, expected, atol=1e-4):
            raise AssertionError(
                f"q_values must return the network's output for the state, {expected.tolist()}, got {q_values.tolist()}"
            )


def _act(policy: Any, state: np.ndarray, rng: np.random.Generator, epsilon: float) -> int:
    action = call_answer(policy, f"policy(state, rng, epsilon={epsilon:g})", state, rng, epsilon, hints=_BATCH_HINTS)
    if isinstance(action, np.ndarray) and action.size > 1:
        raise AssertionError(
            f"the policy must return one action (an int), got an array of shape {action.shape}: is the argmax over "
            "the batch axis (axis 0) of Q-values of shape (1, num_actions)? That gives one number per action. Take "
            "the argmax of one state's Q-values, over the actions"
        )
    if isinstance(action, np.ndarray) and action.size == 1:
        action = action.reshape(()).item()
    if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= action < policy.num_actions:
        raise AssertionError(
            f"the policy must return an action index from 0 to {policy.num_actions - 1} (an int), got {action!r}"
        )
    return int(action)


def check_policy_is_greedy(policy_class: Callable, *, num_actions: int = 4, seed: int = 0) -> None:
    """Check that with epsilon = 0 the policy always picks the action with the highest Q-value.

    Args:
        policy_class: The student's policy class.
        num_actions: Outputs of the test network.
        seed: Seeds the states and the policy's generator.

    Raises:
        AssertionError: If another action is picked (argmin, argmax over the batch axis,
            inverted epsilon), or the answer is not one int. The policy's own ``q_values``
            is replaced by the network's exact values: its mistakes are the q_values check's.
    """
    policy = _build_policy(_with_reference_q_values(policy_class, num_actions), num_actions)
    rng = np.random.default_rng(seed)
    picked, greedy, worst = [], [], []
    for best in [*range(num_actions), *rng.integers(num_actions, size=6).tolist()]:
        pixels = rng.permutation(np.arange(50, 50 + 20 * num_actions, 20))[:num_actions]
        top = int(np.argmax(pixels))
        pixels[[best, top]] = pixels[[top, best]]  # the greedy action is `best`
        state = _state_with_q(pixels, rng)
        picked.append(_act(policy, state, rng, 0.0))
        greedy.append(best)
        worst.append(int(np.argmin(_expected_q(state, num_actions))))
    if picked == greedy:
        return
    wrong = next(i for i, (a, b) in enumerate(zip(picked, greedy)) if a != b)
    if picked == worst:
        hint = "it picks the action with the lowest Q-value every time (argmin instead of argmax?)"
    elif set(picked) == {0}:
        hint = (
            "it always picks action 0. Is the argmax over the batch axis (axis 0) of Q-values of shape "
            "(1, num_actions)? That axis has one element, so its argmax is always 0"
        )
    else:
        hint = (
            f"it picked the greedy action in {sum(a == b for a, b in zip(picked, greedy))} of {len(greedy)} states. "
            "With epsilon = 0 the policy must never explore: is the test inverted, acting greedily only with "
            "probability epsilon? Explore when rng.random() < epsilon"
        )
    raise AssertionError(
        f"with epsilon = 0 the policy must always pick the greedy action; for a state with greedy action "
        f"{greedy[wrong]} it picked {picked[wrong]}: {hint}"
    )


def check_policy_explores(policy_class: Callable, *, num_actions: int = 4, seed: int = 0, draws: int = 600) -> None:
    """Check the action frequencies with epsilon = 1 and epsilon = 0.2, and that the policy draws with ``rng``.

    With probability epsilon the action is uniform over *all* actions, the greedy one
    included: with 4 actions and epsilon = 0.2 the greedy action comes
    0.8 + 0.2 / 4 = 85% of the time.

    Args:
        policy_class: The student's policy class.
        num_actions: Outputs of the test network.
        seed: Seeds the states and the generators.
        draws: Actions drawn per epsilon.

    Raises:
        AssertionError: If epsilon is ignored or inverted, exploration leaves out an
            action, or the policy ignores the ``rng`` it is given (for the action drawn or
            for the choice to explore). The policy's own ``q_values`` is replaced by the
            network's exact values, as in :func:`check_policy_is_greedy`.
    """
    policy = _build_policy(_with_reference_q_values(policy_class, num_actions), num_actions)
    rng = np.random.default_rng(seed)
    pixels = np.arange(60, 60 + 10 * num_actions, 10)[::-1].copy()
    pixels[[0, 1]] = pixels[[1, 0]]  # action 1 is the greedy one
    state = _state_with_q(pixels, rng)

    def frequencies(epsilon: float, generator_seed: int) -> tuple[np.ndarray, list[int]]:
        generator = np.random.default_rng(generator_seed)
        actions = [_act(policy, state, generator, epsilon) for _ in range(draws)]
        return np.bincount(actions, minlength=num_actions) / draws, actions

    uniform, first = frequencies(1.0, seed + 1)
    share = 1 / num_actions
    if uniform[1] > 0.9:
        raise AssertionError(
            "with epsilon = 1 every action must be random, but your policy stays greedy: is epsilon ignored, or the "
            "test inverted (explore when rng.random() < epsilon)?"
        )
    if uniform[1] == 0:
        raise AssertionError(
            "with epsilon = 1 your policy never picks the greedy action: a random action is drawn from all "
            f"{num_actions} actions, the greedy one included"
        )
    never = [action for action in range(num_actions) if uniform[action] == 0]
    if never:
        raise AssertionError(
            f"with epsilon = 1 your policy never picks action {never[0]}: draw from all {num_actions} actions, "
            f"rng.integers({num_actions}) (its upper end is excluded)"
        )
    tolerance = 5 * np.sqrt(share * (1 - share) / draws)
    if np.any(np.abs(uniform - share) > tolerance):
        raise AssertionError(
            f"with epsilon = 1 each of the {num_actions} actions should come about {share:.0%} of the time, got "
            f"{np.round(uniform, 3).tolist()}"
        )
    again, second = frequencies(1.0, seed + 1)
    if first != second:
        raise AssertionError(
            "two runs of the policy with generators of the same seed chose different actions: draw the random "
            "numbers with the `rng` passed to the policy (rng.random(), rng.integers(...)), not np.random or random"
        )
    # With epsilon = 0.5 the choice to explore is random too: it must come from `rng` as well.
    if frequencies(0.5, seed + 3)[1] != frequencies(0.5, seed + 3)[1]:
        raise AssertionError(
            "with epsilon = 0.5, two runs of the policy with generators of the same seed chose different actions, "
            "while with epsilon = 1 they agree: the choice to explore is drawn elsewhere. Draw it with the `rng` "
            "passed to the policy too, rng.random() < epsilon (not np.random.random() or random.random())"
        )
    mixed, _ = frequencies(0.2, seed + 2)
    greedy_share = 0.8 + 0.2 * share
    tolerance = 5 * np.sqrt(greedy_share * (1 - greedy_share) / draws)
    if abs(mixed[1] - greedy_share) > tolerance:
        inverted = 0.2 + 0.8 * share
        hint = (
            f" (about {inverted:.0%} is what a policy that is greedy only with probability epsilon gives: the test "
            "is inverted, explore when rng.random() < epsilon)"
            if abs(mixed[1] - inverted) < tolerance
            else ""
        )
        raise AssertionError(
            f"with epsilon = 0.2 and {num_actions} actions the greedy action should come 0.8 + 0.2/{num_actions} = "
            f"{greedy_share:.0%} of the time, got {mixed[1]:.1%}{hint}"
        )


# --- the evaluation loop ------------------------------------------------------------------------


class _Over(AssertionError):
    """Raised by the scripted game when it is stepped after its end."""


class _ScriptedGame(gym.Env):
    """A game of 5 lives whose points per step follow from the reset's seed; it records how it was played.

    Each step's observation encodes the game and the step, so a check can tell
    which state a policy was given; ``info["lives"]`` counts down as in ALE.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, *, max_steps: int | None = None):
        self.observation_space = gym.spaces.Box(0, 255, STATE_SHAPE, np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.max_steps = max_steps
        self.games: list[dict[str, Any]] = []  # one per reset: seed, script, steps taken, how it ended
        self.observations: list[bytes] = []  # every observation handed out, in order

    @staticmethod
    def script(seed: int | None, number: int) -> tuple[list[float], list[int]]:
        """Points and lives after each step of a game: every life lasts 4 to 9 steps and scores."""
        rng = np.random.default_rng(10_000 + (seed if seed is not None else 5_000 + number))
        rewards, lives = [], []
        for life in range(LIVES, 0, -1):
            length = int(rng.integers(4, 10))
            points = [float(rng.choice([0, 0, *BRICK_POINTS])) for _ in range(length)]
            points[int(rng.integers(length - 1))] = float(rng.choice(BRICK_POINTS[1:]))  # every life scores 4 or 7
            rewards += points
            lives += [life] * (length - 1) + [life - 1]
        return rewards, lives

    def _observation(self) -> np.ndarray:
        game = self.games[-1]
        observation = np.zeros(STATE_SHAPE, np.uint8)
        observation[-1, 0, :3] = (len(self.games), game["steps"] % 256, game["steps"] // 256 + 1)
        self.observations.append(observation.tobytes())
        return observation

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        rewards, lives = self.script(seed, len(self.games))
        self.games.append({"seed": seed, "rewards": rewards, "lives": lives, "steps": 0, "over": None, "actions": []})
        return self._observation(), {"lives": LIVES, "episode_frame_number": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.games:
            raise _Over(
                "your loop called env.step() before env.reset(): reset the environment at the start of each game"
            )
        game = self.games[-1]
        if game["over"]:
            raise _Over(
                f"your loop called env.step() after game {len(self.games) - 1} was over ({game['over']}=True): a game "
                "ends as soon as `terminated` or `truncated` is True; reset before the next one"
            )
        game["actions"].append(action)
        t = game["steps"]
        game["steps"] += 1
        terminated = t == len(game["rewards"]) - 1
        truncated = not terminated and self.max_steps is not None and game["steps"] >= self.max_steps
        if terminated or truncated:
            game["over"] = "terminated" if terminated else "truncated"
        info = {"lives": game["lives"][t], "episode_frame_number": 4 * game["steps"]}
        return self._observation(), game["rewards"][t], terminated, truncated, info


class _Recorder:
    """A policy that draws its actions from the rng it is given and notes every call."""

    def __init__(self, num_actions: int = 4):
        self.num_actions = num_actions
        self.calls: list[tuple[bytes, Any, Any]] = []  # (state, rng, epsilon)
        self.actions: list[int] = []

    def __call__(self, state: np.ndarray, rng: Any = None, epsilon: Any = "not given") -> int:
        self.calls.append((np.asarray(state).tobytes(), rng, epsilon))
        action = int(rng.integers(self.num_actions)) if isinstance(rng, np.random.Generator) else 0
        self.actions.append(action)
        return action


def _run_evaluation(
    evaluate_agent: Callable, env: gym.Env, policy: Any, episodes: int, epsilon: float, seed: int
) -> np.ndarray:
    scores = call_answer(
        evaluate_agent,
        "evaluate_agent",
        env,
        policy,
        episodes,
        epsilon=epsilon,
        seed=seed,
        hints={
            "'NoneType' object is not": "the policy must be called as policy(state, rng, epsilon) with the rng "
            "made from the seed, np.random.default_rng(seed)"
        },
    )
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise AssertionError(
            f"evaluate_agent must return the scores as a NumPy array, got {type(scores).__name__}"
        ) from error
    if not isinstance(scores, np.ndarray) or array.shape != (episodes,):
        raise AssertionError(
            f"evaluate_agent must return a NumPy array of shape ({episodes},), one score per game, got "
            f"{type(scores).__name__} of shape {array.shape}: build it with np.asarray(scores, dtype=np.float64)"
        )
    return array


def _check_games_played(env: _ScriptedGame, episodes: int) -> None:
    if len(env.games) != episodes:
        raise AssertionError(
            f"evaluate_agent was asked for {episodes} games but reset the environment {len(env.games)} times: "
            "reset once at the start of each game"
        )
    for number, game in enumerate(env.games):
        if game["over"]:
            continue
        steps, lives = game["steps"], game["lives"]
        if steps and lives[steps - 1] < LIVES:
            first_life = sum(game["rewards"][: lives.index(LIVES - 1) + 1])
            raise AssertionError(
                f"your evaluation ended game {number} when a life was lost (lives went from {lives[steps - 1] + 1} to "
                f"{lives[steps - 1]} after {steps} steps), with {first_life:g} of the game's {sum(game['rewards']):g} "
                "points so far. A game is scored over all its lives: in the evaluation environment losing a life "
                "does not end the episode, so keep playing until `terminated` or `truncated` (do not stop on "
                "info['lives'])"
            )
        raise AssertionError(
            f"game {number} was cut short after {steps} of its {len(game['rewards'])} steps, before `terminated` or "
            "`truncated`: play each game until one of them is True"
        )


def check_evaluate_agent_full_games(evaluate_agent: Callable, *, episodes: int = 3, seed: int = 0) -> None:
    """Check that each game is played over all its lives, to its end, and scored with its true points.

    The scripted game has 5 lives, each lasting a few steps and scoring 1, 4 or 7
    points per brick. A second evaluation cuts games off after a few steps
    (``truncated``), as the 18,000-frame limit does.

    Args:
        evaluate_agent: The student's evaluation loop.
        episodes: Games per evaluation.
        seed: The evaluation's seed.

    Raises:
        AssertionError: If a game stops at a lost life or before it ends, the loop steps
            past the end, rewards are clipped, scores add up across games, or the
            result is not an array of one score per game.
    """
    env = _ScriptedGame()
    scores = _run_evaluation(evaluate_agent, env, _Recorder(), episodes, 0.05, seed)
    _check_games_played(env, episodes)
    expected = np.array([sum(game["rewards"]) for game in env.games])
    clipped = np.array([sum(np.sign(game["rewards"])) for game in env.games])
    if np.array_equal(scores, clipped):
        raise AssertionError(
            f"the scores {scores.tolist()} are the games' rewards clipped to +1 (the true scores are "
            f"{expected.tolist()}, with bricks worth 1, 4 and 7 points): clipping helps training, but an evaluation "
            "reports the game's own score. Sum the rewards as the evaluation environment returns them"
        )
    if np.array_equal(scores, np.cumsum(expected)):
        raise AssertionError(
            f"the scores {scores.tolist()} add up across games (each game scored {expected.tolist()}): start each "
            "game's score at 0"
        )
    if not np.allclose(scores, expected):
        raise AssertionError(
            f"the games scored {expected.tolist()} (sum of each game's rewards), got {scores.tolist()}"
        )

    cap = 7  # agent steps: every game is cut off during its second life
    env = _ScriptedGame(max_steps=cap)
    scores = _run_evaluation(evaluate_agent, env, _Recorder(), episodes, 0.05, seed)
    _check_games_played(env, episodes)
    expected = np.array([sum(game["rewards"][:cap]) for game in env.games])
    if not np.allclose(scores, expected):
        raise AssertionError(
            f"with games truncated after {cap} steps they scored {expected.tolist()} (the rewards up to the cut), "
            f"got {scores.tolist()}"
        )


def check_evaluate_agent_no_op_starts(evaluate_agent: Callable, *, episodes: int = 4, seed: int = 3) -> None:
    """Check that game ``i`` is reset with ``seed + i``, and the policy gets each new state, the rng and epsilon.

    Args:
        evaluate_agent: The student's evaluation loop.
        episodes: Games per evaluation.
        seed: The evaluation's seed.

    Raises:
        AssertionError: If every game gets the same seed (the same no-op start) or none,
            epsilon or the rng is not passed on, the state is not carried forward, the
            chosen action is not the one played, or two runs with one seed differ.
    """
    epsilon = 0.05
    env, policy = _ScriptedGame(), _Recorder()
    _run_evaluation(evaluate_agent, env, policy, episodes, epsilon, seed)
    _check_games_played(env, episodes)
    seeds = [game["seed"] for game in env.games]
    wanted = [seed + number for number in range(episodes)]
    if any(value is None for value in seeds):
        raise AssertionError(
            f"the games were reset with seeds {seeds}: without a seed the no-op starts are not reproducible. Reset "
            f"game i with seed=seed + i, here {wanted}"
        )
    if len(set(seeds)) == 1 and episodes > 1:
        raise AssertionError(
            f"every game was reset with seed={seeds[0]}: with one seed every game gets the same random no-op start, "
            f"and a deterministic agent plays the very same game {episodes} times. Reset game i with seed=seed + i"
        )
    if seeds != wanted:
        raise AssertionError(f"game i must be reset with seed=seed + i, here {wanted}, got {seeds}")

    epsilons = {repr(call[2]) for call in policy.calls}
    if epsilons != {repr(epsilon)}:
        raise AssertionError(
            f"evaluate_agent was given epsilon={epsilon}, but the policy was called with epsilon "
            f"{' / '.join(sorted(epsilons))}: pass it on, policy(state, rng, epsilon)"
        )
    generators = [call[1] for call in policy.calls]
    if not all(isinstance(rng, np.random.Generator) for rng in generators):
        raise AssertionError(
            "the policy must be called with a NumPy Generator, policy(state, rng, epsilon), made once with "
            "rng = np.random.default_rng(seed)"
        )
    if len({id(rng) for rng in generators}) > 1:
        raise AssertionError(
            f"the policy was called with {len({id(rng) for rng in generators})} different generators: a new "
            "generator for each game repeats (or re-seeds) the exploration of every game. Make one, "
            "rng = np.random.default_rng(seed), before the first game, and use it for all of them"
        )
    given = [call[0] for call in policy.calls]
    handed_out = [observation for number, game in enumerate(env.games) for observation in _states_of(env, number)]
    if given != handed_out:
        step = next(i for i, (a, b) in enumerate(zip(given, handed_out)) if a != b)
        raise AssertionError(
            f"at step {step} the policy was not given the newest state: after each step the state to act on is "
            "the observation env.step returned (state = next_state), and each game starts from reset's observation"
        )
    played = [action for game in env.games for action in game["actions"]]
    if [int(action) for action in played] != policy.actions:
        raise AssertionError("the actions played with env.step are not the ones the policy chose: step with its action")

    again_env, again = _ScriptedGame(), _Recorder()
    _run_evaluation(evaluate_agent, again_env, again, episodes, epsilon, seed)
    if again.actions != policy.actions:
        raise AssertionError(
            f"two evaluations with seed={seed} chose different actions: make the exploration generator from the "
            "seed, rng = np.random.default_rng(seed), once for the whole evaluation"
        )


def _states_of(env: _ScriptedGame, number: int) -> list[bytes]:
    """The observations game ``number`` handed out on which an action was due (all but its last)."""
    start = sum(game["steps"] + 1 for game in env.games[:number])
    return env.observations[start : start + env.games[number]["steps"]]


class _ActionRecorder(gym.Wrapper):
    """Note the actions of every game (one list per reset)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.games: list[list[int]] = []
        self.seeds: list[int | None] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self.games.append([])
        self.seeds.append(seed)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self.games:
            self.games[-1].append(int(action))
        return self.env.step(action)


def check_evaluate_agent_matches_the_protocol_on_breakout(
    evaluate_agent: Callable, *, episodes: int = 2, seed: int = 0
) -> None:
    """Check the loop on real Breakout: the same games, action for action, and scores as the package's protocol.

    The random agent plays full games of the evaluation environment (all lives, true
    points, random no-op starts); the expected games are played with
    :func:`dqn_helpers.evaluation.play_episode`, seeded as ``evaluate`` seeds them.

    Args:
        evaluate_agent: The student's evaluation loop.
        episodes: Games to play.
        seed: The evaluation's seed.

    Raises:
        AssertionError: If a game differs (other seeds or generator), stops early, runs
            past its end, or is scored differently.
    """
    from dqn_helpers.envs import make_env
    from dqn_helpers.evaluation import EVAL_MAX_EPISODE_FRAMES, play_episode
    from dqn_helpers.policies import RandomPolicy

    with make_env("Breakout", training=False, max_episode_frames=EVAL_MAX_EPISODE_FRAMES) as env:
        rng = np.random.default_rng(seed)
        games = [list(play_episode(env, RandomPolicy(4), rng, epsilon=1.0, seed=seed + i)) for i in range(episodes)]
    expected_actions = [[step.action for step in game] for game in games]
    expected = np.array([sum(step.reward for step in game) for game in games])
    budget = max(len(game) for game in games) + 50  # agent steps: a loop that misses the end runs into it
    wanted_seeds = [seed + number for number in range(episodes)]

    def other_seeds(recorder: _ActionRecorder) -> str | None:
        """Games reset with other seeds are other games: that, not their length, is the finding."""
        if recorder.seeds == wanted_seeds[: len(recorder.seeds)]:
            return None
        number = next(i for i, (a, b) in enumerate(zip(recorder.seeds, wanted_seeds)) if a != b)
        return (
            f"game {number} was reset with seed={recorder.seeds[number]}, not seed + {number} = {wanted_seeds[number]}: "
            "another seed gives another no-op start, so another game than the protocol's. Reset game i with "
            "seed=seed + i"
        )

    with make_env("Breakout", training=False, max_episode_frames=EVAL_MAX_EPISODE_FRAMES) as env:
        recorder = _ActionRecorder(StepBudget(env, budget))
        try:
            scores = _run_evaluation(evaluate_agent, recorder, RandomPolicy(4), episodes, 1.0, seed)
        except AssertionError as error:
            finding = other_seeds(recorder)
            if finding:
                raise AssertionError(finding) from error
            raise
    finding = other_seeds(recorder)
    if finding and len(recorder.games) == episodes:
        raise AssertionError(finding)
    how = (
        "Reset game i with seed=seed + i, draw the actions with one rng = np.random.default_rng(seed) made before the "
        "first game, and play until `terminated` or `truncated`"
    )
    if len(recorder.games) != episodes:
        raise AssertionError(f"evaluate_agent reset the environment {len(recorder.games)} times for {episodes} games")
    for number, (played, wanted) in enumerate(zip(recorder.games, expected_actions)):
        if played == wanted:
            continue
        if len(played) < len(wanted) and played == wanted[: len(played)]:
            raise AssertionError(
                f"your loop stopped game {number} after {len(played)} of its {len(wanted)} steps, before the game "
                f"ended (at a lost life?). {how}"
            )
        if len(played) > len(wanted) and played[: len(wanted)] == wanted:
            raise AssertionError(
                f"your loop went on stepping game {number} after it ended at step {len(wanted)}: stop as soon as "
                "`terminated` or `truncated` is True"
            )
        step = next((i for i, (a, b) in enumerate(zip(played, wanted)) if a != b), min(len(played), len(wanted)))
        raise AssertionError(
            f"the random agent's game on Breakout first differs in game {number}, at step {step}, from the same "
            f"evaluation by the protocol (seed={seed}). {how}"
        )
    if not np.allclose(scores, expected):
        raise AssertionError(
            f"on Breakout the random agent's {episodes} games with seed={seed} score {expected.tolist()}, yours "
            f"{scores.tolist()}: sum every reward of a game, unclipped"
        )


# --- the video writer -----------------------------------------------------------------------------


class _LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _catch_logged_warnings() -> Iterator[_LogRecords]:
    """Catch the warnings imageio logs (they would go to stderr, which zeroes a graded cell)."""
    handler = _LogRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


_MKDIR_HINT = "Create the video's folder first: path.parent.mkdir(parents=True, exist_ok=True)"


def _frames(count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Frames of flat coloured blocks that move, as an Atari screen has (H.264 keeps such pictures almost exact)."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, size=(6, 3)).astype(np.uint8)
    frames = []
    for t in range(count):
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = colours[0]
        frame[: height // 3, :] = colours[1]
        frame[height // 3 : height // 2, : width // 2] = colours[2]
        top, left = (3 + 2 * t) % max(height - 8, 1), (5 + 3 * t) % max(width - 8, 1)
        frame[top : top + 8, left : left + 8] = colours[3 + t % 3]  # a moving ball
        frames.append(frame)
    return frames


@contextlib.contextmanager
def _explain_ffmpeg_failure() -> Iterator[None]:
    """Turn imageio's "Broken pipe ... FFMPEG COMMAND: ..." into the option ffmpeg refused, read from the command."""
    import re

    try:
        yield
    except AssertionError as error:
        text = str(error)
        if "FFMPEG COMMAND" not in text:
            raise
        command = text.split("FFMPEG COMMAND:", 1)[1].split(" -i - ", 1)[-1]  # the output's options
        codec = re.search(r"-vcodec (\S+)", command)
        pixel_format = re.search(r"-pix_fmt (\S+)", command)
        found = []
        if codec and codec.group(1) != "libx264":
            found.append(f"codec {codec.group(1)!r} (browsers play MP4 with H.264: codec='libx264')")
        if pixel_format and pixel_format.group(1) != "yuv420p":
            found.append(
                f"pixel format {pixel_format.group(1)!r} (browsers play H.264 in yuv420p, and the baseline profile "
                "takes nothing else: pixelformat='yuv420p')"
            )
        why = "; ".join(found) if found else "see ffmpeg's own message above"
        raise AssertionError(
            f"{text.split(' FFMPEG COMMAND:', 1)[0]}: ffmpeg refused the writer's options and stopped reading frames. "
            f"It was asked for {why}"
        ) from error


def _write_and_read(
    write_video: Callable, frames: list[np.ndarray], name: str, **kwargs: Any
) -> tuple[Any, dict[str, Any], list[np.ndarray], list[str]]:
    """Write ``frames`` with the student's function to a new folder; read the file back."""
    import imageio.v2 as imageio

    shape = f"{len(frames)} uint8 frames of shape {frames[0].shape}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "not_yet_made" / name
        arguments = ", ".join(f"{key}={value}" for key, value in kwargs.items())
        with _catch_logged_warnings() as logged, _explain_ffmpeg_failure():
            count = call_answer(
                write_video,
                f"write_video(frames, path, {arguments}) with {shape}",
                iter([f.copy() for f in frames]),
                path,
                **kwargs,
                hints={
                    "No such file or directory": _MKDIR_HINT,
                    "directory does not exist": _MKDIR_HINT,
                    "channels": "A frame must reach the writer as (height, width, 3): did np.repeat scale the "
                    "channel axis (axis 2) instead of the height and width (axes 0 and 1)?",
                },
            )
        for message in logged.messages:
            if "Lossy conversion" in message:
                raise AssertionError(
                    f"imageio had to convert your frames: {message!r}. The frames were turned into floats; write "
                    "them as the uint8 RGB arrays env.render() returns (imageio's warning goes to stderr, which also "
                    "costs a graded cell its points)"
                )
            if "macro_block_size" in message:
                raise AssertionError(
                    f"imageio resized your frames: {message!r}. H.264 only needs an even width and height: pass "
                    "macro_block_size=1 to imageio.get_writer and make the sizes even yourself"
                )
        if logged.messages:
            raise AssertionError(f"writing the video logged a warning (it goes to stderr): {logged.messages[0]!r}")
        if not path.exists() or path.stat().st_size == 0:
            raise AssertionError(
                f"write_video returned, but there is no video at the path it was given ({path.name}). Likely causes: "
                "ffmpeg could not encode with the writer's options (codec='libx264' and pixelformat='yuv420p' work "
                "with every size this course uses), or the writer was never closed (use it in a `with` block)"
            )
        try:
            with imageio.get_reader(path, format="FFMPEG") as reader:
                meta = reader.get_meta_data()
                decoded = [np.asarray(frame) for frame in reader]
        except Exception as error:
            raise AssertionError(
                f"the file write_video wrote cannot be read back as a video ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}). Was it written with imageio's FFMPEG format and "
                "closed (use the writer in a `with` block)?"
            ) from error
    return count, meta, decoded, logged.messages


def check_video_format(write_video: Callable, *, fps: int = 15, scale: int = 2, seed: int = 0) -> None:
    """Check that the file is an MP4 of H.264 in yuv420p, at ``fps``, each frame ``scale`` times larger, all there.

    The frames are Atari-sized, 210 x 160, so the default ``scale`` gives 420 x 320.

    Args:
        write_video: The student's function.
        fps: Frames per second to ask for.
        scale: Upscaling to ask for.
        seed: Seeds the frames' colours.

    Raises:
        AssertionError: If the codec, pixel format, rate, size or frame count is wrong,
            the folder is not created, or imageio had to convert or resize the frames.
    """
    frames = _frames(12, 210, 160, seed)
    count, meta, decoded, _ = _write_and_read(write_video, frames, "check.mp4", fps=fps, scale=scale)
    if meta.get("codec") != "h264":
        raise AssertionError(
            f"the video's codec is {meta.get('codec')!r}: browsers play MP4 with H.264, pass codec='libx264'"
        )
    if not str(meta.get("pix_fmt", "")).startswith("yuv420p"):
        raise AssertionError(
            f"the video's pixel format is {meta.get('pix_fmt')!r}: browsers play H.264 only in yuv420p (colour at "
            "half resolution), pass pixelformat='yuv420p'"
        )
    if abs(float(meta.get("fps", 0)) - fps) > 0.01:
        raise AssertionError(
            f"the video plays at {meta.get('fps')} frames per second, asked for {fps}: pass fps on to the writer"
        )
    want = (160 * scale, 210 * scale)  # imageio gives (width, height)
    if tuple(meta.get("size", ())) != want:
        raise AssertionError(
            f"frames of 210 x 160 pixels with scale={scale} must give a {want[1]} x {want[0]} video (height x width), "
            f"got {meta.get('size', ('?', '?'))[1]} x {meta.get('size', ('?', '?'))[0]}: repeat each pixel `scale` "
            "times along the height and the width (np.repeat, axes 0 and 1)"
        )
    if len(decoded) != len(frames):
        raise AssertionError(f"{len(frames)} frames were given, the video holds {len(decoded)}: write every frame once")
    if count != len(frames):
        raise AssertionError(f"write_video must return the number of frames it wrote, {len(frames)}, got {count!r}")


def check_video_pixels(write_video: Callable, *, scale: int = 2, seed: int = 0) -> None:
    """Check that the video shows the frames: each pixel a ``scale`` x ``scale`` block, colours in RGB order.

    H.264 is lossy, so the decoded pixels may differ a little; on these flat blocks the
    mean difference stays under 3 of 255.

    Args:
        write_video: The student's function.
        scale: Upscaling to ask for.
        seed: Seeds the frames' colours.

    Raises:
        AssertionError: If the pictures differ: frames converted to float, channels
            swapped, the picture tiled instead of each pixel enlarged, or other shapes.
    """
    frames = _frames(6, 48, 32, seed)
    _, _, decoded, _ = _write_and_read(write_video, frames, "pixels.mp4", scale=scale)
    wanted = [np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1) for frame in frames]
    if not decoded or decoded[0].shape != wanted[0].shape:
        got = decoded[0].shape if decoded else "no frames"
        raise AssertionError(
            f"frames of shape {frames[0].shape} with scale={scale} must come out with shape {wanted[0].shape}, got "
            f"{got}: enlarge each pixel into a {scale} x {scale} block (np.repeat along axes 0 and 1)"
        )
    count = min(len(decoded), len(wanted))

    def error(candidates: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(d.astype(float) - c.astype(float)).mean() for d, c in zip(decoded, candidates)]))

    mismatch = error(wanted[:count])
    if mismatch <= 3.0:
        return
    if error([w[..., ::-1] for w in wanted[:count]]) <= 3.0:
        raise AssertionError(
            "the video's colours have red and blue swapped: env.render() gives RGB frames, write them in that order "
            "(no [..., ::-1], no OpenCV BGR conversion)"
        )
    if error([np.tile(f, (scale, scale, 1)) for f in frames[:count]]) <= 3.0:
        raise AssertionError(
            f"the video shows the picture {scale} x {scale} times side by side: np.tile repeats the whole picture; "
            "np.repeat(frame, scale, axis=0) then axis=1 enlarges each pixel"
        )
    raise AssertionError(
        f"the video's pixels differ from the frames by {mismatch:.0f} of 255 on average (H.264 alone loses under "
        "3): write the frames as they are, uint8 RGB from 0 to 255, each pixel enlarged into a block. Were they "
        "converted to float, scaled, or reordered?"
    )


def check_video_odd_sizes(write_video: Callable, *, seed: int = 0) -> None:
    """Check that frames whose height or width is odd still make a video (H.264 in yuv420p needs even sizes).

    Frames of 45 x 31 pixels are written with ``scale=1`` and ``scale=3``; the video
    must be at most one pixel larger or smaller in each direction, and even.

    Args:
        write_video: The student's function.
        seed: Seeds the frames' colours.

    Raises:
        AssertionError: If the writer fails on odd sizes or resizes the frames. A writer
            that fails on even sizes too is told so, not blamed for odd ones.
    """
    try:
        _write_and_read(write_video, _frames(4, 44, 32, seed), "even.mp4", scale=1)
    except AssertionError as error:
        raise AssertionError(
            "write_video makes no video even from frames of an even size (44 x 32), so odd sizes cannot be judged "
            f"yet; the format check says what to fix first. What went wrong: {error}"
        ) from error
    for scale in (1, 3):
        frames = _frames(4, 45, 31, seed)
        height, width = 45 * scale, 31 * scale
        try:
            _, meta, decoded, _ = _write_and_read(write_video, frames, "odd.mp4", scale=scale)
        except AssertionError as error:
            raise AssertionError(
                f"frames of {height} x {width} pixels (odd) after scaling by {scale} made no video: H.264 in yuv420p "
                "stores colour at half resolution, in 2 x 2 blocks, so the height and width must both be even. Pad "
                "an odd one with one more row or column (np.pad(frame, ..., mode='edge')). What went wrong: "
                f"{error}"
            ) from error
        got_width, got_height = meta.get("size", (0, 0))
        if got_height % 2 or got_width % 2 or abs(got_height - height) > 1 or abs(got_width - width) > 1:
            raise AssertionError(
                f"frames of {height} x {width} pixels gave a video of {got_height} x {got_width}: make odd sizes even "
                "by adding (or removing) one row or column, not by resizing"
            )
