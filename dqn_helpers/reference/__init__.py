"""The reference agent: a DQN trained on Breakout by this project, with its record.

The files beside this module were written by ``make ship`` from the run that
``make reference`` trains (``python -m dqn_helpers train`` with the settings in
``config.json``):

- ``breakout.weights.h5``: the online network's weights, for :func:`dqn_helpers.networks.nature_cnn`.
- ``config.json``: every setting of the training run.
- ``learning_curve.csv`` and ``learning_curve.png``: each full game's score during
  training, against agent steps and wall-clock hours.
- ``evaluation.json``: ``python -m dqn_helpers evaluate`` on the weights, by the
  standard protocol (full games, up to 30 random no-ops, epsilon 0.05).

And a second, short record: notebook 05 run in full, as a student runs it (its own
one-game loop, the ``short`` preset, 160,000 agent steps, bfloat16), on this project's
2-core machine: ``short_run.csv`` (its ``episodes.csv``), ``short_run.png`` (against agent
steps and minutes) and ``short_run_config.json`` (its settings). Notebook 05 draws a
student's curve against it.

Example:
    >>> from dqn_helpers import reference
    >>> q_network = reference.load_network()
    >>> q_network.output_shape
    (None, 4)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG",
    "DIRECTORY",
    "EVALUATION",
    "LEARNING_CURVE_CSV",
    "LEARNING_CURVE_PNG",
    "SHORT_RUN_CONFIG",
    "SHORT_RUN_CSV",
    "SHORT_RUN_PNG",
    "WEIGHTS",
    "config",
    "evaluation",
    "load_network",
    "short_run_config",
]

DIRECTORY = Path(__file__).resolve().parent
WEIGHTS = DIRECTORY / "breakout.weights.h5"
CONFIG = DIRECTORY / "config.json"
LEARNING_CURVE_CSV = DIRECTORY / "learning_curve.csv"
LEARNING_CURVE_PNG = DIRECTORY / "learning_curve.png"
EVALUATION = DIRECTORY / "evaluation.json"
SHORT_RUN_CSV = DIRECTORY / "short_run.csv"
SHORT_RUN_PNG = DIRECTORY / "short_run.png"
SHORT_RUN_CONFIG = DIRECTORY / "short_run_config.json"
NUM_ACTIONS = 4  # Breakout's minimal action set: NOOP, FIRE, RIGHT, LEFT


def load_network():
    """The reference agent's Q-network (a :func:`~dqn_helpers.networks.nature_cnn` with its weights)."""
    from dqn_helpers.networks import load_q_network

    return load_q_network(WEIGHTS, NUM_ACTIONS)


def config() -> dict[str, Any]:
    """The settings the reference agent was trained with (``DQNConfig`` fields)."""
    return json.loads(CONFIG.read_text())


def evaluation() -> dict[str, Any]:
    """The reference agent's evaluation: protocol, mean, median, std, min, max and every game's score."""
    return json.loads(EVALUATION.read_text())


def short_run_config() -> dict[str, Any]:
    """The settings of notebook 05's recorded full run (``DQNConfig`` fields)."""
    return json.loads(SHORT_RUN_CONFIG.read_text())
