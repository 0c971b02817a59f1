"""Tests for dqn_helpers.checks.training_loop: each classic loop mistake fails a check that names it.

The correct loop is the ``train_loop`` cell of solutions/05_training_loop, run as it
is; each buggy variant plants one mistake into that cell's text (``PLANTED``), so the
tests follow the notebook wherever it changes. The loop checks run the real loop on
Breakout for a few hundred agent steps, so most variants use a smaller run than the
notebook's (``SMALL``) to keep this file quick.
"""

from __future__ import annotations

import numpy as np
import pytest
from tqdm.auto import tqdm

from dqn_helpers import schedules
from dqn_helpers.checks import training_loop as checks
from dqn_helpers.schedules import linear_schedule
from tests import cells
from tests.conftest import REPO

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


SOLUTION = cells.sources(REPO / "solutions" / "05_training_loop" / "05_training_loop.ipynb")["train_loop"]

_EPSILON = (
    "epsilon = schedules.linear_schedule(config.epsilon_start, config.epsilon_end, config.epsilon_decay_steps, step)"
)
_STORE = "replay.add(state, action, reward, next_state, terminated, truncated)"
_RESET = "            state, info = env.reset()\n"
_SYNC_IF = "if step % config.target_update_interval == 0:"
_SYNC = "learner.sync_target()"


def _store(flags: str) -> tuple[str, str]:
    return _STORE, f"replay.add(state, action, reward, next_state, {flags})"


# Each mistake as (text of the solution cell, what the buggy loop has instead); every text occurs once.
PLANTED = {
    "epsilon_per_episode": [
        ("    for step in tqdm(", "    episodes = 0\n    for step in tqdm("),
        (_EPSILON, _EPSILON.replace(", step)", ", episodes)")),
        (_RESET, _RESET + "            episodes += 1\n"),
    ],
    "epsilon_never_at_floor": [(_EPSILON, _EPSILON.replace("config.epsilon_decay_steps", "config.total_steps * 2"))],
    "epsilon_restarts_on_resume": [(_EPSILON, _EPSILON.replace(", step)", ", step - start_step)"))],
    "trains_from_the_start": [("if step >= config.learning_starts and", "if step >= 0 and")],
    "updates_every_step": [("step % config.train_frequency == 0", "step % 1 == 0")],
    "batch_of_one": [("replay.sample(config.batch_size, rng)", "replay.sample(1, rng)")],
    "syncs_every_step": [(_SYNC_IF, "if True:")],
    "never_syncs": [(_SYNC_IF, "if False:")],
    "syncs_at_every_update": [
        ("log.loss(step + 1, result.loss)", f"log.loss(step + 1, result.loss); {_SYNC}"),
        (_SYNC_IF, "if False:"),
    ],
    "target_is_online": [(_SYNC_IF, "if True:"), (_SYNC, "learner.target_network = learner.online_network")],
    "truncated_as_terminated": [_store("terminated or truncated, truncated")],
    "truncated_ignored": [_store("terminated, False")],
    "flags_swapped": [_store("truncated, terminated")],
    "terminated_as_truncated": [_store("False, terminated or truncated")],
    "terminated_ignored": [_store("False, truncated")],
    "state_carried_forward_too_early": [(f"        {_STORE}", f"        state = next_state\n        {_STORE}")],
    "state_not_carried_forward": [("        state = next_state  #", "        pass  #")],
    "no_reset": [(_RESET, "            pass\n")],
}


def _loop_from(source: str, name: str):
    """Run a train_loop cell's source with what the notebook's set-up imports; return its function."""
    namespace = {"schedules": schedules, "tqdm": tqdm}
    exec(source, namespace)  # noqa: S102 - the course's own notebook
    loop = namespace["train_loop"]
    loop.__name__ = name
    return loop


def _planted(bug: str):
    source = SOLUTION
    for text, instead in PLANTED[bug]:
        assert source.count(text) == 1, f"{bug}: the solution's train_loop must hold {text!r} once"
        source = source.replace(text, instead)
    return _loop_from(source, bug)


correct_loop = _loop_from(SOLUTION, "train_loop")


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
def test_the_visible_check_sees_a_mistake_that_shows_only_after_a_resume():
    """Check that a loop check called as the notebook calls it (no settings) also runs a resumed run."""
    with pytest.raises(AssertionError, match="resumed at agent step 120 .*restarted from 0 at start_step"):
        checks.check_training_loop_decays_epsilon_per_step(_LOOPS["epsilon_restarts_on_resume"])
    checks.check_training_loop_decays_epsilon_per_step(correct_loop)


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


_LOOPS = {bug: _planted(bug) for bug in PLANTED}


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
