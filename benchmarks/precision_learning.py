"""Does bfloat16 learn as well as float32? The same training run in both precisions, side by side.

Trains ``--steps`` agent steps of the ``short`` preset (``python -m dqn_helpers train
--preset short``) with the same seed, once in each precision, one after the other
(never at once: they would share the cores), each in ``--out/<precision>``; a run
that was interrupted resumes there, and a finished one is only read. Then prints one
JSON line per precision (the compute path it took, its speed, its games and their
scores, its losses) and one line comparing them, and draws both runs' learning
curves and losses to ``--figure``.

The speed of a path is measured apart, on a quiet machine, by ``train_speed.py``;
the steps per second here are the runs' own, as a student's run would see them.

Usage:
    python benchmarks/precision_learning.py
    python benchmarks/precision_learning.py --steps 100000 --seed 1 --out runs/precision
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from dqn_helpers.curves import moving_average, read_episodes

PRECISIONS = ("bfloat16", "float32")
WINDOW = 10_000  # agent steps per row of the per-interval means


def train(precision: str, steps: int, seed: int, run_dir: Path) -> None:
    """Train (or resume, or find finished) one run of the short preset in ``precision``."""
    command = [
        sys.executable,
        "-m",
        "dqn_helpers",
        "train",
        "--preset",
        "short",
        "--total-steps",
        str(steps),
        "--seed",
        str(seed),
        "--precision",
        precision,
        "--run-dir",
        str(run_dir),
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def read_losses(run_dir: Path) -> dict[str, np.ndarray]:
    """A run's ``losses.csv``: step, loss, mean_q, steps_per_s, as float64 arrays."""
    with open(run_dir / "losses.csv") as file:
        rows = list(csv.DictReader(file))
    return {name: np.array([float(row[name]) for row in rows]) for name in ("step", "loss", "mean_q", "steps_per_s")}


def summarize(precision: str, run_dir: Path, steps: int) -> dict[str, Any]:
    """What one run reached: its compute path, speed, scores per interval and at the end, its losses."""
    config = json.loads((run_dir / "config.json").read_text())
    games, losses = read_episodes(run_dir), read_losses(run_dir)
    returns = games["return"]
    intervals = range(0, steps, WINDOW)
    return {
        "precision": precision,
        "compute": config.get("compute"),
        "seed": config["seed"],
        "agent_steps": steps,
        "training_minutes": round(float(games["hours"][-1]) * 60, 1),
        "median_steps_per_s": round(float(np.median(losses["steps_per_s"])), 1),
        "games": int(returns.size),
        "first_50_mean": round(float(returns[:50].mean()), 2),
        "last_50_mean": round(float(returns[-50:].mean()), 2),
        "mean_per_10k_steps": [
            round(float(returns[(games["step"] > start) & (games["step"] <= start + WINDOW)].mean()), 2)
            for start in intervals
        ],
        "mean_loss_per_10k_steps": [
            round(float(losses["loss"][(losses["step"] > start) & (losses["step"] <= start + WINDOW)].mean()), 4)
            if ((losses["step"] > start) & (losses["step"] <= start + WINDOW)).any()
            else None
            for start in intervals
        ],
        "final_mean_q": round(float(losses["mean_q"][-1]), 3),
    }


def draw(runs: dict[str, Path], path: Path) -> None:
    """Both runs' scores (mean of the last 50 games) and losses against agent steps, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (scores, losses) = plt.subplots(1, 2, figsize=(11, 4))
    for precision, run_dir in runs.items():
        games, logged = read_episodes(run_dir), read_losses(run_dir)
        scores.plot(games["step"], moving_average(games["return"], 50), label=precision)
        losses.plot(logged["step"], moving_average(logged["loss"], 10), label=precision)
    scores.set(xlabel="agent steps", ylabel="score per game (mean of the last 50)", title="Learning curve")
    losses.set(xlabel="agent steps", ylabel="Huber loss (mean of the last 10 logged)", title="Loss", yscale="log")
    for ax in (scores, losses):
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def main() -> None:
    """Train in both precisions, print the summaries as JSON, draw the figure."""
    from dqn_helpers.learner import cpu_has_native_bfloat16

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="agent steps per run")
    parser.add_argument("--seed", type=int, default=1, help="seed of both runs")
    parser.add_argument("--out", type=Path, default=Path("runs/precision"), help="folder of the two runs")
    parser.add_argument(
        "--figure", type=Path, default=Path("docs/precision_learning.png"), help="where to draw the two runs"
    )
    args = parser.parse_args()
    if args.steps <= 0:
        parser.error(f"--steps must be positive, got {args.steps}")
    runs = {precision: args.out / precision for precision in PRECISIONS}
    for precision, run_dir in runs.items():
        train(precision, args.steps, args.seed, run_dir)
    summaries = [summarize(precision, run_dir, args.steps) for precision, run_dir in runs.items()]
    for summary in summaries:
        print(json.dumps(summary), flush=True)
    bf16, f32 = summaries
    print(
        json.dumps(
            {
                "cpu_native_bfloat16": cpu_has_native_bfloat16(),
                "last_50_difference_bf16_minus_f32": round(bf16["last_50_mean"] - f32["last_50_mean"], 2),
                "speedup_bf16_over_f32": round(bf16["median_steps_per_s"] / f32["median_steps_per_s"], 2),
                "figure": str(args.figure),
            }
        )
    )
    draw(runs, args.figure)


if __name__ == "__main__":
    main()
