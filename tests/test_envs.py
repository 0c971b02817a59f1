"""Tests for dqn_helpers.envs, on the real ALE Breakout emulator (a game of random play takes ~0.1 s)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from dqn_helpers.envs import EpisodicLife, FireOnReset, atari_env_id, make_env, make_vector_env

OBS_SHAPE = (4, 84, 84)
START_LIVES = 5
FRAME_SKIP = 4
NOOP, FIRE, RIGHT, LEFT = 0, 1, 2, 3  # Breakout's minimal action set, checked below
BRICK_VALUES = {1.0, 4.0, 7.0}  # blue/green, yellow/orange, red rows

# Breakout RAM cells (seen by stepping the emulator): 72 paddle x, 99 ball x,
# 101 ball y, which is 0 while no ball is in play.
PADDLE_X, BALL_X, BALL_Y = 72, 99, 101
BALL_TO_PADDLE = -10  # ball x minus this offset lines the paddle up under the ball


def tracking_action(env: gym.Env) -> int:
    """A scripted player that follows the ball, good enough to reach the high-value rows."""
    ram = env.unwrapped.ale.getRAM()
    if ram[BALL_Y] == 0:
        return FIRE
    target = int(ram[BALL_X]) + BALL_TO_PADDLE
    paddle = int(ram[PADDLE_X])
    return RIGHT if target > paddle + 2 else LEFT if target < paddle - 2 else NOOP


def lives(env: gym.Env) -> int:
    return env.unwrapped.ale.lives()


def frame_number(env: gym.Env) -> int:
    return env.unwrapped.ale.getEpisodeFrameNumber()


def chain(env: gym.Env) -> list[gym.Wrapper]:
    """The wrappers around the raw emulator, outermost first."""
    found = []
    while isinstance(env, gym.Wrapper):
        found.append(env)
        env = env.env
    return found


def wrappers(env: gym.Env) -> list[type]:
    return [type(wrapper) for wrapper in chain(env)]


@pytest.fixture
def train_env():
    env = make_env("Breakout", training=True)
    yield env
    env.close()


@pytest.fixture
def eval_env():
    env = make_env("Breakout", training=False)
    yield env
    env.close()


# --- names and arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize("game, env_id", [("Breakout", "ALE/Breakout-v5"), ("Pong", "ALE/Pong-v5")])
def test_atari_env_id(game, env_id):
    """Known games map to their ALE v5 id."""
    assert atari_env_id(game) == env_id


def test_misspelt_game_suggests_the_close_match():
    """'Breakot' is refused with a 'Did you mean' for Breakout and a way to list the games."""
    with pytest.raises(ValueError, match=r"unknown Atari game 'Breakot'\. Did you mean 'Breakout'") as error:
        make_env("Breakot")
    assert "gymnasium.registry" in str(error.value)


def test_unknown_game_without_close_match():
    """A name close to nothing gets no suggestion, only the way to list the games."""
    with pytest.raises(ValueError, match="unknown Atari game 'Qwxzv'") as error:
        atari_env_id("Qwxzv")
    assert "Did you mean" not in str(error.value)
    assert "print([k for k in gymnasium.registry if k.startswith('ALE/')])" in str(error.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sticky_action_probability": 1.5}, r"sticky_action_probability must be in \[0, 1\], got 1.5"),
        ({"sticky_action_probability": -0.1}, r"sticky_action_probability must be in \[0, 1\], got -0.1"),
        ({"noop_max": -1}, "noop_max must be >= 0, got -1"),
        ({"max_episode_frames": 0}, "max_episode_frames must be positive, got 0"),
        ({"max_episode_frames": -4}, "max_episode_frames must be positive, got -4"),
    ],
)
def test_bad_arguments(kwargs, message):
    """Out-of-range arguments raise a ValueError naming the argument and the value."""
    with pytest.raises(ValueError, match=message):
        make_env("Breakout", **kwargs)


@pytest.mark.parametrize("probability", [0.0, 0.25, 1.0])
def test_sticky_action_probability_reaches_ale(probability):
    """The sticky-action probability is the one ALE's emulator uses."""
    env = make_env("Breakout", sticky_action_probability=probability)
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(probability)
    env.close()


def test_sticky_actions_off_by_default(train_env):
    """The default is 0.0 (Nature DQN), not ALE v5's own default of 0.25."""
    assert train_env.unwrapped.ale.getFloat("repeat_action_probability") == 0.0


