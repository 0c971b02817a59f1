"""Tests for dqn_helpers.checks.StepBudget, on the real Breakout environment."""

from __future__ import annotations

import numpy as np
import pytest

from dqn_helpers.checks import StepBudget, assert_own_code
from dqn_helpers.envs import make_env

BUDGET = 5
NOOP = 0
MESSAGE = rf"your loop called env.step\(\) more than {BUDGET} times in one episode without stopping"


@pytest.fixture(scope="module")
def breakout():
    env = make_env("Breakout", training=False)
    yield env
    env.close()


def test_allows_exactly_max_steps(breakout):
    """max_steps step calls go through; the next one raises an AssertionError that explains the fix."""
    env = StepBudget(breakout, max_steps=BUDGET)
    env.reset(seed=0)
    for _ in range(BUDGET):
        env.step(NOOP)
    with pytest.raises(AssertionError, match=MESSAGE) as error:
        env.step(NOOP)
    assert "`terminated` or `truncated`" in str(error.value)


def test_reset_restores_the_budget(breakout):
    """Each reset starts a fresh budget of max_steps calls."""
    env = StepBudget(breakout, max_steps=BUDGET)
    for episode in range(3):
        env.reset(seed=episode)
        for _ in range(BUDGET):
            env.step(NOOP)
        assert env.steps == BUDGET
    with pytest.raises(AssertionError, match=MESSAGE):
        env.step(NOOP)


def test_budget_is_not_refilled_by_steps_alone(breakout):
    """Over-budget calls keep failing until a reset; the inner environment is not stepped by them."""
    env = StepBudget(breakout, max_steps=1)
    env.reset(seed=0)
    env.step(NOOP)
    frames = breakout.unwrapped.ale.getEpisodeFrameNumber()
    for _ in range(2):
        with pytest.raises(AssertionError):
            env.step(NOOP)
    assert breakout.unwrapped.ale.getEpisodeFrameNumber() == frames


def test_passes_results_through(breakout):
    """Within the budget the wrapper returns exactly what the environment returns."""
    env = StepBudget(make_env("Breakout", training=False), max_steps=BUDGET)
    observation, info = env.reset(seed=0)
    reference_observation, _ = breakout.reset(seed=0)
    np.testing.assert_array_equal(observation, reference_observation)
    for action in (1, 2, 3):
        ours, theirs = env.step(action), breakout.step(action)
        np.testing.assert_array_equal(ours[0], theirs[0])
        assert ours[1:4] == theirs[1:4]
    env.close()


@pytest.mark.parametrize("max_steps", [0, -3])
def test_bad_max_steps(breakout, max_steps):
    """A non-positive budget raises a ValueError."""
    with pytest.raises(ValueError, match=f"max_steps must be positive, got {max_steps}"):
        StepBudget(breakout, max_steps=max_steps)


# --- assert_own_code -------------------------------------------------------------------


def _notebook_answer(source: str, name: str):
    """Run a student's cell in a fresh namespace, as a notebook would, and return what it defined."""
    namespace = {"__name__": "__main__"}
    exec(source, namespace)
    return namespace[name]


OWN_CODE = [
    "import numpy as np\ndef td(r, t, q, g):\n    return r + g * (1 - t) * np.max(q, axis=1)",
    "class Buffer:\n    def add(self, x):\n        self.x = x",
]

BORROWED = [
    ("from dqn_helpers.learner import td_targets as td", "td", "imported from dqn_helpers.learner"),
    (
        "from dqn_helpers.learner import td_targets\ndef td(r, t, q, g):\n    return td_targets(r, t, q, g)",
        "td",
        "uses td_targets from dqn_helpers.learner",
    ),
    (
        "import dqn_helpers.learner as L\ndef td(r, t, q, g):\n    return L.td_targets(r, t, q, g)",
        "td",
        "uses L from dqn_helpers.learner",
    ),
    (
        "from dqn_helpers import learner\ndef td(r, t, q, g):\n    def inner():\n        return learner.td_targets(r, t, q, g)\n"
        "    return inner()",
        "td",
        "uses learner from dqn_helpers.learner",
    ),
    (
        "from dqn_helpers.replay import ReplayBuffer\nclass Buffer(ReplayBuffer):\n    pass",
        "Buffer",
        "inherits from dqn_helpers.replay.ReplayBuffer",
    ),
    (
        "from dqn_helpers.replay import ReplayBuffer\nclass Buffer:\n    def __init__(self):\n        self.inner = ReplayBuffer(10)",
        "Buffer",
        "uses ReplayBuffer from dqn_helpers.replay",
    ),
]


@pytest.mark.parametrize("source", OWN_CODE)
def test_own_code_passes(source):
    """Check that a function or class written in the notebook, using NumPy, is accepted."""
    name = "td" if "def td" in source else "Buffer"
    assert_own_code(_notebook_answer(source, name), name)


@pytest.mark.parametrize(("source", "name", "message"), BORROWED)
def test_borrowed_reference_code_is_named(source, name, message):
    """Check that importing, wrapping or subclassing the package's reference fails with a message saying so."""
    with pytest.raises(AssertionError, match=message):
        assert_own_code(_notebook_answer(source, name), name)


def test_an_answer_that_is_not_code_is_refused():
    """Check that a value that is not a function or class fails with its type."""
    with pytest.raises(AssertionError, match="must be a function or class defined in this notebook, got int"):
        assert_own_code(3, "td")
