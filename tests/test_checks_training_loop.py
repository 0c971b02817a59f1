"""Tests for dqn_helpers.checks.training_loop: each classic loop mistake fails a check that names it.

The correct loop below is the one of solutions/05_training_loop; each buggy variant
changes one line of it (``bug=...``). The loop checks run the real loop on Breakout
for a few hundred agent steps, so most variants use a smaller run than the
notebook's (``SMALL``) to keep this file quick.
"""

from __future__ import annotations

import numpy as np
import pytest

from dqn_helpers.checks import training_loop as checks
from dqn_helpers.schedules import linear_schedule

# About 13 updates and 5 syncs: (150 - 50) / 8 and 150 / 30.
SMALL = checks.LoopSettings(
    total_steps=150, learning_starts=50, train_frequency=8, target_update_interval=30, epsilon_decay_steps=80, seed=4
)
# A resumed run, as the notebook's hidden tests make it: 120 steps already in the buffer.
RESUMED = checks.LoopSettings(
    total_steps=260,
    learning_starts=80,
    train_frequency=8,
    target_update_interval=40,
    epsilon_decay_steps=200,
    start_step=120,
    seed=5,
)

LOOP_CHECKS = [
    checks.check_training_loop_acts_and_stores,
    checks.check_training_loop_decays_epsilon_per_step,
    checks.check_training_loop_learns_on_schedule,
    checks.check_training_loop_syncs_the_target,
]


def _loop(config, env, learner, replay, policy, rng, log, *, start_step=0, progress=True, bug=None):
    """The notebook's loop; ``bug`` names the one line a variant gets wrong."""
    state, info = env.reset(seed=config.seed + start_step)
    episodes = 0
    for step in range(start_step, config.total_steps):
        counter = episodes if bug == "epsilon_per_episode" else step
        duration = config.total_steps * 2 if bug == "epsilon_never_at_floor" else config.epsilon_decay_steps
        epsilon = linear_schedule(config.epsilon_start, config.epsilon_end, duration, counter)
        if bug == "epsilon_restarts_on_resume":
            epsilon = linear_schedule(config.epsilon_start, config.epsilon_end, duration, step - start_step)
        action = policy(state, rng, epsilon)
        next_state, reward, terminated, truncated, info = env.step(action)
        stored = {
            "truncated_as_terminated": (terminated or truncated, truncated),
            "truncated_ignored": (terminated, False),
            "flags_swapped": (truncated, terminated),
            "terminated_as_truncated": (False, terminated or truncated),
            "terminated_ignored": (False, truncated),
        }.get(bug, (terminated, truncated))
        if bug == "state_carried_forward_too_early":
            state = next_state
        replay.add(state, action, reward, next_state, *stored)
        if bug != "state_not_carried_forward":
            state = next_state
        log.game_over(step + 1, info, epsilon)
        if terminated or truncated:
            if bug != "no_reset":
                state, info = env.reset()
            episodes += 1
        starts = 0 if bug == "trains_from_the_start" else config.learning_starts
        frequency = 1 if bug == "updates_every_step" else config.train_frequency
        if step >= starts and step % frequency == 0:
            batch = replay.sample(1 if bug == "batch_of_one" else config.batch_size, rng)
            result = learner.train_step(*batch)
            log.loss(step + 1, result.loss)
            if bug == "syncs_at_every_update":
                learner.sync_target()
        if bug == "target_is_online":
            learner.target_network = learner.online_network
        elif bug == "syncs_every_step":
            learner.sync_target()
        elif bug not in ("never_syncs", "syncs_at_every_update") and step % config.target_update_interval == 0:
            learner.sync_target()


def correct_loop(*args, **kwargs):
    return _loop(*args, **kwargs)


def _variant(bug):
    def loop(*args, **kwargs):
        return _loop(*args, bug=bug, **kwargs)

    loop.__name__ = bug
    return loop