# --- observations ----------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_observations_are_uint8_stacks_in_the_space(training):
    """Observations are (4, 84, 84) uint8 and belong to the observation space; Breakout has 4 actions."""
    env = make_env("Breakout", training=training)
    assert env.unwrapped.get_action_meanings() == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    assert env.action_space.n == 4
    observation, _ = env.reset(seed=0)
    assert observation.shape == OBS_SHAPE and observation.dtype == np.uint8
    assert observation in env.observation_space
    observation, *_ = env.step(FIRE)
    assert observation.dtype == np.uint8 and observation in env.observation_space
    env.close()


@pytest.mark.parametrize("training", [True, False])
def test_stack_is_zero_padded_after_every_reset(training):
    """After a reset only the newest frame is real; a second reset keeps no frame of the first episode."""
    env = make_env("Breakout", training=training)
    observation, _ = env.reset(seed=0)
    # FrameStackObservation is the outermost wrapper: FireOnReset's FIRE step happens inside
    # reset and only its final frame enters the stack, so the stack is [0, 0, 0, f0].
    assert not observation[:3].any()
    assert observation[3].any()
    for _ in range(10):
        observation, *_ = env.step(NOOP)
    assert all(frame.any() for frame in observation)  # the stack is now all real frames
    observation, _ = env.reset(seed=1)
    assert not observation[:3].any()
    assert observation[3].any()
    env.close()


def test_stack_shifts_one_frame_per_step(eval_env):
    """Each step drops the oldest frame and appends one new frame."""
    previous, _ = eval_env.reset(seed=0)
    for action in [FIRE, RIGHT, RIGHT, LEFT, NOOP, NOOP]:
        observation, *_ = eval_env.step(action)
        np.testing.assert_array_equal(observation[:3], previous[1:])
        previous = observation


def test_seeded_resets_are_reproducible():
    """Two environments reset with the same seed give the same observations and rewards under the same actions."""
    first, second = make_env("Breakout"), make_env("Breakout")
    actions = np.random.default_rng(0).integers(4, size=60)
    for seed in (3,):
        obs_a, _ = first.reset(seed=seed)
        obs_b, _ = second.reset(seed=seed)
        np.testing.assert_array_equal(obs_a, obs_b)
        for action in actions:
            step_a, step_b = first.step(int(action)), second.step(int(action))
            np.testing.assert_array_equal(step_a[0], step_b[0])
            assert step_a[1:4] == step_b[1:4]
            if step_a[2] or step_a[3]:
                break
    first.close()
    second.close()


def test_noop_max_zero_starts_after_fire_only():
    """With noop_max=0 a reset uses exactly one agent step of emulator frames: the FIRE press."""
    env = make_env("Breakout", training=False, noop_max=0)
    for seed in (0, None):
        env.reset(seed=seed)
        assert frame_number(env) == FRAME_SKIP
    env.close()


def test_random_noops_after_reset():
    """noop_max=30 adds 1 to 30 single-frame no-ops before FIRE, chosen from the seed."""
    noop_max = 30
    env = make_env("Breakout", training=False, noop_max=noop_max)
    starts = set()
    for seed in range(5):
        env.reset(seed=seed)
        starts.add(frame_number(env))
    # AtariPreprocessing draws 1..noop_max no-ops on the frameskip-1 emulator, then FIRE takes 4 frames.
    assert all(1 + FRAME_SKIP <= start <= noop_max + FRAME_SKIP for start in starts)
    assert len(starts) > 1  # the start really is random across seeds
    env.close()


def test_fire_on_reset_puts_the_ball_in_play(eval_env):
    """After a reset the ball moves without pressing FIRE: doing nothing loses a life within 40 steps."""
    eval_env.reset(seed=0)
    for _ in range(40):
        _, _, terminated, _, _ = eval_env.step(NOOP)
        if lives(eval_env) < START_LIVES:
            break
    assert lives(eval_env) == START_LIVES - 1
    assert not terminated  # evaluation plays on after a lost life


def test_fire_on_reset_needs_a_fire_action():
    """FireOnReset refuses a game without FIRE; make_env then leaves it out."""
    raw = gym.make("ALE/Skiing-v5")
    with pytest.raises(ValueError, match="FireOnReset needs a game with a FIRE action"):
        FireOnReset(raw)
    raw.close()
    env = make_env("Skiing")
    assert FireOnReset not in wrappers(env)
    observation, _ = env.reset(seed=0)
    assert observation.shape == OBS_SHAPE
    env.close()


