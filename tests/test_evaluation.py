"""Tests of dqn_helpers.evaluation: the standard Atari evaluation protocol, on real Breakout."""

from __future__ import annotations

import inspect
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from dqn_helpers.envs import make_env
from dqn_helpers.evaluation import (
    BREAKOUT_GAP_ROWS,
    EVAL_EPSILON,
    EVAL_MAX_EPISODE_FRAMES,
    GameProgress,
    StepRecord,
    as_policy,
    ball_above_the_bricks,
    evaluate,
    play_episode,
    summarize,
)
from dqn_helpers.networks import nature_cnn
from dqn_helpers.policies import QPolicy, RandomPolicy

DATA = Path(__file__).parent / "data"
SHORT = 400  # emulator frames: about 100 agent steps per evaluation game


class EpsilonRecorder:
    """A real policy (the random agent) that also notes the epsilon it is asked to act with."""

    def __init__(self, num_actions: int = 4):
        self.num_actions = num_actions
        self.random = RandomPolicy(num_actions)
        self.epsilons: list[float] = []

    def __call__(self, state, rng, epsilon=0.0):
        self.epsilons.append(epsilon)
        return self.random(state, rng, epsilon)


@pytest.fixture(scope="module")
def full_game():
    """Every step of one full (uncut) game of the random agent, on the evaluation environment."""
    # Seed 3 is a game in which the random agent scores after losing its first life.
    env = make_env("Breakout", training=False)
    records = list(play_episode(env, RandomPolicy(4), np.random.default_rng(3), epsilon=1.0, seed=3))
    env.close()
    return records


@pytest.fixture(scope="module")
def q_network():
    """An untrained Nature CNN, to evaluate as a Keras model."""
    return nature_cnn(4)


# --- play_episode ------------------------------------------------------------------------


def test_play_episode_yields_step_records(full_game):
    """Each step is a StepRecord with the uint8 state acted on, an int action and a float reward."""
    first = full_game[0]
    assert isinstance(first, StepRecord)
    assert first.state.shape == (4, 84, 84) and first.state.dtype == np.uint8
    assert all(type(record.action) is int and 0 <= record.action < 4 for record in full_game)
    assert all(type(record.reward) is float for record in full_game)


def test_an_evaluation_episode_is_a_full_game_across_all_lives(full_game):
    """Losing a life does not end the episode: it ends once, terminated, when the lives reach 0."""
    lives = [record.info["lives"] for record in full_game]
    assert lives[0] == 5
    assert all(a >= b for a, b in zip(lives, lives[1:]))  # never regained
    assert set(lives) == {5, 4, 3, 2, 1, 0}  # every life was lost inside this one episode
    assert [record.terminated for record in full_game] == [False] * (len(full_game) - 1) + [True]
    assert lives[-1] == 0
    assert not any(record.truncated for record in full_game)


def test_episode_score_is_the_true_game_score(full_game):
    """The rewards add up to the game's own score, which RecordEpisodeStatistics reports at the end."""
    assert sum(record.reward for record in full_game) == full_game[-1].info["episode"]["r"]
    assert all(record.reward >= 0 for record in full_game)
    # Points were scored after the first life was lost: a per-life episode would miss them.
    assert sum(record.reward for record in full_game if record.info["lives"] < 5) > 0


def test_states_follow_each_other(full_game):
    """Each record's state is the stack that followed the previous action (newest frame shifts in)."""
    for previous, current in zip(full_game[:20], full_game[1:21]):
        np.testing.assert_array_equal(current.state[:3], previous.state[1:])


@pytest.mark.parametrize("cap", [200, 400])
def test_max_episode_frames_truncates_at_cap_over_four_steps(cap):
    """A frame cap cuts the game at that emulator frame: (cap - 4) / 4 agent steps after the FIRE step."""
    env = make_env("Breakout", training=False, max_episode_frames=cap, noop_max=0)
    records = list(play_episode(env, RandomPolicy(4), np.random.default_rng(0), epsilon=1.0, seed=0))
    env.close()
    # No no-ops: the reset's FIRE takes frames 1-4, then each agent step 4 frames.
    assert len(records) == (cap - 4) // 4
    assert records[-1].truncated and not records[-1].terminated
    assert not any(record.truncated for record in records[:-1])
    assert records[-1].info["episode_frame_number"] == cap


def test_play_episode_seed_makes_it_reproducible():
    """The same reset seed and exploration seed replay the same game."""
    env = make_env("Breakout", training=False, max_episode_frames=SHORT)
    runs = [
        [
            (r.action, r.reward)
            for r in play_episode(env, RandomPolicy(4), np.random.default_rng(5), epsilon=1.0, seed=3)
        ]
        for _ in range(2)
    ]
    env.close()
    assert runs[0] == runs[1]


# --- evaluate --------------------------------------------------------------------------------