# (the loop's mistake, settings, the check that must catch it, key words of its message)
BUGGY_LOOPS = [
    # a classic mistake (docs/bug_catalogue.md): epsilon decays per episode instead of per step, or never reaches its floor
    (
        "epsilon_per_episode",
        SMALL,
        checks.check_training_loop_decays_epsilon_per_step,
        "changed only when an episode ended.*decays per episode",
    ),
    (
        "epsilon_never_at_floor",
        SMALL,
        checks.check_training_loop_decays_epsilon_per_step,
        "epsilon never reached its floor",
    ),
    (
        "epsilon_restarts_on_resume",
        RESUMED,
        checks.check_training_loop_decays_epsilon_per_step,
        "restarted from 0 at start_step",
    ),
    # a classic mistake (docs/bug_catalogue.md): training starts before the buffer holds enough transitions
    (
        "trains_from_the_start",
        SMALL,
        checks.check_training_loop_learns_on_schedule,
        "first update with only 1 transitions.*must wait until the buffer holds config.learning_starts",
    ),
    ("updates_every_step", SMALL, checks.check_training_loop_learns_on_schedule, "an update every agent step"),
    (
        "batch_of_one",
        SMALL,
        checks.check_training_loop_learns_on_schedule,
        "sample one batch of config.batch_size = 32",
    ),
    # a classic mistake (docs/bug_catalogue.md): the target network synced every step, or never; the same object as the online network
    (
        "syncs_every_step",
        SMALL,
        checks.check_training_loop_syncs_the_target,
        "synced the target network 150 times.*every step",
    ),
    ("never_syncs", SMALL, checks.check_training_loop_syncs_the_target, "never synced the target network"),
    ("syncs_at_every_update", SMALL, checks.check_training_loop_syncs_the_target, "synced at every update"),
    (
        "target_is_online",
        SMALL,
        checks.check_training_loop_syncs_the_target,
        "the same object as learner.online_network",
    ),
    # a classic mistake (docs/bug_catalogue.md): time-limit truncation treated like a terminal state (or ignored when storing)
    (
        "truncated_as_terminated",
        SMALL,
        checks.check_training_loop_acts_and_stores,
        "returned terminated=False, truncated=True but your loop stored terminated=True.*not `terminated or truncated`",
    ),
    ("flags_swapped", SMALL, checks.check_training_loop_acts_and_stores, "really ended here.*are they swapped"),
    (
        "terminated_as_truncated",
        SMALL,
        checks.check_training_loop_acts_and_stores,
        "returned terminated=True, truncated=False but your loop stored terminated=False, truncated=True.*must not bootstrap past it",
    ),
]

# Mistakes that stop the loop: every loop check names them.
STOPPING_LOOPS = [
    # a classic mistake (docs/bug_catalogue.md): the next state is not carried forward (`state = next_state` missing)
    (
        "state_not_carried_forward",
        "from the state before the last step: the next state is not carried forward.*`state = next_state`",
    ),
    (
        "truncated_ignored",
        "returned terminated=False, truncated=True but your loop stored .*truncated=False.*pass `truncated` too",
    ),
    (
        "state_carried_forward_too_early",
        "got the next state as its state.*Store the transition first, then set `state = next_state`",
    ),
    ("no_reset", "although the episode had ended.*reset the environment"),
    (
        "terminated_ignored",
        "stored terminated=False, truncated=False: the episode really ended here.*must not bootstrap past it",
    ),
]


