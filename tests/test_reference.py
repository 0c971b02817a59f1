"""Tests of the reference agent shipped in dqn_helpers/reference: files, record, and real play."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dqn_helpers import reference
from dqn_helpers.__main__ import build_parser, config_from_args, main
from dqn_helpers.curves import read_episodes
from dqn_helpers.envs import make_env
from dqn_helpers.evaluation import EVAL_EPSILON, as_policy, ball_above_the_bricks, evaluate, play_episode, summarize
from dqn_helpers.networks import nature_cnn
from dqn_helpers.policies import QPolicy, RandomPolicy
from dqn_helpers.training import FIXED_CHOICES, DQNConfig

REPO = Path(__file__).resolve().parents[1]
SHORT_GAME_FRAMES = 2_000  # emulator frames per game in the play tests: about 33 seconds of play


@pytest.fixture(scope="module")
def q_network():
    return reference.load_network()


def test_the_package_ships_every_file():
    """Weights (at most 10 MB), config, curve (CSV and PNG) and evaluation are all in the package."""
    for path in (
        reference.WEIGHTS,
        reference.CONFIG,
        reference.LEARNING_CURVE_CSV,
        reference.LEARNING_CURVE_PNG,
        reference.EVALUATION,
    ):
        assert path.is_file(), f"{path.name} is missing from dqn_helpers/reference: run `make ship`"
    assert reference.WEIGHTS.stat().st_size <= 10 * 2**20


def test_weights_load_into_the_nature_cnn(q_network):
    """The shipped weights fill every variable of nature_cnn(4) and are trained (not the initial values)."""
    fresh = nature_cnn(reference.NUM_ACTIONS)
    assert [w.shape for w in q_network.get_weights()] == [w.shape for w in fresh.get_weights()]
    assert q_network.count_params() == 1_686_180
    first_kernel = q_network.get_weights()[0]
    assert np.all(np.isfinite(first_kernel)) and not np.allclose(first_kernel, fresh.get_weights()[0])


def life_scores(policy, epsilon: float, lives: int = 5, seed: int = 11) -> np.ndarray:
    """Points scored in the first life of ``lives`` games of real Breakout, each with its own no-op start.

    The training variant of the environment serves the ball after a reset (FIRE), as in
    training, and ends the episode at the first lost life. A greedy agent never learned
    to serve by itself (training serves for it), so greedy play is scored life by life.
    """
    rng = np.random.default_rng(seed)
    with make_env(training=True, max_episode_frames=SHORT_GAME_FRAMES) as env:
        return np.array(
            [
                sum(step.reward for step in play_episode(env, as_policy(policy), rng, epsilon=epsilon, seed=seed + i))
                for i in range(lives)
            ]
        )


@pytest.mark.slow  # full games of real Breakout: about 10 s
def test_greedy_play_on_real_frames_beats_the_random_agent(q_network):
    """Acting greedily, the shipped agent hits far more bricks per life than the random agent."""
    agent, random_agent = (
        life_scores(q_network, epsilon=0.0),
        life_scores(RandomPolicy(reference.NUM_ACTIONS), epsilon=1.0),
    )
    assert agent.mean() > random_agent.mean() + 1.5, (agent, random_agent)


def test_the_shipped_agent_tunnels_within_the_readme_clip(q_network):
    """Seed 11's game, which the README's clip shows: the ball gets above the bricks within the clip's frames."""
    clip = re.search(
        r"record --weights reference --seed 11 --max-episode-frames (\d+)", (REPO / "Makefile").read_text()
    )
    assert clip, "make ship should record seed 11's game for the README's clip"
    policy, rng = QPolicy(q_network), np.random.default_rng(11)  # as record_episode plays it
    with make_env(training=False, max_episode_frames=int(clip.group(1))) as env:
        for _ in play_episode(env, policy, rng, epsilon=EVAL_EPSILON, seed=11):
            if ball_above_the_bricks(env.unwrapped.ale.getScreenRGB()):
                return
    pytest.fail(f"the ball never got above the bricks in the clip's game (seed 11, {clip.group(1)} frames)")


