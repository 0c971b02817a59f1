"""Tests of dqn_helpers.training: the configuration, the loop, its logs, checkpoints and resuming.

The runs are tiny (a few hundred agent steps) on the real Breakout environment. A
thin wrapper records what the real environment returned at every step, so the logs
and the replay buffer can be compared with what actually happened.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import dqn_helpers.training as training
from dqn_helpers.envs import make_env
from dqn_helpers.learner import DQNLearner
from dqn_helpers.networks import load_q_network
from dqn_helpers.schedules import linear_schedule
from dqn_helpers.training import DQNConfig, TrainSummary, train

TINY = DQNConfig(
    seed=0,
    total_steps=320,
    buffer_size=1_000,
    learning_starts=64,
    train_frequency=4,
    batch_size=32,
    target_update_interval=160,
    epsilon_start=1.0,
    epsilon_end=0.1,
    epsilon_decay_steps=200,
    log_interval=32,
    checkpoint_interval=128,
)


def updates(config: DQNConfig, steps: int) -> int:
    """Gradient steps taken by agent step ``steps``: at every multiple of train_frequency from learning_starts."""
    first = -(-config.learning_starts // config.train_frequency) * config.train_frequency
    return max(0, (steps - first) // config.train_frequency + 1)


class StepLog(gym.Wrapper):
    """Passes everything through, noting what each env.step returned."""

    def __init__(self, env: gym.Env, log: list[dict]):
        super().__init__(env)
        self.log = log

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.log.append(
            {
                "action": int(action),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "lives": info["lives"],
                "episode": info.get("episode"),
            }
        )
        return observation, reward, terminated, truncated, info


def logged_make_env(log: list[dict], **overrides):
    """A make_env for the training module that wraps the real environment in StepLog."""

    def make(*args, **kwargs):
        return StepLog(make_env(*args, **{**kwargs, **overrides}), log)

    return make


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV log."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames), list(reader)


def replay_transitions(run_dir: Path) -> dict[str, np.ndarray]:
    """The checkpointed replay buffer's transitions in order (slots with position 0 start episodes)."""
    with np.load(run_dir / "checkpoint" / "replay.npz") as arrays:
        transition = arrays["positions"] > 0
        return {
            "actions": arrays["actions"][transition],
            "rewards": arrays["rewards"][transition],
            "terminated": arrays["terminated"][transition],
            "positions": arrays["positions"],
            "counters": arrays["counters"],
        }


def restored_learner(run_dir: Path) -> DQNLearner:
    """A learner loaded from the run's checkpoint."""
    learner = DQNLearner(4)
    with np.load(run_dir / "checkpoint" / "learner.npz") as arrays:
        learner.set_state(dict(arrays))
    return learner


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One tiny training run, with every environment step recorded."""
    run_dir = tmp_path_factory.mktemp("base") / "run"
    log: list[dict] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "make_env", logged_make_env(log))
        summary = train(TINY, run_dir, progress=False)
    return summary, run_dir, log


# --- DQNConfig ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"total_steps": 0}, "total_steps must be positive, got 0"),
        ({"buffer_size": -1}, "buffer_size must be positive, got -1"),
        ({"train_frequency": 0}, "train_frequency must be positive"),
        ({"batch_size": 0}, "batch_size must be positive"),
        ({"target_update_interval": 0}, "target_update_interval must be positive"),
        ({"epsilon_decay_steps": 0}, "epsilon_decay_steps must be positive"),
        ({"log_interval": 0}, "log_interval must be positive"),
        ({"checkpoint_interval": -5}, "checkpoint_interval must be positive"),
        ({"learning_starts": 16, "batch_size": 32}, r"learning_starts \(16\) must be at least batch_size \(32\)"),
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\], got 1.5"),
        ({"epsilon_start": -0.1}, r"epsilon_start must be in \[0, 1\]"),
        ({"epsilon_end": 2.0}, r"epsilon_end must be in \[0, 1\]"),
        ({"sticky_action_probability": 1.01}, r"sticky_action_probability must be in \[0, 1\]"),
    ],
)
def test_config_validation(overrides, message):
    """Settings that cannot work raise ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        DQNConfig(**overrides)