def test_render_rgb_array():
    """render_mode='rgb_array' gives full-colour 210x160 screens."""
    env = make_env("Breakout", training=False, render_mode="rgb_array")
    env.reset(seed=0)
    screen = env.render()
    assert screen.shape == (210, 160, 3) and screen.dtype == np.uint8
    env.close()


# --- training variant: lives and clipping ------------------------------------------------------------


def test_variants_wrappers():
    """Only the training variant ends episodes on a lost life and clips rewards."""
    training, evaluation = wrappers(make_env(training=True)), wrappers(make_env(training=False))
    assert EpisodicLife in training and gym.wrappers.TransformReward in training
    assert EpisodicLife not in evaluation and gym.wrappers.TransformReward not in evaluation
    assert FireOnReset in training and FireOnReset in evaluation


@pytest.mark.parametrize("reward, clipped", [(7.0, 1.0), (4.0, 1.0), (1.0, 1.0), (0.0, 0.0), (-3.0, -1.0)])
def test_training_reward_clipping(train_env, reward, clipped):
    """The training variant's reward transform keeps only the sign."""
    (clipper,) = [w for w in chain(train_env) if isinstance(w, gym.wrappers.TransformReward)]
    assert clipper.reward(reward) == clipped


def test_lost_life_ends_a_training_episode_but_not_the_game(train_env):
    """A lost life gives terminated=True; reset continues the same game with one life fewer."""
    rng = np.random.default_rng(0)
    train_env.reset(seed=0)
    assert lives(train_env) == START_LIVES
    while True:
        _, _, terminated, truncated, info = train_env.step(int(rng.integers(4)))
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert lives(train_env) == START_LIVES - 1
    assert "episode" not in info  # the game is not over
    frames_so_far = frame_number(train_env)
    observation, _ = train_env.reset()
    assert lives(train_env) == START_LIVES - 1  # no new game
    # the game went on: one NOOP step and one FIRE step, 4 frames each
    assert frame_number(train_env) == frames_so_far + 2 * FRAME_SKIP
    assert not observation[:3].any()  # yet the stack starts afresh
    train_env.reset(seed=0)  # a seeded reset always starts a new game
    assert lives(train_env) == START_LIVES


def test_training_game_reports_true_score_only_at_game_over(train_env):
    """Training rewards are clipped to {0, 1}; info['episode'] comes once, at game over, with the unclipped score."""
    train_env.reset(seed=0)
    clipped_total, life_episodes = 0.0, 0
    for _ in range(5_000):
        _, reward, terminated, truncated, info = train_env.step(tracking_action(train_env))
        assert reward in (0.0, 1.0)
        clipped_total += reward
        if "episode" in info:
            break
        if terminated or truncated:
            assert lives(train_env) > 0
            life_episodes += 1
            train_env.reset()
    else:
        pytest.fail("the game never ended")
    assert terminated and lives(train_env) == 0
    assert life_episodes == START_LIVES - 1  # each earlier life ended a training episode without 'episode'
    # The scripted player reaches the 4- and 7-point rows, so the true score exceeds the clipped sum.
    score = info["episode"]["r"]
    assert score > clipped_total


def test_evaluation_plays_full_games_with_raw_scores(eval_env):
    """Evaluation ends only at game over, with unclipped brick values, and info['episode'] equals their sum."""
    eval_env.reset(seed=0)
    rewards, lives_seen = [], []
    for _ in range(5_000):
        _, reward, terminated, truncated, info = eval_env.step(tracking_action(eval_env))
        rewards.append(reward)
        lives_seen.append(lives(eval_env))
        if terminated or truncated:
            break
        assert "episode" not in info
    assert terminated and not truncated and lives(eval_env) == 0
    assert sorted(set(lives_seen)) == [0, 1, 2, 3, 4, 5]  # all lives played in one episode
    assert set(rewards) - {0.0} <= BRICK_VALUES
    assert max(rewards) > 1.0  # unclipped
    assert info["episode"]["r"] == sum(rewards)


# --- truncation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "training, noop_max, max_frames",
    [(False, 0, 400), (False, 30, 400), (True, 0, 80), (True, 30, 80)],
)
def test_max_episode_frames_truncates(training, noop_max, max_frames):
    """The game is truncated when its emulator frames reach max_episode_frames, 4 frames per agent step."""
    env = make_env("Breakout", training=training, noop_max=noop_max, max_episode_frames=max_frames)
    env.reset(seed=0)
    start = frame_number(env)  # no-ops and the FIRE press count too
    expected_steps = math.ceil((max_frames - start) / FRAME_SKIP)  # e.g. (400 - 4) / 4 = 99 with noop_max=0
    for step in range(1, 1_000):  # noqa: B007  (the step the game ended on is checked below)
        # NOOP only: the evaluation game stalls after its first lost life; training (80 frames) ends first
        _, _, terminated, truncated, info = env.step(NOOP)
        if terminated or truncated:
            break
    assert (step, terminated, truncated) == (expected_steps, False, True)
    assert frame_number(env) == max_frames
    assert "episode" in info  # a truncated game is over too
    env.reset()
    assert lives(env) == START_LIVES  # even in training, truncation starts a new game
    assert frame_number(env) <= noop_max + FRAME_SKIP
    env.close()


