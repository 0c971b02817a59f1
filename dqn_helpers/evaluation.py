"""Scoring an agent by the standard Atari evaluation protocol.

Mnih et al. (2015) score an agent on full games (all lives), each started with up
to 30 random no-ops, acting epsilon-greedily with epsilon = 0.05, and cut off after
5 minutes of play: 18,000 emulator frames (4,500 agent steps). Scores are the game's
own, unclipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from dqn_helpers._tensorflow import keras
from dqn_helpers.envs import make_env
from dqn_helpers.policies import Policy, QPolicy

__all__ = [
    "EVAL_EPSILON",
    "EVAL_MAX_EPISODE_FRAMES",
    "GameProgress",
    "StepRecord",
    "as_policy",
    "ball_above_the_bricks",
    "evaluate",
    "play_episode",
    "summarize",
]

EVAL_EPSILON = 0.05
EVAL_MAX_EPISODE_FRAMES = 18_000  # emulator frames: 5 minutes at 60 Hz
# Breakout's 210x160 RGB screen: the top wall fills rows 17-31, the side walls columns 0-7
# and 152-159, the top row of bricks rows 57-62. The gap between the top wall and the bricks
# stays black but for the ball, which only a tunnel through the bricks lets up there (it is
# drawn gray there, like the walls, not in the red it has lower down).
BREAKOUT_GAP_ROWS = slice(32, 57)
BREAKOUT_GAP_COLUMNS = slice(8, 152)


class StepRecord(NamedTuple):
    """One agent step of an episode being played."""

    state: np.ndarray  # the state the action was chosen in
    action: int
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class GameProgress(gym.Wrapper):
    """Show a progress bar of the games played through an environment, whoever plays them.

    An evaluation loop written by a student knows nothing of progress bars; wrapped in
    this, its environment moves a tqdm bar on by one at the end of every game
    (``terminated`` or ``truncated``). Close it, or use it in a ``with`` block, to close
    the bar; the wrapped environment stays open for the next agent.

    Args:
        env: The environment the games are played in.
        games: How many games the bar counts to.
        desc: The bar's label.
        progress: Show the bar (False: count silently).

    Raises:
        ValueError: If ``games`` is not positive.

    Example:
        >>> with make_env("Breakout", training=False, max_episode_frames=200) as env:
        ...     with GameProgress(env, 1, desc="random", progress=False) as counted:
        ...         _ = counted.reset(seed=0)
        ...         while not any(counted.step(0)[2:4]):
        ...             pass
        ...         counted.games
        1
    """

    def __init__(self, env: gym.Env, games: int, *, desc: str = "games", progress: bool = True):
        if games <= 0:
            raise ValueError(f"games must be positive, got {games}")
        super().__init__(env)
        self.games = 0
        self._bar = tqdm(total=games, desc=desc, unit="game", disable=not progress)

    def step(self, action):
        """Step the wrapped environment; a game that ends here moves the bar on."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.games += 1
            self._bar.update(1)
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        """Close the bar only: the wrapped environment is the caller's to close."""
        self._bar.close()

    def __enter__(self) -> GameProgress:
        """Use in a ``with`` block that closes the bar."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the bar, even when the games stopped on an error."""
        self.close()


def as_policy(agent: Policy | keras.Model) -> Policy:
    """Accept either a policy or a Keras Q-network (wrapped in :class:`QPolicy`)."""
    return QPolicy(agent) if isinstance(agent, keras.Model) else agent


def play_episode(
    env: gym.Env, policy: Policy, rng: np.random.Generator, *, epsilon: float, seed: int | None = None
) -> Iterator[StepRecord]:
    """Play one episode, yielding every step as it happens.

    Args:
        env: The environment (reset here).
        policy: Picks the actions.
        rng: Random generator for exploration.
        epsilon: Probability of a random action.
        seed: Seed for the environment's reset (its random no-ops).

    Yields:
        A :class:`StepRecord` per agent step, until the episode terminates or is truncated.
    """
    state, _ = env.reset(seed=seed)
    while True:
        action = policy(state, rng, epsilon)
        next_state, reward, terminated, truncated, info = env.step(action)
        yield StepRecord(state, action, float(reward), terminated, truncated, info)
        if terminated or truncated:
            return
        state = next_state


def evaluate(
    agent: Policy | keras.Model,
    *,
    game: str = "Breakout",
    episodes: int = 30,
    epsilon: float = EVAL_EPSILON,
    seed: int = 0,
    max_episode_frames: int = EVAL_MAX_EPISODE_FRAMES,
    progress: bool = True,
) -> np.ndarray:
    """Score an agent on full games by the standard protocol.

    Args:
        agent: A policy, or a Keras Q-network to act greedily with.
        game: ALE game name.
        episodes: Number of full games to play.
        epsilon: Probability of a random action (0.05 in the protocol).
        seed: Seeds episode ``i``'s reset with ``seed + i`` and the exploration.
        max_episode_frames: Emulator frames after which a game is cut off.
        progress: Show a tqdm progress bar.

    Returns:
        Every game's score, float64 of shape ``(episodes,)``.

    Raises:
        ValueError: If ``episodes`` is not positive.

    Example:
        >>> from dqn_helpers.policies import RandomPolicy
        >>> scores = evaluate(RandomPolicy(4), episodes=2, max_episode_frames=400, progress=False)
        >>> scores.shape
        (2,)
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    policy = as_policy(agent)
    rng = np.random.default_rng(seed)
    with make_env(game, training=False, max_episode_frames=max_episode_frames) as env:
        scores = [
            sum(step.reward for step in play_episode(env, policy, rng, epsilon=epsilon, seed=seed + episode))
            for episode in tqdm(range(episodes), desc="evaluating", unit="game", disable=not progress)
        ]
    return np.asarray(scores, dtype=np.float64)


def ball_above_the_bricks(screen: np.ndarray) -> bool:
    """Whether Breakout's ball is above the top row of bricks: the agent has tunnelled.

    An agent that tunnels clears a column of bricks and sends the ball through it; the
    ball then bounces between the top wall and the bricks, scoring without the paddle.

    Args:
        screen: Breakout's RGB screen, ``env.render()`` or the ALE's ``getScreenRGB()``,
            uint8 of shape (210, 160, 3).

    Returns:
        True if a pixel of the gap between the top wall and the top row of bricks is lit.

    Raises:
        ValueError: If ``screen`` is not of shape (210, 160, 3).
    """
    screen = np.asarray(screen)
    if screen.shape != (210, 160, 3):
        raise ValueError(f"expected Breakout's RGB screen of shape (210, 160, 3), got {screen.shape}")
    return bool(screen[BREAKOUT_GAP_ROWS, BREAKOUT_GAP_COLUMNS].any())


def summarize(scores: np.ndarray) -> dict[str, float]:
    """Mean, median, standard deviation, min and max of evaluation scores.

    Example:
        >>> summarize(np.array([1.0, 2.0, 6.0]))["median"]
        2.0
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise ValueError("cannot summarize an empty list of scores")
    return {
        "episodes": int(scores.size),
        "mean": float(scores.mean()),
        "median": float(np.median(scores)),
        "std": float(scores.std()),
        "min": float(scores.min()),
        "max": float(scores.max()),
    }