def test_learning_starts_may_equal_batch_size():
    """The boundary case is allowed: the buffer holds exactly one batch when training starts."""
    assert DQNConfig(learning_starts=32, batch_size=32).learning_starts == 32


def test_replace_changes_one_field_and_validates():
    """dataclasses.replace gives a new config and re-checks it."""
    config = dataclasses.replace(DQNConfig(), total_steps=1_000)
    assert config.total_steps == 1_000
    assert dataclasses.replace(config, total_steps=DQNConfig().total_steps) == DQNConfig()
    with pytest.raises(ValueError, match="gamma"):
        dataclasses.replace(config, gamma=1.5)


def test_config_is_frozen():
    """Assigning to a field raises: settings change only through replace."""
    config = DQNConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.total_steps = 5


def test_config_survives_json():
    """asdict -> JSON -> DQNConfig gives an equal config (what config.json relies on)."""
    assert DQNConfig(**json.loads(json.dumps(dataclasses.asdict(TINY)))) == TINY


def test_docs_cover_every_field():
    """DQNConfig.docs() has a non-empty description for each field and nothing else."""
    docs = DQNConfig.docs()
    assert list(docs) == [field.name for field in dataclasses.fields(DQNConfig)]
    assert all(isinstance(doc, str) and doc.strip() for doc in docs.values())


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("total_steps", "agent steps"),
        ("buffer_size", "transitions"),
        ("learning_starts", "agent steps"),
        ("train_frequency", "agent steps"),
        ("batch_size", "transitions"),
        ("target_update_interval", "agent steps"),
        ("epsilon_decay_steps", "agent steps"),
        ("log_interval", "agent steps"),
        ("checkpoint_interval", "agent steps"),
    ],
)
def test_docs_of_step_counts_name_their_unit(name, unit):
    """Every count of steps says whether it counts agent steps or transitions (never frames)."""
    assert unit in DQNConfig.docs()[name]


# --- one tiny run ----------------------------------------------------------------------------------


def test_summary_of_a_finished_run(base_run):
    """The summary reports every step, every full game and the final weights."""
    summary, run_dir, log = base_run
    assert isinstance(summary, TrainSummary)
    assert summary.run_dir == run_dir
    assert summary.steps == TINY.total_steps == len(log)
    assert summary.episodes == sum(step["episode"] is not None for step in log) >= 1
    assert summary.weights_path == run_dir / "q_network.weights.h5"
    assert summary.interrupted is False


def test_run_folder_contents(base_run):
    """config.json, the two CSV logs, a complete checkpoint and the final weights; no half checkpoint."""
    _, run_dir, _ = base_run
    for name in ("config.json", "episodes.csv", "losses.csv", "q_network.weights.h5"):
        assert (run_dir / name).is_file(), name
    assert sorted(path.name for path in (run_dir / "checkpoint").iterdir()) == ["learner.npz", "replay.npz", "state.json"]
    assert not (run_dir / "checkpoint.new").exists() and not (run_dir / "checkpoint.old").exists()


def test_config_json_holds_the_settings(base_run):
    """config.json is the run's DQNConfig."""
    _, run_dir, _ = base_run
    assert json.loads((run_dir / "config.json").read_text()) == dataclasses.asdict(TINY)


def test_episodes_csv_logs_full_games(base_run):
    """One row per finished game, at the step it ended, with the true score over all 5 lives."""
    _, run_dir, log = base_run
    header, rows = read_csv(run_dir / "episodes.csv")
    assert header == ["step", "episode", "return", "length", "epsilon", "hours"]
    game_ends = [(index + 1, step) for index, step in enumerate(log) if step["episode"] is not None]
    assert len(rows) == len(game_ends)
    for number, (row, (step_number, step)) in enumerate(zip(rows, game_ends), start=1):
        assert int(row["step"]) == step_number
        assert int(row["episode"]) == number
        assert step["lives"] == 0  # the game ended, not just a life
        assert float(row["return"]) == pytest.approx(float(step["episode"]["r"]))  # unclipped game score
        assert int(row["length"]) == int(step["episode"]["l"])
        assert float(row["hours"]) > 0
    # The first game spans all its lives: 4 lost lives and the game over, each terminated for learning.
    assert sum(step["terminated"] for step in log[: game_ends[0][0]]) == 5