def test_evaluate_returns_one_float_score_per_episode():
    """Scores are float64 of shape (episodes,), non-negative in Breakout."""
    scores = evaluate(RandomPolicy(4), episodes=3, max_episode_frames=SHORT, progress=False)
    assert scores.shape == (3,)
    assert scores.dtype == np.float64
    assert np.all(scores >= 0)


def test_evaluate_is_reproducible_for_a_seed():
    """The same seed gives the same scores, step for step."""
    first = evaluate(RandomPolicy(4), episodes=2, max_episode_frames=SHORT, seed=11, progress=False)
    second = evaluate(RandomPolicy(4), episodes=2, max_episode_frames=SHORT, seed=11, progress=False)
    np.testing.assert_array_equal(first, second)


def test_evaluate_scores_full_games_like_play_episode(full_game):
    """Evaluate's score of one uncut game is the sum of that game's step rewards (all 5 lives)."""
    policy = RandomPolicy(4)
    # evaluate seeds episode 0's reset with seed + 0 and exploration with default_rng(seed);
    # at epsilon 1 the random agent draws the same actions as in the full_game fixture.
    scores = evaluate(policy, episodes=1, epsilon=1.0, seed=3, max_episode_frames=108_000, progress=False)
    assert scores[0] == sum(record.reward for record in full_game)
    assert scores[0] > sum(record.reward for record in full_game if record.info["lives"] == 5)


def test_evaluate_defaults_follow_the_protocol():
    """Epsilon 0.05 and 18,000 frames (5 minutes at 60 Hz = 5 * 60 * 60) unless told otherwise."""
    assert EVAL_EPSILON == 0.05
    assert EVAL_MAX_EPISODE_FRAMES == 5 * 60 * 60
    defaults = inspect.signature(evaluate).parameters
    assert defaults["epsilon"].default == EVAL_EPSILON
    assert defaults["max_episode_frames"].default == EVAL_MAX_EPISODE_FRAMES
    assert defaults["game"].default == "Breakout"


@pytest.mark.parametrize("epsilon", [None, 0.0, 0.3])
def test_evaluate_acts_with_the_given_epsilon(epsilon):
    """Every action is asked for with epsilon 0.05 by default, or the epsilon given."""
    recorder = EpsilonRecorder()
    kwargs = {} if epsilon is None else {"epsilon": epsilon}
    evaluate(recorder, episodes=1, max_episode_frames=200, progress=False, **kwargs)
    assert len(recorder.epsilons) > 10
    assert set(recorder.epsilons) == {0.05 if epsilon is None else epsilon}


def test_evaluate_each_episode_is_cut_at_the_frame_cap():
    """With a 200-frame cap no game lasts more than 200 / 4 = 50 agent steps."""
    recorder = EpsilonRecorder()
    evaluate(recorder, episodes=2, max_episode_frames=200, progress=False)
    # Two games: at least (200 - 4 - 30) / 4 = 41.5 steps each (30 no-op frames at most), at most 50.
    assert 2 * 41 <= len(recorder.epsilons) <= 2 * 50


def test_evaluate_accepts_a_keras_model(q_network):
    """A Keras Q-network is wrapped as a QPolicy and scored like that policy."""
    from_model = evaluate(q_network, episodes=1, max_episode_frames=200, seed=2, progress=False)
    from_policy = evaluate(QPolicy(q_network), episodes=1, max_episode_frames=200, seed=2, progress=False)
    assert from_model.shape == (1,)
    np.testing.assert_array_equal(from_model, from_policy)


def test_as_policy_wraps_models_and_passes_policies_through(q_network):
    """as_policy turns a model into a QPolicy and leaves a policy as it is."""
    wrapped = as_policy(q_network)
    assert isinstance(wrapped, QPolicy) and wrapped.q_network is q_network
    random_policy = RandomPolicy(4)
    assert as_policy(random_policy) is random_policy


@pytest.mark.parametrize("episodes", [0, -2])
def test_evaluate_rejects_non_positive_episodes(episodes):
    """At least one game must be played."""
    with pytest.raises(ValueError, match=f"episodes must be positive, got {episodes}"):
        evaluate(RandomPolicy(4), episodes=episodes, progress=False)


def test_evaluate_without_progress_writes_nothing(capfd):
    """progress=False keeps stdout and stderr empty (a notebook cell stays clean)."""
    evaluate(RandomPolicy(4), episodes=1, max_episode_frames=200, progress=False)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


# --- summarize -------------------------------------------------------------------------------


def test_summarize_hand_made_scores():
    """Scores 3, 1, 4, 1, 5: mean 14 / 5 = 2.8, median 3, population std sqrt(12.8 / 5) = 1.6."""
    # Deviations from 2.8: 0.2, -1.8, 1.2, -1.8, 2.2; squares add to 0.04 + 3.24 + 1.44 + 3.24 + 4.84 = 12.8.
    summary = summarize(np.array([3.0, 1.0, 4.0, 1.0, 5.0]))
    assert summary == pytest.approx({"episodes": 5, "mean": 2.8, "median": 3.0, "std": 1.6, "min": 1.0, "max": 5.0})
    assert type(summary["episodes"]) is int
    assert all(type(summary[key]) is float for key in ("mean", "median", "std", "min", "max"))


