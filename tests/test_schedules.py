"""Tests for dqn_helpers.schedules.linear_schedule: epsilon annealed per agent step."""

from __future__ import annotations

import pytest

from dqn_helpers.schedules import linear_schedule

# Nature DQN: epsilon from 1.0 to 0.1 over the first million agent steps.
START, END, DURATION = 1.0, 0.1, 1_000_000


@pytest.mark.parametrize(
    "start, end, duration, step, expected",
    [
        (START, END, DURATION, 0, 1.0),  # start value at step 0
        (START, END, DURATION, 250_000, 0.775),  # 1 - 0.25 * 0.9
        (START, END, DURATION, 500_000, 0.55),  # 1 - 0.5 * 0.9
        (START, END, DURATION, 999_999, 0.1000009),  # 1 - 0.999999 * 0.9
        (START, END, DURATION, DURATION, 0.1),  # floor reached exactly at duration
        (START, END, DURATION, 5 * DURATION, 0.1),  # and held beyond
        (1.0, 0.01, 250_000, 125_000, 0.505),  # Dopamine-style: 1 - 0.5 * 0.99
        (0.0, 2.0, 4, 1, 0.5),  # increasing schedules interpolate the same way
        (0.0, 2.0, 4, 9, 2.0),
        (0.5, 0.5, 10, 3, 0.5),  # constant
    ],
)
def test_values(start, end, duration, step, expected):
    """The value is the linear interpolation at step/duration, clamped at the end value."""
    assert linear_schedule(start, end, duration, step) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("end", [0.1, 0.01, 0.05])
def test_floor_is_exact_and_held(end):
    """From step `duration` on, the value equals the floor exactly (no float residue like 0.10000000000000009)."""
    duration = 1_000
    for step in (duration, duration + 1, 10 * duration):
        assert linear_schedule(1.0, end, duration, step) == end


def test_decays_every_step_and_is_monotone():
    """Every agent step (not every episode) lowers the value by (start - end) / duration, down to the floor."""
    duration = 100
    values = [linear_schedule(START, END, duration, step) for step in range(duration + 20)]
    decrement = (START - END) / duration  # 0.009 per step
    for step in range(duration):
        assert values[step] - values[step + 1] == pytest.approx(decrement, abs=1e-9)
    assert all(later <= earlier for earlier, later in zip(values, values[1:]))
    assert values[duration:] == [END] * 20


def test_first_step_already_decays():
    """One agent step into a million-step schedule, epsilon is already below its start value."""
    assert linear_schedule(START, END, DURATION, 1) < START


@pytest.mark.parametrize(
    "duration, step, message",
    [
        (0, 0, "duration must be positive, got 0"),
        (-10, 5, "duration must be positive, got -10"),
        (100, -1, "step must be >= 0, got -1"),
    ],
)
def test_bad_arguments(duration, step, message):
    """A non-positive duration or a negative step raises a ValueError."""
    with pytest.raises(ValueError, match=message):
        linear_schedule(START, END, duration, step)
