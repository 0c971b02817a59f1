"""Visible checks of notebook 05, The training loop.

Two exercises are checked here: the epsilon schedule ``linear_schedule(start, end,
duration, step)`` (the API of :func:`dqn_helpers.schedules.linear_schedule`), and the
student's training loop::

    train_loop(config, env, learner, replay, policy, rng, log, *, start_step=0, progress=True)

which plays ``config.total_steps - start_step`` agent steps in one environment.

The loop checks run the student's loop for real, for a few hundred agent steps of
Breakout, with light spies around the real parts: the environment (made by
:func:`dqn_helpers.envs.make_env`, with every other episode cut short by a time
limit so that ``truncated`` happens too), a :class:`dqn_helpers.replay.ReplayBuffer`,
a :class:`dqn_helpers.learner.DQNLearner` and a :class:`dqn_helpers.policies.QPolicy`.
The spies record what the loop did at which agent step; each check then reads the
part of that record it is about (acting and storing, epsilon, learning, target
sync), so one mistake costs only the checks about it. A mistake that stops the loop
itself (a stale state, stepping a finished episode, an exception) fails every loop
check with the same message.

One run is shared by the checks that use the same settings, and one learner (whose
update XLA compiles once, in a few seconds) by all runs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

__all__ = [
    "LoopSettings",
    "check_linear_schedule_holds_its_floor",
    "check_linear_schedule_interpolates",
    "check_training_loop_acts_and_stores",
    "check_training_loop_decays_epsilon_per_step",
    "check_training_loop_learns_on_schedule",
    "check_training_loop_syncs_the_target",
]

_TOLERANCE = 1e-9
TRUNCATE_AFTER = 12  # agent steps after which every other episode is cut short by the checks' time limit


# --- the epsilon schedule ------------------------------------------------------------------------------


def _call_schedule(linear_schedule: Callable, start: float, end: float, duration: int, step: int) -> float:
    call = f"linear_schedule({start}, {end}, {duration}, step={step})"
    try:
        value = linear_schedule(start, end, duration, step)
    except Exception as error:
        raise AssertionError(
            f"{call} raised {type(error).__name__}: {error}. It takes (start, end, duration, step) and returns a number"
        ) from error
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{call} must return a number, got {type(value).__name__}: {value!r}") from None


def _expected(start: float, end: float, duration: int, step: int) -> float:
    return start + min(step / duration, 1.0) * (end - start)


def check_linear_schedule_interpolates(
    linear_schedule: Callable, start: float = 1.0, end: float = 0.1, duration: int = 1_000
) -> None:
    """Check that linear_schedule goes from ``start`` to ``end`` in a straight line over ``duration`` steps.

    Args:
        linear_schedule: The student's ``linear_schedule(start, end, duration, step)``.
        start: Value at step 0.
        end: Value from step ``duration`` on.
        duration: Agent steps of the decay.

    Raises:
        AssertionError: Naming a value at step 0 other than ``start``, a schedule stuck at
            ``start`` (an integer division ``step // duration``), one that runs backwards
            from ``end`` to ``start``, one that goes back and forth, or one that fails when
            ``end`` is above ``start``; else the step and the value expected there.
    """
    first = _call_schedule(linear_schedule, start, end, duration, 0)
    if abs(first - start) > _TOLERANCE:
        raise AssertionError(
            f"linear_schedule({start}, {end}, {duration}, step=0) returned {first:g}: at step 0 it must return start, {start}"
        )
    quarter = duration // 4
    for step in (1, quarter, duration // 2, duration - 1):
        value, expected = (
            _call_schedule(linear_schedule, start, end, duration, step),
            _expected(start, end, duration, step),
        )
        if abs(value - expected) > 1e-6:
            hint = ""
            if step < duration and abs(value - start) < _TOLERANCE:
                hint = (
                    ": it has not moved from start. Is step // duration an integer division (0 until the end)? "
                    "Use step / duration"
                )
            elif abs(value - (end + min(step / duration, 1.0) * (start - end))) < 1e-6:
                hint = ": it runs backwards, from end to start; the value is start + fraction * (end - start)"
            raise AssertionError(
                f"linear_schedule({start}, {end}, {duration}, step={step}) returned {value:g}, expected {expected:g}, "
                f"{step / duration:.0%} of the way from {start} to {end}{hint}"
            )
    values = [
        _call_schedule(linear_schedule, start, end, duration, step)
        for step in range(0, duration + 1, max(1, duration // 50))
    ]
    steps = np.diff(values)
    if not (np.all(steps <= 1e-12) if end <= start else np.all(steps >= -1e-12)):
        raise AssertionError(
            f"linear_schedule({start}, {end}, {duration}, step) must move steadily from start to end, but it goes back and forth"
        )
    # The same formula must work for a schedule that increases.
    value = _call_schedule(linear_schedule, 0.0, 2.0, 4, 1)
    if abs(value - 0.5) > 1e-6:
        raise AssertionError(
            f"linear_schedule(0.0, 2.0, 4, step=1) returned {value:g}, expected 0.5: the schedule must also work when "
            "end is above start (start + fraction * (end - start) does both)"
        )


def check_linear_schedule_holds_its_floor(
    linear_schedule: Callable, start: float = 1.0, end: float = 0.1, duration: int = 1_000
) -> None:
    """Check that linear_schedule reaches ``end`` exactly at step ``duration`` and stays there.

    Args:
        linear_schedule: The student's ``linear_schedule(start, end, duration, step)``.
        start: Value at step 0.
        end: The floor, from step ``duration`` on.
        duration: Agent steps of the decay.

    Raises:
        AssertionError: Naming a value past the floor (the fraction not clamped with
            ``min(step / duration, 1.0)``), a schedule that never reaches ``end``, or an
            increasing schedule clamped on the value instead of the fraction.
    """
    for step in (duration, duration + 1, 2 * duration, 50 * duration):
        value = _call_schedule(linear_schedule, start, end, duration, step)
        if abs(value - end) <= 1e-9:
            continue
        call = f"linear_schedule({start}, {end}, {duration}, step={step})"
        if (value - end) * (start - end) < 0:
            raise AssertionError(
                f"{call} returned {value:g}, past the floor {end}: after `duration` steps the schedule must stop at end. "
                "Clamp the fraction of the way done: min(step / duration, 1.0)"
            )
        raise AssertionError(
            f"{call} returned {value:g}: it never reaches its floor {end}. At step {duration} (= duration) and after, "
            "it must return end exactly"
        )
    for step in (4, 12):
        value = _call_schedule(linear_schedule, 0.0, 2.0, 4, step)
        if abs(value - 2.0) > 1e-9:
            raise AssertionError(
                f"linear_schedule(0.0, 2.0, 4, step={step}) returned {value:g}, expected 2.0: a schedule that increases "
                "must stop at its end value too (clamp the fraction, min(step / duration, 1.0), not the value)"
            )


# --- the training loop ----------------------------------------------------------------------------------


class LoopSettings(NamedTuple):
    """The small run a loop check makes: every count is in agent steps."""

    total_steps: int = 300
    learning_starts: int = 100
    train_frequency: int = 4
    target_update_interval: int = 60
    epsilon_decay_steps: int = 150
    start_step: int = 0
    seed: int = 3

    def config(self) -> Any:
        """The DQNConfig the loop is called with."""
        from dqn_helpers.training import DQNConfig

        return dataclasses.replace(
            DQNConfig(),
            seed=self.seed,
            num_envs=1,
            total_steps=self.total_steps,
            buffer_size=1_000,
            learning_starts=self.learning_starts,
            train_frequency=self.train_frequency,
            batch_size=32,
            target_update_interval=self.target_update_interval,
            epsilon_start=1.0,
            epsilon_end=0.1,
            epsilon_decay_steps=self.epsilon_decay_steps,
        )


class _LoopError(AssertionError):
    """A mistake that stopped the loop; every loop check reports it."""


class _Record:
    """What the spies saw, in agent steps (env.step calls made so far by the loop)."""

    def __init__(self) -> None:
        self.steps = 0
        self.resets = 0
        self.reset_steps: list[int] = []  # agent steps at which the loop reset the environment
        self.epsilons: list[tuple[int, float]] = []  # (agent steps so far, epsilon) per action chosen
        self.adds = 0
        self.flag_mistakes: list[str] = []
        self.updates: list[tuple[int, int]] = []  # (agent steps so far, transitions in the buffer)
        self.samples: list[int] = []  # batch sizes asked for
        self.other_batch = 0  # updates on something else than the batch sampled last
        self.syncs: list[int] = []
        self.log_calls = 0


class _SpyEnv(gym.Wrapper):
    """The real environment, which cuts every other episode short and records what the loop does."""

    def __init__(self, env: gym.Env, record: _Record, max_steps: int):
        super().__init__(env)
        self.record, self.max_steps = record, max_steps
        self.current: np.ndarray | None = None  # the state the next action must be chosen from
        self.previous: np.ndarray | None = None
        self.last_step: tuple[Any, ...] | None = None  # (action, reward, terminated, truncated) of the last step
        self.ended = False
        self.episode_steps = 0
        self.episodes = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        self.record.resets += 1
        self.record.reset_steps.append(self.record.steps)
        self.current, self.ended, self.episode_steps = observation, False, 0
        self.episodes += 1
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        record = self.record
        if self.current is None:
            raise _LoopError(
                "your loop called env.step() before env.reset(): reset the environment first, to get the first state"
            )
        if self.ended:
            raise _LoopError(
                f"your loop called env.step() at agent step {record.steps + 1} although the episode had ended at the step "
                "before: when `terminated` or `truncated` is True, reset the environment (state, info = env.reset())"
            )
        if record.steps >= self.max_steps:
            raise _LoopError(
                f"your loop took more than {self.max_steps} agent steps: from start_step to config.total_steps is "
                f"{self.max_steps}. Loop over range(start_step, config.total_steps)"
            )
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.episode_steps += 1
        if self.episodes % 2 == 0 and self.episode_steps >= TRUNCATE_AFTER and not terminated:
            truncated = True  # the checks' time limit
        record.steps += 1
        self.previous, self.current = self.current, observation
        self.last_step = (int(action), float(reward), bool(terminated), bool(truncated))
        self.ended = bool(terminated or truncated)
        return observation, reward, terminated, truncated, info


class _SpyPolicy:
    """A QPolicy that records the epsilon of every action and checks the state it is given."""

    def __init__(self, policy: Any, env: _SpyEnv, record: _Record):
        self.policy, self.env, self.record = policy, env, record
        self.num_actions = policy.num_actions
        self.q_network = policy.q_network

    def __call__(self, state: np.ndarray, rng: np.random.Generator, epsilon: float = 0.0) -> int:
        record, env = self.record, self.env
        if env.current is None or not isinstance(state, np.ndarray) or state.shape != env.current.shape:
            raise _LoopError(
                f"your loop called policy(state, rng, epsilon) with a state of type {type(state).__name__} "
                f"{getattr(state, 'shape', '')}: pass the current state, as env.reset() or env.step() returned it"
            )
        if not np.array_equal(state, env.current):
            stale = env.previous is not None and np.array_equal(state, env.previous)
            raise _LoopError(
                f"your loop chose the action of agent step {record.steps + 1} from "
                + ("the state before the last step" if stale else "a state that is not the current one")
                + ": the next state is not carried forward. After storing a transition, set `state = next_state` "
                "(and after a reset, state = the reset's state)"
            )
        try:
            epsilon = float(epsilon)
        except (TypeError, ValueError):
            raise _LoopError(f"epsilon passed to the policy must be a number, got {type(epsilon).__name__}") from None
        record.epsilons.append((record.steps, epsilon))
        return self.policy(state, rng, epsilon)

    def act(self, *args: Any, **kwargs: Any) -> Any:
        raise _LoopError("use policy(state, rng, epsilon) for the single environment of this loop, not policy.act")


class _SpyReplay:
    """A ReplayBuffer that compares each stored transition with the step the environment really took."""

    def __init__(self, replay: Any, env: _SpyEnv, record: _Record):
        self.replay, self.env, self.record = replay, env, record
        self.last_batch: Any = None

    def __len__(self) -> int:
        return len(self.replay)

    def add(
        self, state: Any, action: Any, reward: Any, next_state: Any, terminated: Any, truncated: Any = False
    ) -> None:
        record, env = self.record, self.env
        if env.last_step is None or record.adds >= record.steps:
            raise _LoopError(
                f"your loop stored {record.adds + 1} transitions after only {record.steps} agent steps: store one "
                "transition after each env.step()"
            )
        taken, reward_taken, terminated_taken, truncated_taken = env.last_step
        if record.adds != record.steps - 1:
            raise _LoopError(
                f"your loop stored {record.adds} transitions in {record.steps - 1} agent steps before the last one: "
                "store every transition, right after its env.step()"
            )
        if not (isinstance(next_state, np.ndarray) and np.array_equal(next_state, env.current)):
            raise _LoopError(
                f"at agent step {record.steps}, replay.add got a next_state that is not the state env.step() returned: "
                "store (state, action, reward, next_state, terminated, truncated) in that order, before any reset"
            )
        if not (isinstance(state, np.ndarray) and np.array_equal(state, env.previous)):
            if isinstance(state, np.ndarray) and np.array_equal(state, env.current):
                raise _LoopError(
                    f"at agent step {record.steps}, replay.add got the next state as its state: the state was carried "
                    "forward too early. Store the transition first, then set `state = next_state`"
                )
            raise _LoopError(
                f"at agent step {record.steps}, replay.add got a state that is not the one the action was chosen "
                "from: the next state is not carried forward (is `state = next_state` missing?)"
            )
        if int(action) != taken or float(reward) != reward_taken:
            raise _LoopError(
                f"at agent step {record.steps}, replay.add got action {action!r} and reward {reward!r}, but the "
                f"environment took action {taken} and returned reward {reward_taken:g}: store the step's own action and reward"
            )
        stored = (bool(terminated), bool(truncated))
        if stored != (terminated_taken, truncated_taken):
            record.flag_mistakes.append(_flag_mistake(record.steps, stored, (terminated_taken, truncated_taken)))
        record.adds += 1
        try:
            self.replay.add(state, action, reward, next_state, terminated, truncated)
        except ValueError as error:
            if "does not continue" in str(error) and record.flag_mistakes:
                raise _LoopError(record.flag_mistakes[0]) from None
            raise _LoopError(f"replay.add raised ValueError at agent step {record.steps}: {error}") from None

    def sample(self, batch_size: int, rng: np.random.Generator) -> Any:
        self.record.samples.append(batch_size)
        try:
            self.last_batch = self.replay.sample(batch_size, rng)
        except ValueError as error:
            raise _LoopError(
                f"replay.sample raised ValueError after {self.record.steps} agent steps: {error}"
            ) from None
        return self.last_batch

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.replay.state_dict()


def _flag_mistake(step: int, stored: tuple[bool, bool], taken: tuple[bool, bool]) -> str:
    names = ("terminated", "truncated")
    got = ", ".join(f"{name}={value}" for name, value in zip(names, stored))
    real = ", ".join(f"{name}={value}" for name, value in zip(names, taken))
    if taken == (False, True) and stored[0]:
        why = (
            "a time limit is not the end of the game: the target must still bootstrap from the next state, so store "
            "`terminated` as the environment returned it, not `terminated or truncated`"
        )
    elif taken == (False, True):
        why = "pass `truncated` too, so that the buffer starts a new episode after it: replay.add(..., terminated, truncated)"
    elif taken == (True, False) and not stored[0]:
        swapped = " (are they swapped?)" if stored[1] else ""
        why = (
            "the episode really ended here (a lost life), so the target must not bootstrap past it. Pass the flags as "
            f"env.step() returned them{swapped}: replay.add(state, action, reward, next_state, terminated, truncated)"
        )
    else:
        why = "store both flags as env.step() returned them: replay.add(state, action, reward, next_state, terminated, truncated)"
    return f"at agent step {step}, the environment returned {real} but your loop stored {got}: {why}"


class _SpyLearner:
    """A DQNLearner that records each update and target sync (and keeps its own network attributes)."""

    def __init__(self, learner: Any, replay: _SpyReplay, record: _Record):
        self.learner, self.replay, self.record = learner, replay, record
        self.online_network = learner.online_network
        self.target_network = learner.target_network
        self.optimizer = learner.optimizer
        self.gamma = learner.gamma

    def train_step(self, *args: Any, **kwargs: Any) -> Any:
        record = self.record
        record.updates.append((record.steps, len(self.replay)))
        batch = self.replay.last_batch
        if batch is None or not args or args[0] is not batch.states:
            record.other_batch += 1
        try:
            return self.learner.train_step(*args, **kwargs)
        except Exception as error:
            raise _LoopError(
                f"learner.train_step raised {type(error).__name__}: {str(error)[:300]}. It takes the arrays of the batch "
                "that replay.sample returned: learner.train_step(*batch)"
            ) from None

    def sync_target(self) -> None:
        self.record.syncs.append(self.record.steps)
        self.learner.sync_target()


class _SpyLog:
    def __init__(self, record: _Record):
        self.record = record

    def __getattr__(self, name: str) -> Callable[..., None]:
        def write(*args: Any, **kwargs: Any) -> None:
            self.record.log_calls += 1

        return write


_PARTS: dict[str, Any] = {}  # one learner and policy for every run: XLA compiles the update once
_RUNS: dict[tuple[Any, LoopSettings], tuple[_Record, Any, str | None]] = {}


def _parts() -> tuple[Any, Any, dict[str, np.ndarray]]:
    if not _PARTS:
        from dqn_helpers.learner import DQNLearner
        from dqn_helpers.policies import QPolicy

        learner = DQNLearner(4)
        _PARTS.update(learner=learner, policy=QPolicy(learner.online_network), initial=learner.get_state())
    return _PARTS["learner"], _PARTS["policy"], _PARTS["initial"]


def _prefill(replay: Any, settings: LoopSettings) -> None:
    """Play ``start_step`` random transitions into the buffer, as a checkpoint would have kept them."""
    from dqn_helpers.envs import make_env

    env = make_env("Breakout", training=True)
    rng = np.random.default_rng(settings.seed + 1)
    state, _ = env.reset(seed=settings.seed + 1)
    for step in range(settings.start_step):
        action = int(rng.integers(env.action_space.n))
        next_state, reward, terminated, truncated, _ = env.step(action)
        truncated = truncated or step == settings.start_step - 1  # the saved run stops mid-episode
        replay.add(state, action, reward, next_state, terminated, truncated)
        state = next_state
        if terminated or truncated:
            state, _ = env.reset()
    env.close()


def _run(train_loop: Callable, settings: LoopSettings) -> tuple[_Record, Any]:
    """Run the loop once per settings (and loop function); return what the spies saw, or raise its mistake."""
    key = (train_loop, settings)
    if key not in _RUNS:
        _RUNS[key] = _run_once(train_loop, settings)
    record, spies, error = _RUNS[key]
    if error is not None:
        raise AssertionError(error)
    return record, spies


def _run_once(train_loop: Callable, settings: LoopSettings) -> tuple[_Record, Any, str | None]:
    from dqn_helpers.envs import make_env
    from dqn_helpers.replay import ReplayBuffer

    if not callable(train_loop):
        return _Record(), None, f"train_loop must be a function, got {type(train_loop).__name__}"
    config = settings.config()
    learner, policy, initial = _parts()
    learner.set_state(initial)
    record = _Record()
    env = _SpyEnv(make_env("Breakout", training=True), record, config.total_steps - settings.start_step)
    real_replay = ReplayBuffer(config.buffer_size)
    _prefill(real_replay, settings)
    replay = _SpyReplay(real_replay, env, record)
    spies = _SpyLearner(learner, replay, record)
    error = None
    try:
        train_loop(
            config,
            env,
            spies,
            replay,
            _SpyPolicy(policy, env, record),
            np.random.default_rng(settings.seed),
            _SpyLog(record),
            start_step=settings.start_step,
            progress=False,
        )
    except _LoopError as mistake:
        error = str(mistake)
    except AssertionError as mistake:
        error = str(mistake)
    except Exception as exception:
        error = (
            f"your loop raised {type(exception).__name__}: {exception}, after {record.steps} agent steps. "
            "Run its cell again after fixing it; the lines with blanks are the ones to look at first"
        )
    finally:
        env.close()
    if error is None and record.steps != config.total_steps - settings.start_step:
        error = (
            f"your loop took {record.steps} agent steps from start_step={settings.start_step} to "
            f"config.total_steps={config.total_steps}: it must take exactly {config.total_steps - settings.start_step}"
        )
    return record, spies, error


RESUMED = LoopSettings(start_step=120, seed=4)  # a run picked up from a checkpoint, past learning_starts


def _new_and_resumed(check: Callable) -> Callable:
    """Run a loop check on a new run and then on a resumed one, unless the caller gives its own settings.

    A mistake that shows only after a resume (the schedule or the step counter restarted
    from 0) is then seen by the visible check, not by a hidden test alone.
    """

    @functools.wraps(check)
    def run_both(train_loop: Callable, settings: LoopSettings | None = None) -> None:
        if settings is not None:
            check(train_loop, settings)
            return
        check(train_loop, LoopSettings())
        try:
            check(train_loop, RESUMED)
        except AssertionError as error:
            raise AssertionError(
                f"resumed at agent step {RESUMED.start_step} (start_step={RESUMED.start_step}, as from a checkpoint): "
                f"{error}"
            ) from None

    return run_both


def _describe(settings: LoopSettings) -> str:
    return (
        f"(a run of agent steps {settings.start_step} to {settings.total_steps}, learning_starts={settings.learning_starts}, "
        f"train_frequency={settings.train_frequency}, target_update_interval={settings.target_update_interval})"
    )


@_new_and_resumed
def check_training_loop_acts_and_stores(train_loop: Callable, settings: LoopSettings) -> None:
    """Check that the loop acts on the current state and stores each transition with the flags the environment gave.

    Args:
        train_loop: The student's loop function.
        settings: The run to make; without it, a new run and then one resumed at agent
            step 120, as from a checkpoint.

    Raises:
        AssertionError: Naming a count of policy calls or of stored transitions other
            than one per agent step; flags stored other than as ``env.step`` returned them
            (truncation stored as ``terminated``, ``truncated`` not passed, a lost life not
            stored as terminal, the two swapped); or the stop of a loop that does not carry
            ``state = next_state`` (the replay buffer refuses a state that does not
            continue the previous one).
    """
    record, _ = _run(train_loop, settings)
    if len(record.epsilons) != record.steps:
        raise AssertionError(
            f"your loop chose {len(record.epsilons)} actions with policy(state, rng, epsilon) in {record.steps} agent "
            "steps: choose each action with the epsilon-greedy policy"
        )
    if record.adds != record.steps:
        raise AssertionError(
            f"your loop stored {record.adds} transitions in {record.steps} agent steps: store one per step"
        )
    if record.flag_mistakes:
        raise AssertionError(record.flag_mistakes[0])


@_new_and_resumed
def check_training_loop_decays_epsilon_per_step(train_loop: Callable, settings: LoopSettings) -> None:
    """Check that epsilon follows the linear schedule of the agent step, down to its floor.

    Args:
        train_loop: The student's loop function.
        settings: The run to make; without it, a new run and then one resumed at agent
            step 120, as from a checkpoint.

    Raises:
        AssertionError: Naming a loop that never calls the policy, epsilon below its
            floor, epsilon that changes only when an episode ends (decay per episode), a
            schedule restarted from 0 at ``start_step``, epsilon that never moves or never
            reaches its floor; else the first agent step where it differs.
    """
    from dqn_helpers.schedules import linear_schedule

    record, _ = _run(train_loop, settings)
    config = settings.config()
    if not record.epsilons:
        raise AssertionError("your loop never called policy(state, rng, epsilon): choose each action with it")
    start = settings.start_step

    def expected(steps_so_far: int, shift: int) -> float:
        return linear_schedule(
            config.epsilon_start, config.epsilon_end, config.epsilon_decay_steps, start + steps_so_far + shift
        )

    for shift in (0, 1):  # the step counted from 0 or from 1
        if all(abs(epsilon - expected(steps, shift)) < 1e-6 for steps, epsilon in record.epsilons):
            return
    values = np.array([epsilon for _, epsilon in record.epsilons])
    floor = config.epsilon_end
    if values.min() < floor - 1e-9:
        raise AssertionError(
            f"epsilon went down to {values.min():g}, below its floor config.epsilon_end = {floor}: it must stop there"
        )
    changes = np.flatnonzero(np.abs(np.diff(values)) > 1e-12) + 1  # agent steps (0-based) where epsilon changed
    if len(changes) and set((changes).tolist()) <= set(record.reset_steps) and len(changes) < len(values) // 4:
        raise AssertionError(
            f"epsilon changed only when an episode ended ({len(changes)} times in {len(values)} agent steps): it decays "
            "per episode. Compute it from the agent step: linear_schedule(config.epsilon_start, config.epsilon_end, "
            "config.epsilon_decay_steps, step)"
        )
    if start and all(
        abs(epsilon - linear_schedule(config.epsilon_start, floor, config.epsilon_decay_steps, steps)) < 1e-6
        for steps, epsilon in record.epsilons
    ):
        raise AssertionError(
            f"epsilon at agent step {start} was {values[0]:g}, expected {expected(0, 0):g}: it restarted from 0 at "
            "start_step. Use the global agent step, which continues from start_step"
        )
    if not len(changes):
        raise AssertionError(
            f"epsilon stayed at {values[0]:g} for all {len(values)} agent steps: it must decay with the agent step, "
            "from config.epsilon_start to config.epsilon_end over config.epsilon_decay_steps"
        )
    if start + len(values) > config.epsilon_decay_steps + 1 and values[-1] > floor + 1e-6:
        raise AssertionError(
            f"epsilon never reached its floor: it was {values[-1]:g} at agent step {start + len(values)}, past "
            f"config.epsilon_decay_steps = {config.epsilon_decay_steps}, where it must be config.epsilon_end = {floor}"
        )
    for steps, epsilon in record.epsilons:
        if abs(epsilon - expected(steps, 0)) > 1e-6 and abs(epsilon - expected(steps, 1)) > 1e-6:
            raise AssertionError(
                f"epsilon at agent step {start + steps} was {epsilon:g}, expected {expected(steps, 0):g} "
                f"(linear from {config.epsilon_start} to {floor} over {config.epsilon_decay_steps} agent steps)"
            )


def _expected_count(first: int, stop: int, interval: int) -> int:
    """How many steps s in [first, stop) are multiples of ``interval``."""
    first = max(first, 0)
    return max(0, (stop - 1) // interval - (first - 1) // interval) if stop > first else 0


@_new_and_resumed
def check_training_loop_learns_on_schedule(train_loop: Callable, settings: LoopSettings) -> None:
    """Check that the loop waits for ``learning_starts``, then makes one update every ``train_frequency`` steps on a sampled batch.

    Args:
        train_loop: The student's loop function.
        settings: The run to make; without it, a new run and then one resumed at agent
            step 120, as from a checkpoint.

    Raises:
        AssertionError: Naming a loop that never updates, updates before
            ``learning_starts`` transitions are held, updates every agent step or at
            another rate than every ``train_frequency`` steps, samples batches of another
            size or one per update, or updates on something else than the batch it
            sampled.
    """
    record, _ = _run(train_loop, settings)
    config = settings.config()
    where = _describe(settings)
    if not record.updates:
        raise AssertionError(
            f"your loop never called learner.train_step {where}: after learning_starts it must update every train_frequency agent steps"
        )
    first_steps, first_size = record.updates[0]
    if first_size < config.learning_starts:
        raise AssertionError(
            f"your loop made its first update with only {first_size} transitions in the replay buffer, after agent step "
            f"{settings.start_step + first_steps}: training must wait until the buffer holds config.learning_starts = "
            f"{config.learning_starts} transitions (the agent steps of play before the first update)"
        )
    expected = _expected_count(config.learning_starts, config.total_steps, config.train_frequency) - _expected_count(
        config.learning_starts, settings.start_step, config.train_frequency
    )
    made = len(record.updates)
    if abs(made - expected) > 1 + expected // 20:
        per_step = made >= 0.8 * (config.total_steps - max(config.learning_starts, settings.start_step))
        hint = (
            ": that is an update every agent step. Update only when step % config.train_frequency == 0"
            if per_step
            else ": update once every config.train_frequency agent steps, from learning_starts to the end"
        )
        raise AssertionError(f"your loop made {made} updates {where}; it must make about {expected}{hint}")
    if any(size != config.batch_size for size in record.samples) or len(record.samples) < made:
        sizes = sorted(set(record.samples))
        raise AssertionError(
            f"your loop sampled {len(record.samples)} batches of sizes {sizes} for {made} updates: sample one batch of "
            f"config.batch_size = {config.batch_size} transitions for each update"
        )
    if record.other_batch:
        raise AssertionError(
            f"{record.other_batch} of your loop's {made} updates did not learn from the batch just sampled: "
            "pass its arrays to the update, learner.train_step(*batch)"
        )


@_new_and_resumed
def check_training_loop_syncs_the_target(train_loop: Callable, settings: LoopSettings) -> None:
    """Check that the loop copies the online network into the target every ``target_update_interval`` agent steps.

    Args:
        train_loop: The student's loop function.
        settings: The run to make; without it, a new run and then one resumed at agent
            step 120, as from a checkpoint.

    Raises:
        AssertionError: Naming a target that is the online network itself (assigned,
            not copied), a target never synced, synced every step, at every update or
            another number of times than every ``target_update_interval`` steps, or syncs
            unevenly spaced.
    """
    record, spies = _run(train_loop, settings)
    config = settings.config()
    if spies.target_network is spies.online_network:
        raise AssertionError(
            "learner.target_network is the same object as learner.online_network: assigning one network to the other "
            "name makes the target move with every update. Copy the weights instead, with learner.sync_target()"
        )
    steps = config.total_steps - settings.start_step
    interval = config.target_update_interval
    expected = _expected_count(settings.start_step, config.total_steps, interval)
    made = len(record.syncs)
    if made == 0:
        raise AssertionError(
            f"your loop never synced the target network in {steps} agent steps: without learner.sync_target() every "
            f"config.target_update_interval = {interval} agent steps, the targets keep coming from the initial random network"
        )
    if made >= steps // 2:
        raise AssertionError(
            f"your loop synced the target network {made} times in {steps} agent steps: every step, which makes the "
            f"target the online network and the targets chase themselves. Sync once every config.target_update_interval = {interval} agent steps"
        )
    if abs(made - expected) > 1:
        hint = ""
        if made == len(record.updates):
            hint = (
                " (it is synced at every update: give it its own condition, step % config.target_update_interval == 0)"
            )
        raise AssertionError(
            f"your loop synced the target network {made} times in {steps} agent steps; once every "
            f"config.target_update_interval = {interval} agent steps makes {expected}{hint}"
        )
    gaps = set(np.diff(record.syncs).tolist())
    if gaps and not gaps <= {interval - 1, interval, interval + 1}:
        raise AssertionError(
            f"your loop synced the target network after agent steps {record.syncs}: the syncs must be "
            f"config.target_update_interval = {interval} agent steps apart"
        )