def test_episode_epsilon_decays_per_agent_step(base_run):
    """epsilon in episodes.csv is the schedule at the agent step of the game's last action."""
    _, run_dir, _ = base_run
    _, rows = read_csv(run_dir / "episodes.csv")
    for row in rows:
        step = int(row["step"])
        # The action that ended the game was chosen at 0-based agent step step - 1.
        expected = linear_schedule(TINY.epsilon_start, TINY.epsilon_end, TINY.epsilon_decay_steps, step - 1)
        assert float(row["epsilon"]) == pytest.approx(expected, rel=1e-5)
    assert TINY.epsilon_end < float(rows[0]["epsilon"]) < TINY.epsilon_start  # the first game ends mid-decay


def test_losses_csv_starts_at_learning_starts(base_run):
    """No update before learning_starts: loss rows every log_interval from step 64 on."""
    _, run_dir, _ = base_run
    header, rows = read_csv(run_dir / "losses.csv")
    assert header == ["step", "loss", "mean_q", "steps_per_s"]
    # The first update is at step 64 (a multiple of train_frequency 4), logged at step 64
    # (a multiple of log_interval 32); then one row every 32 steps up to 320.
    assert [int(row["step"]) for row in rows] == list(range(64, 321, 32))
    assert all(np.isfinite(float(row["loss"])) and float(row["loss"]) >= 0 for row in rows)
    assert all(float(row["steps_per_s"]) > 0 for row in rows)


def test_checkpoint_counts_steps_games_and_updates(base_run):
    """state.json has the step, games and rng; the optimizer took exactly one update per 4 steps from 64."""
    summary, run_dir, _ = base_run
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["step"] == 320
    assert state["episodes"] == summary.episodes
    assert state["rng"]["bit_generator"] == "PCG64"
    # Updates at steps 64, 68, ..., 320: (320 - 64) / 4 + 1 = 65.
    assert int(restored_learner(run_dir).optimizer.iterations.numpy()) == updates(TINY, 320) == 65


def test_final_weights_are_the_online_network(base_run):
    """q_network.weights.h5 loads into a network that equals the checkpoint's online network."""
    _, run_dir, _ = base_run
    loaded = load_q_network(run_dir / "q_network.weights.h5", 4)
    states = np.random.default_rng(0).integers(0, 256, size=(2, 4, 84, 84), dtype=np.uint8)
    np.testing.assert_array_equal(loaded(states).numpy(), restored_learner(run_dir).online_network(states).numpy())


def test_target_is_synced_after_the_last_update_of_an_interval(base_run):
    """Step 320 is a multiple of target_update_interval 160: its sync follows its update, so target = online."""
    _, run_dir, _ = base_run
    learner = restored_learner(run_dir)
    for target, online in zip(learner.target_network.get_weights(), learner.online_network.get_weights()):
        np.testing.assert_array_equal(target, online)


def test_replay_buffer_holds_exactly_what_happened(base_run):
    """Every step is stored with its action, clipped reward and terminated flag (a lost life)."""
    _, run_dir, log = base_run
    stored = replay_transitions(run_dir)
    assert stored["counters"][1] == len(log) == 320
    np.testing.assert_array_equal(stored["actions"], [step["action"] for step in log])
    np.testing.assert_array_equal(stored["rewards"], [step["reward"] for step in log])
    np.testing.assert_array_equal(stored["terminated"], [step["terminated"] for step in log])
    assert set(np.unique(stored["rewards"])) <= {-1.0, 0.0, 1.0}


def test_truncated_steps_are_not_stored_as_terminated(tmp_path, monkeypatch):
    """A time-limit cut ends the episode in the buffer but leaves terminated False (it bootstraps)."""
    log: list[dict] = []
    # 160 emulator frames per game: at most 40 agent steps, while a random agent needs about 120
    # to lose its 5 lives; so at least 160 / 40 - 1 = 3 games of a 160-step run end by the cap.
    monkeypatch.setattr(training, "make_env", logged_make_env(log, max_episode_frames=160))
    config = dataclasses.replace(TINY, total_steps=160, buffer_size=500, batch_size=16, checkpoint_interval=10_000)
    train(config, tmp_path / "run", progress=False)
    stored = replay_transitions(tmp_path / "run")
    cut = [i for i, step in enumerate(log) if step["truncated"] and not step["terminated"]]
    assert len(cut) >= 3
    np.testing.assert_array_equal(stored["terminated"], [step["terminated"] for step in log])
    assert not stored["terminated"][cut].any()
    # Each cut step is the last transition of its episode in the buffer (the next slot starts anew).
    transition_slots = np.flatnonzero(stored["positions"] > 0)
    for index in cut:
        slot = transition_slots[index]
        assert stored["positions"][slot + 1] == 0


