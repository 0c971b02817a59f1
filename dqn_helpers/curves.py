"""Learning curves: a run's full-game returns against agent steps and wall-clock hours.

Training logs one row per full game to ``episodes.csv`` (see
:mod:`dqn_helpers.training`). Single games are noisy (one early miss costs a life),
so the curves show a trailing mean over the last ``window`` games on top of the
raw points.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dqn_helpers.training import EPISODE_FIELDS

__all__ = ["moving_average", "plot_learning_curves", "read_episodes", "save_learning_curve"]

_X_LABELS = {
    "step": "agent steps (x4 frames)",
    "hours": "wall-clock hours of training",
    "minutes": "wall-clock minutes of training",
}


def read_episodes(path: str | Path) -> dict[str, np.ndarray]:
    """Read a run's ``episodes.csv`` into one array per column.

    Args:
        path: The CSV file, or the run folder that holds it.

    Returns:
        ``{"step": ..., "episode": ..., "return": ..., "length": ..., "epsilon": ..., "hours": ...}``,
        float64 arrays in the file's order.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the file lacks one of those columns.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "episodes.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no episode log at {path}: train first (it writes run_dir/episodes.csv)")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [name for name in EPISODE_FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not an episode log: it lacks the columns {', '.join(missing)}")
        rows = list(reader)
    return {name: np.array([float(row[name]) for row in rows]) for name in EPISODE_FIELDS}


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (fewer at the start); same length as ``values``.

    Example:
        >>> moving_average(np.array([1.0, 3.0, 5.0, 7.0]), window=2)
        array([1., 2., 4., 6.])
    """
    if window <= 0:
        raise ValueError(f"window must be positive, got {window}")
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values]))
    counts = np.minimum(np.arange(1, values.size + 1), window)
    return (sums[1:] - sums[np.arange(1, values.size + 1) - counts]) / counts


def plot_learning_curves(
    runs: Mapping[str, str | Path | dict[str, np.ndarray]],
    *,
    x: str = "step",
    window: int = 100,
    ax=None,
):
    """Plot full-game returns of one or more runs on shared axes.

    Args:
        runs: Label -> run folder, ``episodes.csv`` path, or what :func:`read_episodes` returned.
        x: ``"step"`` (agent steps), ``"hours"`` or ``"minutes"`` (wall-clock time).
        window: Games in the trailing mean.
        ax: Matplotlib axes to draw on (a new figure's if None).

    Returns:
        The axes.

    Raises:
        ValueError: For another ``x``.
    """
    import matplotlib.pyplot as plt

    if x not in _X_LABELS:
        raise ValueError(f"x must be one of {sorted(_X_LABELS)}, got {x!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for label, run in runs.items():
        episodes = run if isinstance(run, dict) else read_episodes(run)
        xs = episodes["hours"] * 60 if x == "minutes" else episodes[x]
        (line,) = ax.plot(xs, moving_average(episodes["return"], window), label=f"{label} (mean of {window} games)")
        ax.scatter(xs, episodes["return"], s=2, alpha=0.15, color=line.get_color())
    if x == "step":
        from matplotlib.ticker import EngFormatter

        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 250k, 1M
    ax.set_xlabel(_X_LABELS[x])
    ax.set_ylabel("score of a full game")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return ax


def save_learning_curve(
    run: str | Path, path: str | Path, *, label: str = "DQN", window: int = 100, time: str = "hours"
) -> Path:
    """Draw a run's curve against agent steps and against wall-clock time, side by side, into an image file.

    Args:
        run: Run folder or ``episodes.csv`` path.
        path: Image file to write (``.png``).
        label: The run's name in the legend.
        window: Games in the trailing mean.
        time: ``"hours"`` or ``"minutes"``, the unit of the right-hand plot.

    Returns:
        The path written.

    Raises:
        ValueError: If the run has not logged a game yet.
    """
    from matplotlib.figure import Figure  # not pyplot: no window, and a notebook's backend is left alone

    if time not in ("hours", "minutes"):
        raise ValueError(f"time must be 'hours' or 'minutes', got {time!r}")
    episodes = read_episodes(run)
    if episodes["return"].size == 0:
        raise ValueError(f"no game has been logged in {run} yet: nothing to plot")
    figure = Figure(figsize=(12, 4.2))
    axes = figure.subplots(1, 2, sharey=True)
    for ax, x in zip(axes, ("step", time)):
        plot_learning_curves({label: episodes}, x=x, window=window, ax=ax)
    duration = f"{episodes['hours'][-1]:.2f} hours" if time == "hours" else f"{episodes['hours'][-1] * 60:.1f} minutes"
    figure.suptitle(
        f"{label}: {int(episodes['step'][-1]):,} agent steps, {duration}, {episodes['return'].size:,} games"
    )
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
