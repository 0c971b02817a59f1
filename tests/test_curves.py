"""Tests for dqn_helpers.curves: reading episode logs and drawing learning curves."""

from __future__ import annotations

import csv

import imageio.v2 as imageio
import matplotlib
import numpy as np
import pytest

from dqn_helpers.curves import moving_average, plot_learning_curves, read_episodes, save_learning_curve
from dqn_helpers.training import EPISODE_FIELDS

matplotlib.use("Agg")


def write_log(path, rows):
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(EPISODE_FIELDS)
        writer.writerows(rows)
    return path


@pytest.fixture
def run_dir(tmp_path):
    """A run folder whose episodes.csv logs 50 games with returns 0, 1, ..., 49."""
    rows = [(400 * (i + 1), i + 1, float(i), 380, 1.0 - i / 100, 0.01 * (i + 1)) for i in range(50)]
    write_log(tmp_path / "episodes.csv", rows)
    return tmp_path


def test_read_episodes_gives_one_float_array_per_column(run_dir):
    """Both the folder and the CSV path work; each column keeps the file's order."""
    for source in (run_dir, run_dir / "episodes.csv"):
        episodes = read_episodes(source)
        assert list(episodes) == list(EPISODE_FIELDS)
        np.testing.assert_array_equal(episodes["return"], np.arange(50.0))
        np.testing.assert_array_equal(episodes["step"], 400 * np.arange(1, 51))


def test_read_episodes_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no episode log at .*train first"):
        read_episodes(tmp_path)
    (tmp_path / "episodes.csv").write_text("step,return\n4,1.0\n")
    with pytest.raises(ValueError, match="is not an episode log: it lacks the columns episode, length, epsilon, hours"):
        read_episodes(tmp_path)


@pytest.mark.parametrize(
    ("values", "window", "expected"),
    [
        ([1.0, 3.0, 5.0, 7.0], 2, [1.0, 2.0, 4.0, 6.0]),
        ([1.0, 3.0, 5.0, 7.0], 10, [1.0, 2.0, 3.0, 4.0]),  # fewer than window values: the mean of all so far
        ([2.0, 4.0, 6.0], 1, [2.0, 4.0, 6.0]),
        ([], 5, []),
    ],
)
def test_moving_average_is_a_trailing_mean(values, window, expected):
    np.testing.assert_allclose(moving_average(np.array(values), window), expected)


def test_moving_average_rejects_a_window_of_zero():
    with pytest.raises(ValueError, match="window must be positive, got 0"):
        moving_average(np.ones(3), 0)


def test_plot_draws_the_smoothed_curve_of_each_run(run_dir):
    """One line per run, through the trailing means, against steps or hours."""
    ax = plot_learning_curves({"a": run_dir, "b": read_episodes(run_dir)}, window=10)
    assert len(ax.get_lines()) == 2
    x, y = ax.get_lines()[0].get_data()
    np.testing.assert_array_equal(x, 400 * np.arange(1, 51))
    np.testing.assert_allclose(y[-1], np.mean(np.arange(40.0, 50.0)))
    assert "agent steps" in ax.get_xlabel()
    ax = plot_learning_curves({"a": run_dir}, x="hours", window=10)
    np.testing.assert_allclose(ax.get_lines()[0].get_data()[0], 0.01 * np.arange(1, 51))
    assert "hours" in ax.get_xlabel()
    ax = plot_learning_curves({"a": run_dir}, x="minutes", window=10)
    np.testing.assert_allclose(ax.get_lines()[0].get_data()[0], 0.6 * np.arange(1, 51))  # 0.01 hours = 0.6 minutes
    assert "minutes" in ax.get_xlabel()
    with pytest.raises(ValueError, match=r"x must be one of \['hours', 'minutes', 'step'\], got 'frames'"):
        plot_learning_curves({"a": run_dir}, x="frames")


def test_save_learning_curve_writes_a_png_with_both_axes(run_dir, tmp_path):
    """A 1200x420 RGB(A) image with content (not a blank canvas)."""
    path = save_learning_curve(run_dir, tmp_path / "out" / "curve.png", label="test run")
    image = imageio.imread(path)
    assert image.shape[:2] == (420, 1200)
    assert image.std() > 10


def test_save_learning_curve_can_count_minutes(run_dir, tmp_path):
    """A short run's curve is drawn against minutes; other units are refused."""
    hours = imageio.imread(save_learning_curve(run_dir, tmp_path / "hours.png"))
    minutes = imageio.imread(save_learning_curve(run_dir, tmp_path / "minutes.png", time="minutes"))
    assert minutes.shape == hours.shape and np.any(minutes != hours)  # other tick labels and title
    with pytest.raises(ValueError, match="time must be 'hours' or 'minutes', got 'days'"):
        save_learning_curve(run_dir, tmp_path / "curve.png", time="days")


def test_save_learning_curve_of_a_run_without_games_raises(tmp_path):
    write_log(tmp_path / "episodes.csv", [])
    with pytest.raises(ValueError, match="no game has been logged in .* yet"):
        save_learning_curve(tmp_path, tmp_path / "curve.png")
