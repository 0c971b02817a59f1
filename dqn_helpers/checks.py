"""Helpers for the notebooks' visible checks: they turn a student's mistake into a
message that names it, instead of a hang or a bare traceback."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

__all__ = ["StepBudget"]


class StepBudget(gym.Wrapper):
    """Stop a loop that keeps stepping an environment, with an explanation.

    After an Atari game is over, ALE goes on accepting ``step`` calls forever, so a
    loop that misses the end of an episode would hang the notebook. This wrapper
    raises an ``AssertionError`` after ``max_steps`` calls instead.

    Args:
        env: The environment to watch.
        max_steps: ``step`` calls allowed per episode (between resets).

    Example:
        >>> from dqn_helpers.envs import make_env
        >>> env = StepBudget(make_env("Breakout", training=False), max_steps=3)
        >>> _ = env.reset(seed=0)
        >>> for _ in range(4):
        ...     _ = env.step(0)
        Traceback (most recent call last):
        AssertionError: your loop called env.step() more than 3 times in one episode without stopping: it must stop as soon as `terminated` or `truncated` is True
    """

    def __init__(self, env: gym.Env, max_steps: int):
        if max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        super().__init__(env)
        self.max_steps = max_steps
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self.steps = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self.steps += 1
        if self.steps > self.max_steps:
            raise AssertionError(
                f"your loop called env.step() more than {self.max_steps} times in one episode without stopping: "
                "it must stop as soon as `terminated` or `truncated` is True"
            )
        return self.env.step(action)