def test_a_game_ended_by_the_no_op_in_reset_reports_its_statistics():
    """A time limit reached by EpisodicLife's no-op in reset passes the game's info['episode'] on."""
    # noop_max=0: after reset the frame counter is 4 (the FIRE press). 24 NOOP steps (96 frames)
    # lose the first life at frame 100; the follow-up no-op in reset reaches the 104-frame cap.
    env = make_env("Breakout", training=True, max_episode_frames=104, noop_max=0)
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, truncated, info = env.step(0)
        assert "episode" not in info and not truncated
    _, info = env.reset()
    assert "episode" in info, "the game the reset ended was not reported"
    assert info["lives"] == 5  # a new game has started


# --- make_vector_env: several games stepped in a background thread ---------------------------------


@pytest.fixture
def vector_env():
    envs = make_vector_env("Breakout", 2)
    yield envs
    envs.close()


def test_vector_env_matches_single_environments(vector_env):
    """Each sub-environment is make_env(training=True): same spaces, and the same frames for the same seed and actions."""
    observations, _ = vector_env.reset(seed=5)
    assert observations.shape == (2, 4, 84, 84) and observations.dtype == np.uint8
    single = make_env("Breakout", training=True)
    expected, _ = single.reset(seed=6)  # the vector env seeds environment i with seed + i
    np.testing.assert_array_equal(observations[1], expected)
    for action in [1, 2, 3, 0, 2]:
        observations, *_ = vector_env.step(np.array([0, action]))
        expected, *_ = single.step(action)
        np.testing.assert_array_equal(observations[1], expected)
    single.close()


def test_vector_env_step_async_then_wait(vector_env):
    """step_async returns at once; step_wait returns the five arrays of a vector step."""
    vector_env.reset(seed=0)
    vector_env.step_async(np.array([1, 1]))
    observations, rewards, terminated, truncated, info = vector_env.step_wait()
    assert observations.shape == (2, 4, 84, 84)
    assert rewards.shape == terminated.shape == truncated.shape == (2,)
    assert isinstance(info, dict)


def test_vector_env_refuses_out_of_order_calls(vector_env):
    """Two step_async without step_wait, or step_wait without step_async, is a RuntimeError that says what to do."""
    vector_env.reset(seed=0)
    with pytest.raises(RuntimeError, match="step_wait was called without step_async"):
        vector_env.step_wait()
    vector_env.step_async(np.array([0, 0]))
    with pytest.raises(
        RuntimeError, match="step_async was called twice: collect the previous step with step_wait first"
    ):
        vector_env.step_async(np.array([0, 0]))
    vector_env.step_wait()


def test_vector_env_returns_the_final_observation_of_a_lost_life(vector_env):
    """When a life is lost the episode resets in the same step; info["final_obs"] keeps the last stack."""
    observations, _ = vector_env.reset(seed=0)
    for _ in range(2_000):  # a paddle that never moves loses a life within a few hundred steps
        next_observations, _, terminated, truncated, info = vector_env.step(np.array([0, 0]))
        if terminated.any():
            break
        observations = next_observations
    else:
        pytest.fail("no life was lost in 2,000 steps")
    done = np.flatnonzero(terminated)
    assert info["_final_obs"][done].all()
    for i in done:
        final = info["final_obs"][i]
        np.testing.assert_array_equal(final[:3], observations[i][1:])  # the last stack continues the previous one
        assert not next_observations[i][:3].any()  # while the returned one starts afresh, zero-padded


@pytest.mark.parametrize(
    ("game", "num_envs", "message"),
    [("Breakout", 0, "num_envs must be at least 1, got 0"), ("Breakoutt", 2, "unknown Atari game 'Breakoutt'")],
)
def test_make_vector_env_rejects_bad_arguments(game, num_envs, message):
    """A bad count or game fails before any environment is built, with a clear message."""
    with pytest.raises(ValueError, match=message):
        make_vector_env(game, num_envs)