@pytest.mark.training
@pytest.mark.parametrize("check", LOOP_CHECKS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("settings", [checks.LoopSettings(), SMALL, RESUMED], ids=["default", "small", "resumed"])
def test_the_correct_loop_passes(check, settings):
    """Check that the notebook's loop passes every loop check, fresh and resumed."""
    check(correct_loop, settings)


@pytest.mark.training
@pytest.mark.parametrize(("bug", "settings", "check", "message"), BUGGY_LOOPS, ids=[row[0] for row in BUGGY_LOOPS])
def test_a_buggy_loop_fails_with_a_message_that_names_the_mistake(bug, settings, check, message):
    """Check that each buggy loop fails its check with a message naming its mistake."""
    with pytest.raises(AssertionError, match=message):
        check(_LOOPS[bug], settings)


@pytest.mark.training
@pytest.mark.parametrize(("bug", "message"), STOPPING_LOOPS, ids=[row[0] for row in STOPPING_LOOPS])
@pytest.mark.parametrize("check", LOOP_CHECKS, ids=lambda f: f.__name__)
def test_a_loop_that_stops_fails_every_loop_check(check, bug, message):
    """Check that a mistake which stops the loop is named by every loop check, not a bare traceback."""
    with pytest.raises(AssertionError, match=message):
        check(_LOOPS[bug], SMALL)


@pytest.mark.training
@pytest.mark.parametrize(
    ("bug", "passing"),
    [
        (
            "epsilon_per_episode",
            [checks.check_training_loop_learns_on_schedule, checks.check_training_loop_syncs_the_target],
        ),
        (
            "never_syncs",
            [checks.check_training_loop_acts_and_stores, checks.check_training_loop_decays_epsilon_per_step],
        ),
        (
            "trains_from_the_start",
            [checks.check_training_loop_syncs_the_target, checks.check_training_loop_acts_and_stores],
        ),
    ],
)
def test_one_mistake_costs_only_its_own_check(bug, passing):
    """Check that a loop with one mistake still passes the checks about the other parts."""
    for check in passing:
        check(_LOOPS[bug], SMALL)


@pytest.mark.training
def test_an_exception_in_the_loop_is_wrapped_with_a_hint():
    """Check that an update called with the batch itself, not its arrays, fails with the call to make."""

    def passes_the_batch(config, env, learner, replay, policy, rng, log, *, start_step=0, progress=True):
        state, _ = env.reset(seed=config.seed)
        for step in range(start_step, config.total_steps):
            action = policy(state, rng, 1.0)
            next_state, reward, terminated, truncated, _ = env.step(action)
            replay.add(state, action, reward, next_state, terminated, truncated)
            state = next_state if not (terminated or truncated) else env.reset()[0]
            if step >= config.learning_starts:
                learner.train_step(replay.sample(config.batch_size, rng))

    with pytest.raises(AssertionError, match="learner.train_step raised .*learner.train_step\\(\\*batch\\)"):
        checks.check_training_loop_learns_on_schedule(passes_the_batch, SMALL)


_LOOPS = {bug: _variant(bug) for bug in {row[0] for row in BUGGY_LOOPS + STOPPING_LOOPS}}


# --- the epsilon schedule --------------------------------------------------------------------------------


def _fraction(start, end, duration, step):
    return start + min(step / duration, 1.0) * (end - start)


def integer_division(start, end, duration, step):
    return start + min(step // duration, 1) * (end - start)


def backwards(start, end, duration, step):
    return end + min(step / duration, 1.0) * (start - end)


def no_clamp(start, end, duration, step):
    return start + step / duration * (end - start)


def clamps_the_value_with_max(start, end, duration, step):
    return max(start + step / duration * (end - start), end)


def never_at_floor(start, end, duration, step):
    return start + min(step / (duration + 1), 1.0) * (end - start)


def off_by_one_duration(start, end, duration, step):
    return start + min(step / (duration - 1), 1.0) * (end - start)


BUGGY_SCHEDULES = [
    (integer_division, checks.check_linear_schedule_interpolates, "has not moved from start.*integer division"),
    (backwards, checks.check_linear_schedule_interpolates, "step=0\\) returned 0.1: at step 0 it must return start"),
    (no_clamp, checks.check_linear_schedule_holds_its_floor, "past the floor 0.1.*min\\(step / duration, 1.0\\)"),
    (
        clamps_the_value_with_max,
        checks.check_linear_schedule_holds_its_floor,
        "increases must stop at its end value too",
    ),
    (never_at_floor, checks.check_linear_schedule_holds_its_floor, "never reaches its floor 0.1"),
    (
        off_by_one_duration,
        checks.check_linear_schedule_interpolates,
        "returned 0.774775, expected 0.775, 25% of the way",
    ),
]


@pytest.mark.parametrize(
    "check", [checks.check_linear_schedule_interpolates, checks.check_linear_schedule_holds_its_floor]
)
@pytest.mark.parametrize("schedule", [linear_schedule, _fraction])
@pytest.mark.parametrize(("start", "end", "duration"), [(1.0, 0.1, 1_000), (1.0, 0.01, 250_000), (0.5, 0.02, 7)])
def test_correct_schedules_pass(check, schedule, start, end, duration):
    """Check that the package's schedule and the plain formula pass both schedule checks, for several settings."""
    check(schedule, start, end, duration)


@pytest.mark.parametrize(("schedule", "check", "message"), BUGGY_SCHEDULES, ids=lambda v: getattr(v, "__name__", ""))
def test_buggy_schedules_fail_with_a_message_that_names_the_mistake(schedule, check, message):
    """Check that each buggy schedule fails its check with a message naming its mistake."""
    with pytest.raises(AssertionError, match=message):
        check(schedule)


def test_a_schedule_that_raises_is_named():
    """Check that a schedule with another signature fails with the call the check made."""
    with pytest.raises(AssertionError, match="linear_schedule\\(1.0, 0.1, 1000, step=0\\) raised TypeError"):
        checks.check_linear_schedule_interpolates(lambda start, end, step: start)


def test_a_schedule_that_returns_no_number_is_named():
    """Check that a schedule returning None says it must return a number."""
    with pytest.raises(AssertionError, match="must return a number, got NoneType"):
        checks.check_linear_schedule_interpolates(lambda start, end, duration, step: None)


def test_the_checks_accept_numpy_numbers():
    """Check that a schedule returning a NumPy float passes."""
    checks.check_linear_schedule_holds_its_floor(lambda *args: np.float64(_fraction(*args)))