def test_config_is_a_valid_training_config_and_reproduces_make_reference():
    """config.json loads as a DQNConfig, and `make reference` trains with exactly these settings."""
    recorded = reference.config()
    assert recorded.pop("fixed") == FIXED_CHOICES
    recorded.pop("compute", None)  # how the machine computed (runs since the precision setting record it)
    shipped = DQNConfig(**recorded)
    command = subprocess.run(["make", "-n", "reference"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    argv = re.search(r"-m dqn_helpers (train .*)", command.replace("\\\n", " ")).group(1).split()
    made = config_from_args(build_parser().parse_args(argv))
    # The run may have been stopped before the Makefile's total_steps (train resumes with any total).
    assert dataclasses.replace(made, total_steps=shipped.total_steps) == shipped


def test_learning_curve_is_the_run_log():
    """One row per full game, steps in order, ending where the run ended, within the training budget."""
    episodes = read_episodes(reference.LEARNING_CURVE_CSV)
    assert episodes["return"].size > 100
    assert np.all(np.diff(episodes["step"]) >= 0) and np.all(np.diff(episodes["hours"]) >= 0)
    assert episodes["step"][-1] <= reference.config()["total_steps"]
    assert episodes["hours"][-1] <= 3.5
    np.testing.assert_array_equal(episodes["episode"], np.arange(1, episodes["episode"].size + 1))


def test_evaluation_follows_the_standard_protocol_and_matches_its_scores():
    """At least 30 full games at epsilon 0.05 with no-op starts; the summary is that of the listed scores."""
    report = reference.evaluation()
    assert report["protocol"] == {
        "epsilon": EVAL_EPSILON,
        "max_episode_frames": 18_000,
        "noop_max": 30,
        "full_games": True,
        "seed": report["protocol"]["seed"],
    }
    assert len(report["scores"]) >= 30
    assert {key: report[key] for key in summarize(np.array([0.0]))} == summarize(np.array(report["scores"]))


def test_cli_weights_reference_plays_the_shipped_agent(capsys):
    """`--weights reference` evaluates the shipped network: the same scores as evaluate() on load_network()."""
    argv = [
        "evaluate",
        "--weights",
        "reference",
        "--episodes",
        "1",
        "--max-episode-frames",
        "400",
        "--epsilon",
        "0",
        "--no-progress",
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    expected = evaluate(reference.load_network(), episodes=1, epsilon=0.0, max_episode_frames=400, progress=False)
    assert report["scores"] == expected.tolist()


# --- the short run: notebook 05, run in full by the course ------------------------------------


def test_the_short_run_record_ships_with_its_settings():
    """Notebook 05's recorded run: its games (CSV), its curve (PNG) and its settings, which are the notebook's."""
    for path in (reference.SHORT_RUN_CSV, reference.SHORT_RUN_PNG, reference.SHORT_RUN_CONFIG):
        assert path.is_file(), f"{path.name} is missing from dqn_helpers/reference"
    # Notebook 05's run_config cell: DQNConfig.preset("short", num_envs=1) in full mode.
    assert reference.short_run_config() == dataclasses.asdict(DQNConfig.preset("short", num_envs=1))


def test_the_short_run_is_one_run_of_the_notebook_that_learned():
    """One row per full game, in order, within the run's steps and its 20-odd minutes; the last games beat the first."""
    episodes = read_episodes(reference.SHORT_RUN_CSV)
    config = reference.short_run_config()
    assert episodes["return"].size > 100
    assert np.all(np.diff(episodes["step"]) >= 0) and np.all(np.diff(episodes["hours"]) >= 0)
    assert episodes["step"][-1] <= config["total_steps"] and episodes["hours"][-1] < 0.5
    np.testing.assert_array_equal(episodes["episode"], np.arange(1, episodes["episode"].size + 1))
    # A random agent scores about 1.5 in the first games; the record is shipped to show the rise after them.
    assert episodes["return"][-50:].mean() > 3 * episodes["return"][:50].mean()