# --- resuming ---------------------------------------------------------------------------------------


def test_resume_continues_from_the_checkpoint(base_run, tmp_path):
    """Calling train again with more total_steps continues at step 320 with its buffer and optimizer."""
    _, base_dir, _ = base_run
    run_dir = tmp_path / "run"
    shutil.copytree(base_dir, run_dir)
    _, base_rows = read_csv(base_dir / "episodes.csv")
    longer = dataclasses.replace(TINY, total_steps=448)
    summary = train(longer, run_dir, progress=False)
    assert summary.steps == 448 and not summary.interrupted
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["step"] == 448
    assert json.loads((run_dir / "config.json").read_text())["total_steps"] == 448
    _, rows = read_csv(run_dir / "episodes.csv")
    assert rows[: len(base_rows)] == base_rows  # the earlier games are kept
    steps = [int(row["step"]) for row in rows]
    assert steps == sorted(set(steps))  # increasing, no duplicates
    assert [int(row["episode"]) for row in rows] == list(range(1, len(rows) + 1))
    assert summary.episodes == len(rows)
    _, loss_rows = read_csv(run_dir / "losses.csv")
    assert [int(row["step"]) for row in loss_rows] == list(range(64, 449, 32))
    # The optimizer and the buffer carried on: 97 updates and 448 transitions, not 32 and 128.
    resumed = restored_learner(run_dir)
    assert int(resumed.optimizer.iterations.numpy()) == updates(longer, 448) == 97
    assert replay_transitions(run_dir)["counters"][1] == 448
    # 448 is no multiple of 160: the target network is still the online network of step 320,
    # carried through the checkpoint, while the online network trained on.
    before = restored_learner(base_dir)
    for target, online_then in zip(resumed.target_network.get_weights(), before.online_network.get_weights()):
        np.testing.assert_array_equal(target, online_then)
    assert not np.array_equal(resumed.online_network.get_weights()[0], before.online_network.get_weights()[0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": 5e-4}, r"learning_rate: saved 0.0001, given 0.0005"),
        ({"double_dqn": True, "gamma": 0.9}, r"gamma: saved 0.99, given 0.9, double_dqn: saved False, given True"),
    ],
)
def test_resume_with_other_settings_raises(base_run, tmp_path, overrides, message):
    """A run folder refuses a config that differs in anything but total_steps, and is left as it was."""
    _, base_dir, _ = base_run
    run_dir = tmp_path / "run"
    (run_dir / "checkpoint").mkdir(parents=True)
    shutil.copy(base_dir / "config.json", run_dir / "config.json")
    shutil.copy(base_dir / "checkpoint" / "state.json", run_dir / "checkpoint" / "state.json")
    saved = (run_dir / "config.json").read_text()
    changed = dataclasses.replace(TINY, total_steps=400, **overrides)
    with pytest.raises(ValueError, match=f"this run folder holds a run with other settings .*{message}"):
        train(changed, run_dir, progress=False)
    assert (run_dir / "config.json").read_text() == saved
    assert not (run_dir / "episodes.csv").exists()


