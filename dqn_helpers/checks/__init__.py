"""The notebooks' visible checks: a student's mistake becomes a message that names it.

Not a hang, not a bare traceback: a message in plain words.

A notebook's test cell calls one check, e.g. ``checks.q_learning.check_td_targets_terminal(td_targets)``;
each check raises ``AssertionError`` with a message for the student, so the cell
fails and loses its points. The checks of each notebook sit in one submodule named
after it (``q_learning`` for notebook 01, ..., ``debugging`` for notebook 07); this
module holds what they share: running the student's code (:func:`call_answer`),
reading its numbers (:func:`as_numbers`), naming a wrong result by the mistake it
matches (:func:`name_the_mistake`), :func:`assert_own_code`, and
:func:`reference_answers`, which lets a check judge one exercise alone.
Hidden tests stay in the solution notebooks.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

__all__ = [
    "ATOL",
    "RTOL",
    "SHAPE_HINTS",
    "StepBudget",
    "as_numbers",
    "assert_own_code",
    "call_answer",
    "close",
    "name_the_mistake",
    "raised",
    "judged_alone",
    "reference_answers",
]

RTOL, ATOL = 1e-4, 1e-5  # float32 arithmetic in another order may differ this much
_BROADCAST = (
    "Two arrays of different shapes were combined: keep every per-transition quantity of shape (batch,), and take "
    "maxima over the actions, axis=1."
)
SHAPE_HINTS = {  # for :func:`raised`: what NumPy and TensorFlow say when per-transition shapes do not line up
    "Incompatible shapes": _BROADCAST,
    "required broadcastable shapes": _BROADCAST,
    "could not be broadcast": _BROADCAST,
}
_LONGEST_ERROR = 400  # characters of the student's error quoted; a Keras error can run over a screen


def raised(call: str, error: BaseException, hints: dict[str, str] | None = None) -> str:
    """The message for student code that raised: the call, what it said, and the likely cause.

    Args:
        call: The call as the student would recognise it, e.g. ``"td_targets"``.
        error: What it raised.
        hints: Likely causes, each under a piece of text that the error's type and
            message contain when it is the cause; the first that matches is added.

    Example:
        >>> raised("f(x)", ValueError("operands could not be broadcast."), {"broadcast": "Keep shape (batch,)."})
        'f(x) raised ValueError: operands could not be broadcast. Keep shape (batch,).'
    """
    said = f"{type(error).__name__}: {error}"
    text = " ".join(str(error).split())
    if len(text) > _LONGEST_ERROR:
        text = text[:_LONGEST_ERROR] + " ..."
    message = f"{call} raised {type(error).__name__}: {text}".rstrip()
    hint = next((hint for key, hint in (hints or {}).items() if key in said), "")
    return f"{message.rstrip('.')}. {hint}" if hint else message


def call_answer(answer: Callable, call: str, *args: Any, hints: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """Run the student's code; if it raises, fail with :func:`raised`'s message instead of a traceback.

    An ``AssertionError`` passes through as it is: it is a check's own message (a
    check's spy object, or a budget like :class:`StepBudget`, stopped the answer).

    Args:
        answer: The student's function (or method).
        call: How the message names the call.
        *args: Positional arguments for ``answer``.
        hints: As for :func:`raised`.
        **kwargs: Keyword arguments for ``answer``.

    Returns:
        What ``answer`` returned.

    Raises:
        AssertionError: If ``answer`` raised, naming the call, the error and a likely cause.
    """
    try:
        return answer(*args, **kwargs)
    except AssertionError:
        raise
    except Exception as error:
        raise AssertionError(raised(call, error, hints)) from error


def as_numbers(value: Any, name: str) -> np.ndarray:
    """The student's result (an array, a tensor, a list) as a float64 NumPy array.

    Raises:
        AssertionError: If it is not numbers, naming what came back.
    """
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise AssertionError(
            f"{name} must return numbers (an array or a tensor), got {type(value).__name__}"
        ) from error


def close(got: np.ndarray, expected: np.ndarray) -> bool:
    """Same shape and the same values, up to float32 rounding (:data:`RTOL`, :data:`ATOL`)."""
    return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=RTOL, atol=ATOL))


def name_the_mistake(got: np.ndarray, expected: np.ndarray, wrong: dict[str, np.ndarray], otherwise: str) -> None:
    """Pass if ``got`` is ``expected``; else fail with the message of the known mistake it equals.

    Args:
        got: The student's result.
        expected: A correct answer's.
        wrong: For each classic mistake, its message and what it gives.
        otherwise: The message when ``got`` matches none of them.

    Raises:
        AssertionError: With the matching mistake's message, or ``otherwise``.
    """
    if close(got, expected):
        return
    for message, values in wrong.items():
        if close(got, values):
            raise AssertionError(message)
    raise AssertionError(otherwise)


def _names_used(code: types.CodeType) -> Iterator[str]:
    """Global names a code object (and the functions nested in it) reads."""
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _names_used(constant)


def _from_dqn_helpers(value: Any) -> str | None:
    """The dqn_helpers module ``value`` is or comes from, or None."""
    origin = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
    return origin if isinstance(origin, str) and origin.split(".")[0] == "dqn_helpers" else None


def assert_own_code(answer: Callable, name: str) -> None:
    """Fail unless ``answer`` is the student's own code, defined in the notebook.

    The course's package holds reference versions of some exercises (for later
    notebooks to import); an answer that imports, wraps or subclasses one of them,
    or calls anything else from ``dqn_helpers``, is not the student's work.

    Args:
        answer: The student's function or class.
        name: Its name, for the message.

    Raises:
        AssertionError: If ``answer`` comes from, calls or inherits from ``dqn_helpers``.

    Example:
        >>> from dqn_helpers.schedules import linear_schedule
        >>> assert_own_code(linear_schedule, "linear_schedule")
        Traceback (most recent call last):
        AssertionError: linear_schedule must be your own code, defined in this notebook, but it is imported from dqn_helpers.schedules: write it here instead
    """
    if not callable(answer):
        raise AssertionError(
            f"{name} must be a function or class defined in this notebook, got {type(answer).__name__}"
        )
    origin = _from_dqn_helpers(answer)
    if origin:
        raise AssertionError(
            f"{name} must be your own code, defined in this notebook, but it is imported from {origin}: write it here instead"
        )
    functions = [answer]
    if inspect.isclass(answer):
        for base in answer.__mro__[1:]:
            if _from_dqn_helpers(base):
                raise AssertionError(
                    f"{name} must be your own class, but it inherits from {base.__module__}.{base.__name__}"
                )
        functions = [f for f in vars(answer).values() if inspect.isfunction(f)]
    for function in functions:
        for used in _names_used(function.__code__):
            origin = _from_dqn_helpers(function.__globals__.get(used))
            if origin:
                raise AssertionError(f"{name} uses {used} from {origin}: the exercise is to write this part yourself")


@contextmanager
def reference_answers(answer: Callable, **references: Callable) -> Iterator[None]:
    """Run ``answer`` with the package's versions of the earlier exercises it calls.

    A check judges its own exercise alone: where the student's function calls their
    answer to an earlier exercise (``q_learning`` calls ``td_targets``), the check puts
    the package's version in its place while it runs, so that one mistake costs one
    exercise's points, as the course promises. An earlier answer that is missing (its
    cell failed) is lent the same way. Afterwards the module's names are as they were,
    whatever happens.

    Args:
        answer: The student's function.
        **references: The package's version of each earlier exercise, by the name the
            notebook gives it.

    Example:
        >>> def student_answer(): return helper()
        >>> def helper(): return "student's"
        >>> with reference_answers(student_answer, helper=lambda: "reference"):
        ...     student_answer()
        'reference'
        >>> student_answer()
        "student's"
    """
    namespace = getattr(answer, "__globals__", None)
    if namespace is None:  # not a Python function (a builtin, a callable object): nothing to lend it
        yield
        return
    saved = {name: namespace[name] for name in references if name in namespace}
    namespace.update(references)
    try:
        yield
    finally:
        for name in references:
            if name in saved:
                namespace[name] = saved[name]
            else:
                namespace.pop(name, None)


def judged_alone(**references: Callable) -> Callable[[Callable], Callable]:
    """Make a check run the student's answer under :func:`reference_answers` with ``references``.

    For a check whose first argument is the answer, e.g. the train step's, which calls
    the student's ``q_of_actions`` and ``td_targets``.
    """

    def decorate(check: Callable) -> Callable:
        @functools.wraps(check)
        def run_alone(answer: Callable, *args: Any, **kwargs: Any) -> Any:
            with reference_answers(answer, **references):
                return check(answer, *args, **kwargs)

        return run_alone

    return decorate


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
        """Reset the game and the step count."""
        self.steps = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Take one step, or fail once the budget is spent."""
        self.steps += 1
        if self.steps > self.max_steps:
            raise AssertionError(
                f"your loop called env.step() more than {self.max_steps} times in one episode without stopping: "
                "it must stop as soon as `terminated` or `truncated` is True"
            )
        return self.env.step(action)