@pytest.mark.parametrize(
    ("scores", "median"),
    [([2.0, 8.0], 5.0), ([7.0], 7.0), ([0, 10, 2, 4], 3.0)],  # even counts average the middle two
)
def test_summarize_median(scores, median):
    """The median of lists of scores, including ints."""
    assert summarize(scores)["median"] == median


def test_summarize_single_score_has_zero_spread():
    """One game: mean = min = max, std 0."""
    summary = summarize([12.0])
    assert (summary["mean"], summary["std"], summary["min"], summary["max"], summary["episodes"]) == (
        12.0,
        0.0,
        12.0,
        12.0,
        1,
    )


@pytest.mark.parametrize("empty", [np.array([]), []])
def test_summarize_empty_raises(empty):
    """No scores, no summary."""
    with pytest.raises(ValueError, match="cannot summarize an empty list of scores"):
        summarize(empty)


# --- GameProgress -------------------------------------------------------------------------


def test_game_progress_counts_the_games_another_loop_plays_and_leaves_the_env_open(capsys):
    with make_env("Breakout", training=False, max_episode_frames=SHORT) as env:
        with GameProgress(env, 3, desc="random agent") as counted:
            scores = evaluate_by_hand(counted, games=3)
            assert counted.games == 3
        assert len(scores) == 3
        bar = capsys.readouterr().err.split("\r")[-1]  # tqdm's last redraw of its line
        assert bar.startswith("random agent: 100%") and "3/3" in bar, bar
        state, _ = env.reset(seed=1)  # still open: the next agent plays in it
        assert state.shape == (4, 84, 84)


def test_game_progress_does_not_count_a_lost_life():
    """The evaluation environment goes on after a lost life; only the game's end counts."""
    with make_env("Breakout", training=False) as env:
        counted = GameProgress(env, 1, progress=False)
        counted.reset(seed=3)
        lives, lost, rng = 5, 0, np.random.default_rng(3)
        while True:
            _, _, terminated, truncated, info = counted.step(int(rng.integers(4)))
            lost += info["lives"] < lives
            lives = info["lives"]
            if terminated or truncated:
                break
        counted.close()
    assert lost == 5 and counted.games == 1


def test_game_progress_refuses_a_count_of_no_games():
    with make_env("Breakout", training=False) as env, pytest.raises(ValueError, match="games must be positive, got 0"):
        GameProgress(env, 0)


def evaluate_by_hand(env, games: int) -> list[float]:
    """A student's evaluation loop: it knows nothing of the bar."""
    rng, scores = np.random.default_rng(0), []
    for game in range(games):
        env.reset(seed=game)
        score, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(4)))
            score += reward
            done = terminated or truncated
        scores.append(score)
    return scores


# --- ball_above_the_bricks ----------------------------------------------------------------


def test_the_ball_counts_as_above_the_bricks_only_between_the_top_wall_and_the_bricks():
    """Breakout's real screen in play: the ball below the bricks, then moved into the gap, then onto the top row."""
    with make_env("Breakout", training=False, render_mode="rgb_array") as env:
        env.reset(seed=0)  # FIRE on reset serves the ball
        for _ in range(15):  # let the ball fall towards the paddle
            env.step(0)
        screen = env.render()
    open_field = slice(93, 189)  # below the bricks (rows 57-92), above the paddle (rows 189-192)
    rows, columns = np.nonzero(np.any(screen[open_field] != 0, axis=-1)[:, 8:152])
    rows, columns = rows + open_field.start, columns + 8
    assert rows.size > 0, "the served ball should be in the open field"
    assert not ball_above_the_bricks(screen)
    for top in (BREAKOUT_GAP_ROWS.start, BREAKOUT_GAP_ROWS.stop - np.ptp(rows) - 1):  # touching the wall, the bricks
        lifted = screen.copy()
        lifted[rows, columns] = 0
        lifted[rows - rows.min() + top, columns] = screen[rows, columns]
        assert ball_above_the_bricks(lifted), top
    on_the_top_row = screen.copy()
    on_the_top_row[rows - rows.min() + BREAKOUT_GAP_ROWS.stop, columns] = screen[rows, columns]
    assert not ball_above_the_bricks(on_the_top_row)
    with pytest.raises(ValueError, match=r"expected Breakout's RGB screen of shape \(210, 160, 3\), got \(84, 84\)"):
        ball_above_the_bricks(np.zeros((84, 84), np.uint8))


def test_a_real_tunnel_is_seen():
    """A screen of the reference agent's game (seed 12, agent step 1,334): the ball went through a tunnel."""
    screen = imageio.imread(DATA / "breakout_ball_above_the_bricks.png")
    assert ball_above_the_bricks(screen)