def test_keyboard_interrupt_saves_a_checkpoint_and_resumes(tmp_path, monkeypatch, capsys):
    """Ctrl-C at step 100 returns an interrupted summary with a checkpoint; train() again finishes."""
    config = dataclasses.replace(TINY, total_steps=160, buffer_size=500, batch_size=16, checkpoint_interval=10_000)
    run_dir = tmp_path / "run"
    interrupt_at = 100
    real_schedule = training.linear_schedule

    def interrupting_schedule(start, end, duration, step):
        if step == interrupt_at:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while choosing action 101
        return real_schedule(start, end, duration, step)

    monkeypatch.setattr(training, "linear_schedule", interrupting_schedule)
    summary = train(config, run_dir, progress=False)
    assert summary.interrupted is True
    assert summary.steps == interrupt_at
    assert summary.weights_path is None and not (run_dir / "q_network.weights.h5").exists()
    assert "Interrupted at step 100" in capsys.readouterr().out
    # The periodic checkpoint never fired (interval 10,000): this one comes from the interrupt.
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["step"] == interrupt_at
    assert replay_transitions(run_dir)["counters"][1] == interrupt_at

    monkeypatch.undo()
    resumed = train(config, run_dir, progress=False)
    assert resumed.steps == 160 and resumed.interrupted is False
    assert resumed.weights_path.is_file()
    assert int(restored_learner(run_dir).optimizer.iterations.numpy()) == updates(config, 160) == 25
    assert replay_transitions(run_dir)["counters"][1] == 160
    _, loss_rows = read_csv(run_dir / "losses.csv")
    assert [int(row["step"]) for row in loss_rows] == [64, 96, 128, 160]


def test_a_crash_keeps_the_last_periodic_checkpoint(tmp_path, monkeypatch):
    """An error at step 70 propagates; the checkpoint of step 50 survives and a new call resumes from it."""
    config = dataclasses.replace(TINY, total_steps=120, buffer_size=500, batch_size=16, checkpoint_interval=50)
    run_dir = tmp_path / "run"
    real_schedule = training.linear_schedule

    def failing_schedule(start, end, duration, step):
        if step == 70:
            raise RuntimeError("simulated crash")
        return real_schedule(start, end, duration, step)

    monkeypatch.setattr(training, "linear_schedule", failing_schedule)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, run_dir, progress=False)
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["step"] == 50
    assert not (run_dir / "checkpoint.new").exists() and not (run_dir / "checkpoint.old").exists()

    monkeypatch.undo()
    summary = train(config, run_dir, progress=False)
    assert summary.steps == 120
    # 50 transitions from the checkpoint and 70 new ones; updates at 64, 68, ..., 120 = 15.
    assert replay_transitions(run_dir)["counters"][1] == 120
    assert int(restored_learner(run_dir).optimizer.iterations.numpy()) == updates(config, 120) == 15
    _, loss_rows = read_csv(run_dir / "losses.csv")
    assert [int(row["step"]) for row in loss_rows] == [64, 96]


@pytest.mark.parametrize("leftover", ["checkpoint.old", "checkpoint.new"])
def test_a_crash_during_the_checkpoint_swap_loses_nothing(tmp_path, leftover):
    """A swap cut short between its two renames is finished on the next call, which resumes from it."""
    config = dataclasses.replace(TINY, total_steps=80, buffer_size=500, batch_size=16, checkpoint_interval=10_000)
    run_dir = tmp_path / "run"
    train(config, run_dir, progress=False)
    # The crash: the complete checkpoint sits under a temporary name and "checkpoint" is gone.
    (run_dir / "checkpoint").rename(run_dir / leftover)
    summary = train(dataclasses.replace(config, total_steps=100), run_dir, progress=False)
    assert summary.steps == 100
    assert replay_transitions(run_dir)["counters"][1] == 100  # 80 recovered + 20 new transitions
    assert not (run_dir / "checkpoint.old").exists() and not (run_dir / "checkpoint.new").exists()


def test_a_game_that_ends_inside_reset_is_still_logged(tmp_path, monkeypatch):
    """Every finished game is logged, also one that the wrappers' own no-op or FIRE in reset ended."""
    # A 240-frame cap (60 agent steps) makes games end often, some of them inside reset.
    config = dataclasses.replace(TINY, total_steps=400, buffer_size=500, batch_size=16, learning_starts=10_000)
    game_starts = []

    def counting_make_env(*args, **kwargs):
        env = make_env(*args, **{**kwargs, "max_episode_frames": 240})
        emulator = env.unwrapped
        real_reset = emulator.reset

        def reset(*, seed=None, options=None):
            game_starts.append(1)
            return real_reset(seed=seed, options=options)

        emulator.reset = reset  # every real game start goes through the emulator's own reset
        return env

    monkeypatch.setattr(training, "make_env", counting_make_env)
    summary = train(config, tmp_path / "run", progress=False)
    _, rows = read_csv(tmp_path / "run" / "episodes.csv")
    # Each game start but the last (still under way) is a game that ended and must be counted.
    assert summary.episodes == len(rows) == len(game_starts) - 1
