"""Tests of dqn_helpers.training: the configuration, the loop, its logs, checkpoints and resuming.

The runs are tiny (a few hundred agent steps) on the real Breakout environment,
played by ``num_envs`` games at once. A thin wrapper records what each real
environment returned at every step, one log per environment, so the logs and each
environment's replay buffer can be compared with what actually happened.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import pytest

import dqn_helpers.envs as envs
import dqn_helpers.training as training
from dqn_helpers.envs import make_env  # the real one, imported before any test patches envs.make_env
from dqn_helpers.learner import DQNLearner, cpu_has_native_bfloat16, resolve_precision
from dqn_helpers.networks import load_q_network
from dqn_helpers.schedules import linear_schedule
from dqn_helpers.training import DQNConfig, TrainSummary, train

pytestmark = pytest.mark.training  # every test here runs train(): the fast tier leaves them out

# Four games of 320 agent steps each. Random play takes 114 to 370 agent steps to
# lose Breakout's 5 lives (40 games measured, half of them within 160), so most of
# the four games end. epsilon decays slowly (to 0.1 at step 10,000) to keep play
# close to random: an untrained greedy network can hold a game for 400 steps.
TINY = DQNConfig(
    seed=0,
    num_envs=4,
    total_steps=1_280,
    buffer_size=2_000,  # 500 slots per environment: 320 transitions and one slot per episode (life) start
    learning_starts=64,
    train_frequency=4,
    batch_size=32,
    target_update_interval=160,
    epsilon_start=1.0,
    epsilon_end=0.1,
    epsilon_decay_steps=10_000,
    log_interval=32,
    checkpoint_interval=320,
)


def updates(config: DQNConfig, steps: int) -> int:
    """Gradient steps taken by agent step ``steps``: at every multiple of train_frequency from learning_starts."""
    first = -(-config.learning_starts // config.train_frequency) * config.train_frequency
    return max(0, (steps - first) // config.train_frequency + 1)


class StepLog(gym.Wrapper):
    """Passes everything through, noting what each env.step returned, and a game that the next reset ended."""

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
                "reset_episode": None,
            }
        )
        return observation, reward, terminated, truncated, info

    def reset(self, *, seed=None, options=None):
        observation, info = self.env.reset(seed=seed, options=options)
        if "episode" in info:  # the wrappers' own no-op or FIRE in this reset ended a game
            self.log[-1]["reset_episode"] = info["episode"]  # in the vector step of the step just logged
        return observation, info


def logged_make_env(logs: list[list[dict]], **overrides):
    """A make_env for dqn_helpers.envs that wraps each real environment in StepLog, with a log of its own.

    ``logs`` gets one list per environment built, in the order they are built. The
    vector environment builds them in index order, so in a single ``train`` call
    ``logs[i]`` is environment ``i``'s, whose transitions go to replay sub-buffer ``i``.
    """

    def make(*args, **kwargs):
        log: list[dict] = []
        logs.append(log)
        return StepLog(make_env(*args, **{**kwargs, **overrides}), log)

    return make


class Game(NamedTuple):
    """A full game that a step log saw end."""

    step: int  # the agent step that ends the vector step it ended in: the step of its row in episodes.csv
    env: int  # the environment that played it
    index: int  # the index in that environment's log of the step that ended it (or that its reset followed)
    statistics: dict[str, Any]  # RecordEpisodeStatistics' info["episode"]: "r" the score, "l" the length
    in_reset: bool  # ended by the wrappers' own no-op or FIRE inside a reset


def finished_games(logs: list[list[dict]], num_envs: int) -> list[Game]:
    """Every full game that the step logs of one fresh run saw end, in the order train logs them.

    Each vector step takes one step in every environment, so environment i's k-th step
    (k from 1) is taken in the vector step that ends at agent step k * num_envs. Within
    a vector step, train logs the games that ended on a step first (they are in
    info["final_info"]), then those that ended inside a reset (in info itself), each
    in environment order.
    """
    games = []
    for env, log in enumerate(logs):
        for index, record in enumerate(log):
            step = (index + 1) * num_envs
            if record["episode"] is not None:
                games.append(Game(step, env, index, record["episode"], in_reset=False))
            if record["reset_episode"] is not None:
                games.append(Game(step, env, index, record["reset_episode"], in_reset=True))
    return sorted(games, key=lambda game: (game.step, game.in_reset, game.env))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV log."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames), list(reader)


def replay_transitions(run_dir: Path) -> list[dict[str, np.ndarray]]:
    """The checkpointed replay's transitions, one dict per environment, in environment order.

    Sub-buffer ``i`` (keys ``"i/frames"``, ``"i/actions"``, ...) holds environment
    ``i``'s transitions. Each dict has that sub-buffer's transitions in the order they
    were stored (slots with position 0 start episodes, and are skipped), which holds
    as long as the sub-buffer has not wrapped around: its "counters" are [written
    slots, transitions held].
    """
    with np.load(run_dir / "checkpoint" / "replay.npz") as arrays:
        num_envs = len({key.split("/", 1)[0] for key in arrays.files})
        assert sorted(arrays.files) == sorted(
            f"{i}/{name}"
            for i in range(num_envs)
            for name in ("frames", "actions", "rewards", "terminated", "positions", "counters")
        )
        per_env = []
        for i in range(num_envs):
            transition = arrays[f"{i}/positions"] > 0
            per_env.append(
                {
                    "actions": arrays[f"{i}/actions"][transition],
                    "rewards": arrays[f"{i}/rewards"][transition],
                    "terminated": arrays[f"{i}/terminated"][transition],
                    "positions": arrays[f"{i}/positions"],
                    "counters": arrays[f"{i}/counters"],
                }
            )
        return per_env


def transitions_held(run_dir: Path) -> list[int]:
    """How many transitions the checkpointed replay holds, per environment."""
    return [int(part["counters"][1]) for part in replay_transitions(run_dir)]


def restored_learner(run_dir: Path) -> DQNLearner:
    """A learner loaded from the run's checkpoint."""
    learner = DQNLearner(4)
    with np.load(run_dir / "checkpoint" / "learner.npz") as arrays:
        learner.set_state(dict(arrays))
    return learner


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One tiny training run, with every step of each environment recorded."""
    run_dir = tmp_path_factory.mktemp("base") / "run"
    logs: list[list[dict]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(envs, "make_env", logged_make_env(logs))
        summary = train(TINY, run_dir, progress=False)
    return summary, run_dir, logs


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
        (
            {"learning_starts": 16, "batch_size": 32},
            r"learning_starts \(16\) must be at least batch_size \+ num_envs \(32 \+ 4\)",
        ),
        ({"learning_starts": 35, "batch_size": 32}, r"learning_starts \(35\) must be at least batch_size \+ num_envs"),
        ({"learning_starts": 32, "batch_size": 32, "num_envs": 1}, r"batch_size \+ num_envs \(32 \+ 1\)"),
        ({"num_envs": 0}, "num_envs must be positive, got 0"),
        ({"n_step": 0}, "n_step must be positive, got 0"),
        ({"total_steps": 10, "num_envs": 4}, r"total_steps \(10\) must be a multiple of num_envs \(4\)"),
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\], got 1.5"),
        ({"epsilon_start": -0.1}, r"epsilon_start must be in \[0, 1\]"),
        ({"epsilon_end": 2.0}, r"epsilon_end must be in \[0, 1\]"),
        ({"sticky_action_probability": 1.01}, r"sticky_action_probability must be in \[0, 1\]"),
        ({"precision": "float16"}, "precision must be 'auto', 'float32' or 'bfloat16', got 'float16'"),
    ],
)
def test_config_validation(overrides, message):
    """Settings that cannot work raise ValueError naming the field."""
    with pytest.raises(ValueError, match=message):
        DQNConfig(**overrides)


@pytest.mark.parametrize(("batch_size", "num_envs"), [(32, 4), (32, 1), (16, 2)])
def test_learning_starts_may_equal_batch_size_plus_num_envs(batch_size, num_envs):
    """The boundary case is allowed: the first update's batch is drawn from exactly batch_size transitions."""
    # The first update is due in the vector step under way at learning_starts, which began
    # num_envs agent steps earlier: the buffer then holds learning_starts - num_envs = batch_size.
    config = DQNConfig(learning_starts=batch_size + num_envs, batch_size=batch_size, num_envs=num_envs)
    assert config.learning_starts == batch_size + num_envs


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
    """Asdict -> JSON -> DQNConfig gives an equal config (what config.json relies on)."""
    assert DQNConfig(**json.loads(json.dumps(dataclasses.asdict(TINY)))) == TINY


def test_docs_cover_every_field():
    """DQNConfig.docs() has a non-empty description for each field and nothing else."""
    docs = DQNConfig.docs()
    assert list(docs) == [field.name for field in dataclasses.fields(DQNConfig)]
    assert all(isinstance(doc, str) and doc.strip() for doc in docs.values())


def test_the_short_preset_sets_its_fields_and_gives_a_reason_for_each():
    """DQNConfig.preset("short") is the defaults with the preset's values; every value has a reason."""
    config = DQNConfig.preset("short")
    for name, (value, reason) in training.PRESETS["short"].items():
        assert getattr(config, name) == value
        assert len(reason.split()) >= 8, f"{name}: the reason is too short to explain anything"
    untouched = [f.name for f in dataclasses.fields(DQNConfig) if f.name not in training.PRESETS["short"]]
    assert all(getattr(config, name) == getattr(DQNConfig(), name) for name in untouched)


def test_a_preset_takes_overrides_and_validates_them():
    assert DQNConfig.preset("short", num_envs=1, total_steps=400).total_steps == 400
    with pytest.raises(ValueError, match="gamma must be in"):
        DQNConfig.preset("short", gamma=2.0)
    with pytest.raises(ValueError, match=r"no preset named 'fast': the presets are \['short'\]"):
        DQNConfig.preset("fast")


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


# --- the loop's helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "stop", "interval", "expected"),
    [
        (0, 4, 4, 1),  # step 4
        (60, 64, 4, 1),  # step 64: the first update of TINY, in the vector step 60 -> 64
        (63, 64, 4, 1),  # max(step, learning_starts - 1) = 63 still counts the update at 64
        (64, 68, 4, 1),  # step 68; 64 itself belongs to the vector step before
        (0, 4, 1, 4),  # train_frequency 1 with 4 environments: steps 1, 2, 3, 4
        (4, 8, 3, 1),  # step 6
        (2, 8, 3, 2),  # steps 3 and 6
        (48, 52, 50, 1),  # a checkpoint interval of 50 fires in the vector step 48 -> 52
        (52, 56, 50, 0),
        (96, 100, 50, 1),  # step 100
        (4, 4, 4, 0),  # an empty range
        (5, 4, 4, 0),  # start > stop: nothing, not a negative count
        (70, 4, 4, 0),
    ],
)
def test_multiples_counts_the_events_due_in_a_vector_step(start, stop, interval, expected):
    """_multiples counts the multiples of interval in (start, stop], never fewer than 0."""
    assert training._multiples(start, stop, interval) == expected


def vector_info(num_envs: int, **entries: dict[int, Any]) -> dict[str, Any]:
    """An info dict shaped as gymnasium's vector environments build it: values batched, with "_key" masks.

    Each entry maps an environment's index to its value, as ``{1: value}``; the value
    of an "episode" entry is a dict (``{"r": 9.0, "l": 120, "t": 0.5}``), which is
    batched the same way one level down. Environments without a value get zeros.
    """
    info: dict[str, Any] = {}
    for key, values in entries.items():
        mask = np.zeros(num_envs, dtype=bool)
        mask[list(values)] = True
        if key == "episode":
            batched = {}
            for name, dtype in (("r", np.float64), ("l", np.int64), ("t", np.float64)):
                column = np.zeros(num_envs, dtype=dtype)
                for i, episode in values.items():
                    column[i] = episode[name]
                batched[name], batched[f"_{name}"] = column, mask.copy()
            info[key] = batched
        elif key == "final_obs":
            column = np.full(num_envs, None, dtype=object)  # gymnasium keeps final observations unbatched
            for i, value in values.items():
                column[i] = value
            info[key] = column
        else:
            column = np.zeros(num_envs, dtype=np.int64)
            for i, value in values.items():
                column[i] = value
            info[key] = column
        info[f"_{key}"] = mask
    return info


def stacks(*values: int) -> np.ndarray:
    """One small uint8 state per value, filled with it (the helpers do not care about the shape)."""
    return np.stack([np.full((4, 2, 2), value, dtype=np.uint8) for value in values])


def test_final_observations_without_finished_episodes_are_the_next_states():
    """No episode ended (no "final_obs" in info, or none flagged): the transitions lead to next_states."""
    next_states = stacks(1, 2, 3)
    np.testing.assert_array_equal(training._final_observations(next_states, {}), next_states)
    info = {"final_obs": np.full(3, None, dtype=object), "_final_obs": np.zeros(3, dtype=bool)}
    np.testing.assert_array_equal(training._final_observations(next_states, info), next_states)


def test_final_observations_take_the_last_state_of_finished_episodes():
    """Where an episode ended, the transition leads to its final observation, not the next episode's first."""
    next_states = stacks(1, 2, 3, 4)  # environments 1 and 3 already started their next episodes
    info = {**vector_info(4, final_obs={1: stacks(20)[0], 3: stacks(40)[0]}), **vector_info(4, lives={0: 5, 2: 3})}
    final = training._final_observations(next_states, info)
    np.testing.assert_array_equal(final, stacks(1, 20, 3, 40))
    # The next states are left alone: they are where the next actions are chosen from.
    np.testing.assert_array_equal(next_states, stacks(1, 2, 3, 4))


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({}, []),
        # Environment 2 lost a life (an episode for learning, not a game): no "episode" statistics.
        ({"final_info": vector_info(4, lives={2: 3}), "_final_info": np.array([False, False, True, False])}, []),
        # Environments 1 and 2 finished games on their step; environment 0 holds zeros, masked out.
        (
            {
                "final_info": vector_info(
                    3,
                    episode={1: {"r": 9.0, "l": 120, "t": 1.5}, 2: {"r": 3.0, "l": 131, "t": 1.6}},
                    lives={1: 0, 2: 0},
                ),
                "_final_info": np.array([False, True, True]),
                **vector_info(3, lives={0: 5, 1: 5, 2: 5}),
            },
            [(9.0, 120), (3.0, 131)],
        ),
        # Environment 2's game ended inside its reset: the statistics are in the vector step's own info.
        (vector_info(4, episode={2: {"r": 7.0, "l": 60, "t": 0.9}}, lives={0: 5, 1: 4, 2: 5, 3: 5}), [(7.0, 60)]),
        # Both in one vector step: the games that ended on a step come first, then those ended in a reset.
        (
            {
                "final_info": vector_info(4, episode={3: {"r": 2.0, "l": 140, "t": 2.0}}),
                "_final_info": np.array([False, False, False, True]),
                **vector_info(4, episode={0: {"r": 11.0, "l": 60, "t": 1.0}}),
            },
            [(2.0, 140), (11.0, 60)],
        ),
    ],
    ids=["nothing", "a lost life", "games ended on steps", "a game ended in reset", "both"],
)
def test_finished_games_reads_both_places_a_game_can_end(info, expected):
    """_finished_games gives (score, length) of each full game in a vector step, masked by "_episode"."""
    games = training._finished_games(info)
    assert games == expected
    assert all(type(score) is float and type(length) is int for score, length in games)


# --- one tiny run ----------------------------------------------------------------------------------


def test_summary_of_a_finished_run(base_run):
    """The summary reports every step, every full game and the final weights."""
    summary, run_dir, logs = base_run
    assert isinstance(summary, TrainSummary)
    assert summary.run_dir == run_dir
    assert summary.steps == TINY.total_steps == sum(len(log) for log in logs)
    # Each vector step takes one agent step in each game: 1,280 / 4 = 320 steps per environment.
    assert [len(log) for log in logs] == [320] * TINY.num_envs
    assert summary.episodes == len(finished_games(logs, TINY.num_envs)) >= 1
    assert summary.weights_path == run_dir / "q_network.weights.h5"
    assert summary.interrupted is False


def test_games_of_every_environment_are_logged(base_run):
    """Full games are counted and logged whichever of the four environments played them."""
    summary, run_dir, logs = base_run
    games = finished_games(logs, TINY.num_envs)
    per_env = [sum(game.env == env for game in games) for env in range(TINY.num_envs)]
    # Each environment played 320 steps, and random play ends a game within 114 to 370: at
    # least two of the four environments finished one, so a loop that only looked at
    # environment 0 would miss games (the chance that fewer than two finish is about 1 in 2,000).
    assert sum(count > 0 for count in per_env) >= 2
    _, rows = read_csv(run_dir / "episodes.csv")
    assert summary.episodes == len(rows) == sum(per_env)
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["episodes"] == sum(per_env)


def test_run_folder_contents(base_run):
    """config.json, the two CSV logs, a complete checkpoint and the final weights; no half checkpoint."""
    _, run_dir, _ = base_run
    for name in ("config.json", "episodes.csv", "losses.csv", "q_network.weights.h5"):
        assert (run_dir / name).is_file(), name
    assert sorted(path.name for path in (run_dir / "checkpoint").iterdir()) == [
        "learner.npz",
        "replay.npz",
        "state.json",
    ]
    assert not (run_dir / "checkpoint.new").exists() and not (run_dir / "checkpoint.old").exists()


def test_config_json_holds_the_settings(base_run):
    """config.json is the run's DQNConfig, with the fixed choices and the compute path of this machine beside it."""
    _, run_dir, _ = base_run
    precision = resolve_precision(TINY.precision)
    compute = {"precision": precision, "xla": precision == "float32", "cpu_native_bfloat16": cpu_has_native_bfloat16()}
    record = json.loads((run_dir / "config.json").read_text())
    assert record == {**dataclasses.asdict(TINY), "fixed": training.FIXED_CHOICES, "compute": compute}


def test_episodes_csv_logs_full_games(base_run):
    """One row per finished game, at the end of the vector step it ended in, with the true score over all 5 lives."""
    _, run_dir, logs = base_run
    header, rows = read_csv(run_dir / "episodes.csv")
    assert header == ["step", "episode", "return", "length", "epsilon", "hours"]
    games = finished_games(logs, TINY.num_envs)
    assert len(rows) == len(games)
    for number, (row, game) in enumerate(zip(rows, games), start=1):
        # Environment e's k-th step (index k - 1) ends the vector step at agent step 4k.
        assert int(row["step"]) == game.step == (game.index + 1) * TINY.num_envs
        assert int(row["episode"]) == number
        assert not game.in_reset  # without a time limit, no game of this run ends inside a reset
        assert logs[game.env][game.index]["lives"] == 0  # the game ended, not just a life
        assert float(row["return"]) == pytest.approx(float(game.statistics["r"]))  # unclipped game score
        assert int(row["length"]) == int(game.statistics["l"])
        assert float(row["hours"]) > 0
    # Each environment's first game spans all its lives: 4 lost lives and the game over,
    # each terminated for learning, in that environment's own steps.
    for env in sorted({game.env for game in games}):
        first_end = min(game.index for game in games if game.env == env)
        assert sum(step["terminated"] for step in logs[env][: first_end + 1]) == 5


def test_episode_epsilon_decays_per_agent_step(base_run):
    """Epsilon in episodes.csv is the schedule at the agent step where the game's last actions were chosen."""
    _, run_dir, _ = base_run
    _, rows = read_csv(run_dir / "episodes.csv")
    for row in rows:
        step = int(row["step"])
        # The row's step ends the vector step; its 4 actions were chosen at its start, step - 4.
        # One step apart the schedule differs by 0.9 / 10,000, well beyond the tolerance.
        expected = linear_schedule(TINY.epsilon_start, TINY.epsilon_end, TINY.epsilon_decay_steps, step - TINY.num_envs)
        assert float(row["epsilon"]) == pytest.approx(expected, rel=1e-5)
    assert TINY.epsilon_end < float(rows[0]["epsilon"]) < TINY.epsilon_start  # the first game ends mid-decay


def test_losses_csv_starts_at_learning_starts(base_run):
    """No update before learning_starts: loss rows every log_interval from step 64 on."""
    _, run_dir, _ = base_run
    header, rows = read_csv(run_dir / "losses.csv")
    assert header == ["step", "loss", "mean_q", "steps_per_s"]
    # The first update is at step 64 (a multiple of train_frequency 4, made in the vector
    # step 60 -> 64), logged at step 64 (a multiple of log_interval 32); then one row every
    # 32 steps up to 1,280 (vector steps end on multiples of 4, so each multiple of 32 is one's end).
    assert [int(row["step"]) for row in rows] == list(range(64, 1_281, 32))
    assert all(np.isfinite(float(row["loss"])) and float(row["loss"]) >= 0 for row in rows)
    assert all(float(row["steps_per_s"]) > 0 for row in rows)


def test_checkpoint_counts_steps_games_and_updates(base_run):
    """state.json has the step, games and rng; the optimizer took exactly one update per 4 steps from 64."""
    summary, run_dir, _ = base_run
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["step"] == 1_280
    assert state["episodes"] == summary.episodes
    assert state["rng"]["bit_generator"] == "PCG64"
    # Updates at steps 64, 68, ..., 1,280: (1,280 - 64) / 4 + 1 = 305, one per vector step
    # from the vector step 60 -> 64 on, as with a single environment.
    assert int(restored_learner(run_dir).optimizer.iterations.numpy()) == updates(TINY, 1_280) == 305


def test_final_weights_are_the_online_network(base_run):
    """q_network.weights.h5 loads into a network that equals the checkpoint's online network."""
    _, run_dir, _ = base_run
    loaded = load_q_network(run_dir / "q_network.weights.h5", 4)
    states = np.random.default_rng(0).integers(0, 256, size=(2, 4, 84, 84), dtype=np.uint8)
    np.testing.assert_array_equal(loaded(states).numpy(), restored_learner(run_dir).online_network(states).numpy())


def test_target_is_synced_after_the_last_update_of_an_interval(base_run):
    """Step 1,280 = 8 x 160 ends the last vector step: its sync follows its update, so target = online."""
    _, run_dir, _ = base_run
    learner = restored_learner(run_dir)
    for target, online in zip(learner.target_network.get_weights(), learner.online_network.get_weights()):
        np.testing.assert_array_equal(target, online)


def test_replay_buffer_holds_exactly_what_happened(base_run):
    """Each environment's steps are stored in its own sub-buffer, with action, clipped reward and terminated flag."""
    _, run_dir, logs = base_run
    stored = replay_transitions(run_dir)
    assert len(stored) == TINY.num_envs
    # 320 transitions per environment, 1,280 in all; none overwritten (500 slots each).
    assert [int(part["counters"][1]) for part in stored] == [320] * TINY.num_envs
    assert sum(int(part["counters"][1]) for part in stored) == TINY.total_steps
    for part, log in zip(stored, logs):
        assert part["counters"][0] <= TINY.buffer_size // TINY.num_envs
        np.testing.assert_array_equal(part["actions"], [step["action"] for step in log])
        np.testing.assert_array_equal(part["rewards"], [step["reward"] for step in log])
        np.testing.assert_array_equal(part["terminated"], [step["terminated"] for step in log])
        assert set(np.unique(part["rewards"])) <= {-1.0, 0.0, 1.0}
    # The environments played different games (seeds 0 to 3), so the sub-buffers differ.
    assert not np.array_equal(stored[0]["actions"], stored[1]["actions"])


def test_truncated_steps_are_not_stored_as_terminated(tmp_path, monkeypatch):
    """A time-limit cut ends the episode in the buffer but leaves terminated False (it bootstraps)."""
    logs: list[list[dict]] = []
    # 160 emulator frames per game: at most 40 agent steps, while random play needs at least 114
    # to lose 5 lives; so each environment's 80 steps of a 320-step run hold at least two cuts,
    # but for one that lands on the no-op or FIRE inside a reset (then no step is cut).
    monkeypatch.setattr(envs, "make_env", logged_make_env(logs, max_episode_frames=160))
    config = dataclasses.replace(
        TINY, total_steps=320, buffer_size=500, batch_size=16, learning_starts=10_000, checkpoint_interval=10_000
    )  # no update is due: this test is about what is stored
    train(config, tmp_path / "run", progress=False)
    stored = replay_transitions(tmp_path / "run")
    assert [len(log) for log in logs] == [80] * 4
    for part, log in zip(stored, logs):
        assert part["counters"][0] < 500 // 4  # not wrapped: slot order is storage order
        cut = [i for i, step in enumerate(log) if step["truncated"] and not step["terminated"]]
        assert len(cut) >= 1
        np.testing.assert_array_equal(part["terminated"], [step["terminated"] for step in log])
        assert not part["terminated"][cut].any()
        # Each cut step is the last transition of its episode in the buffer (the next slot starts anew).
        transition_slots = np.flatnonzero(part["positions"] > 0)
        for index in cut:
            assert part["positions"][transition_slots[index] + 1] == 0


@pytest.mark.parametrize("num_envs", [1, 2])
def test_other_numbers_of_environments(tmp_path, monkeypatch, num_envs):
    """One or two environments work end to end, with the same updates by the same agent step as four."""
    logs: list[list[dict]] = []
    monkeypatch.setattr(envs, "make_env", logged_make_env(logs))
    config = dataclasses.replace(
        TINY, num_envs=num_envs, total_steps=80, buffer_size=500, batch_size=16, checkpoint_interval=10_000
    )
    run_dir = tmp_path / "run"
    summary = train(config, run_dir, progress=False)
    assert summary.steps == 80 and not summary.interrupted and summary.weights_path.is_file()
    assert [len(log) for log in logs] == [80 // num_envs] * num_envs
    stored = replay_transitions(run_dir)
    assert [int(part["counters"][1]) for part in stored] == [80 // num_envs] * num_envs  # "0/..." keys alone for 1
    for part, log in zip(stored, logs):
        np.testing.assert_array_equal(part["actions"], [step["action"] for step in log])
        np.testing.assert_array_equal(part["terminated"], [step["terminated"] for step in log])
    # Updates at steps 64, 68, 72, 76 and 80, whatever the number of environments: 5.
    assert int(restored_learner(run_dir).optimizer.iterations.numpy()) == updates(config, 80) == 5
    _, loss_rows = read_csv(run_dir / "losses.csv")
    assert [int(row["step"]) for row in loss_rows] == [64]
    _, rows = read_csv(run_dir / "episodes.csv")
    assert summary.episodes == len(rows) == len(finished_games(logs, num_envs))


def test_n_step_double_dqn_run_learns_from_n_step_batches(tmp_path, monkeypatch):
    """With n_step=3 the learner gets gamma**k discounts, mostly k = 3, and the run finishes as usual."""
    discounts = []
    real_train_step = DQNLearner.train_step

    def recording_train_step(self, *batch):
        discounts.append(batch[5])
        assert self.double_dqn
        return real_train_step(self, *batch)

    monkeypatch.setattr(DQNLearner, "train_step", recording_train_step)
    config = dataclasses.replace(
        TINY, n_step=3, double_dqn=True, total_steps=160, buffer_size=500, batch_size=16, checkpoint_interval=10_000
    )
    summary = train(config, tmp_path / "run", progress=False)
    assert summary.steps == 160 and summary.weights_path.is_file()
    assert len(discounts) == updates(config, 160)
    every = np.concatenate(discounts)
    gammas = [config.gamma**k for k in (1, 2, 3)]
    assert np.all(np.isclose(every[:, None], gammas).any(axis=1))
    assert np.isclose(every, gammas[2]).mean() > 0.8  # shorter only where a life ended or at the newest steps
    assert json.loads((tmp_path / "run" / "config.json").read_text())["n_step"] == 3


def test_a_run_saved_before_a_setting_existed_resumes_with_its_default(base_run, tmp_path):
    """config.json written before n_step was added means n_step = 1: resuming it is allowed."""
    _, base_dir, _ = base_run
    run_dir = tmp_path / "run"
    shutil.copytree(base_dir, run_dir)
    saved = json.loads((run_dir / "config.json").read_text())
    del saved["n_step"]
    (run_dir / "config.json").write_text(json.dumps(saved))
    summary = train(dataclasses.replace(TINY, total_steps=1_296), run_dir, progress=False)
    assert summary.steps == 1_296 and not summary.interrupted


# --- resuming ---------------------------------------------------------------------------------------


def test_resume_continues_from_the_checkpoint(base_run, tmp_path):
    """Calling train again with more total_steps continues at step 1,280 with its buffer and optimizer."""
    _, base_dir, _ = base_run
    run_dir = tmp_path / "run"
    shutil.copytree(base_dir, run_dir)
    _, base_rows = read_csv(base_dir / "episodes.csv")
    longer = dataclasses.replace(TINY, total_steps=1_408)
    summary = train(longer, run_dir, progress=False)
    assert summary.steps == 1_408 and not summary.interrupted
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["step"] == 1_408
    assert json.loads((run_dir / "config.json").read_text())["total_steps"] == 1_408
    _, rows = read_csv(run_dir / "episodes.csv")
    assert rows[: len(base_rows)] == base_rows  # the earlier games are kept, once
    assert all(int(row["step"]) > 1_280 for row in rows[len(base_rows) :])
    steps = [int(row["step"]) for row in rows]
    assert steps == sorted(steps)  # in order (two environments can end games in the same vector step)
    assert [int(row["episode"]) for row in rows] == list(range(1, len(rows) + 1))
    assert summary.episodes == len(rows)
    _, loss_rows = read_csv(run_dir / "losses.csv")
    assert [int(row["step"]) for row in loss_rows] == list(range(64, 1_409, 32))
    # The optimizer and the buffer carried on: (1,408 - 64) / 4 + 1 = 337 updates and
    # 1,408 transitions (352 per environment), not 32 and 128.
    resumed = restored_learner(run_dir)
    assert int(resumed.optimizer.iterations.numpy()) == updates(longer, 1_408) == 337
    assert transitions_held(run_dir) == [352] * 4
    # 1,408 lies between the syncs at 1,280 = 8 x 160 and 1,440: the target network is still
    # the online network of step 1,280, carried through the checkpoint, while the online network trained on.
    before = restored_learner(base_dir)
    for target, online_then in zip(resumed.target_network.get_weights(), before.online_network.get_weights()):
        np.testing.assert_array_equal(target, online_then)
    assert not np.array_equal(resumed.online_network.get_weights()[0], before.online_network.get_weights()[0])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learning_rate": 5e-4}, r"learning_rate: saved 0.0001, given 0.0005"),
        ({"double_dqn": True, "gamma": 0.9}, r"gamma: saved 0.99, given 0.9, double_dqn: saved False, given True"),
        ({"num_envs": 2}, r"num_envs: saved 4, given 2"),  # the replay holds one sub-buffer per environment
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
    changed = dataclasses.replace(TINY, total_steps=1_600, **overrides)
    with pytest.raises(ValueError, match=f"this run folder holds a run with other settings .*{message}"):
        train(changed, run_dir, progress=False)
    assert (run_dir / "config.json").read_text() == saved
    assert not (run_dir / "episodes.csv").exists()


def test_keyboard_interrupt_saves_a_checkpoint_and_resumes(tmp_path, monkeypatch, capsys):
    """Ctrl-C at step 100 returns an interrupted summary with a checkpoint; train() again finishes."""
    config = dataclasses.replace(TINY, total_steps=160, buffer_size=500, batch_size=16, checkpoint_interval=10_000)
    run_dir = tmp_path / "run"
    interrupt_at = 100  # a multiple of num_envs 4: a vector step starts there
    real_schedule = training.linear_schedule

    def interrupting_schedule(start, end, duration, step):
        if step == interrupt_at:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while choosing the actions of steps 101 to 104
        return real_schedule(start, end, duration, step)

    monkeypatch.setattr(training, "linear_schedule", interrupting_schedule)
    summary = train(config, run_dir, progress=False)
    assert summary.interrupted is True
    assert summary.steps == interrupt_at
    assert summary.weights_path is None and not (run_dir / "q_network.weights.h5").exists()
    assert "Interrupted at step 100" in capsys.readouterr().out
    # The periodic checkpoint never fired (interval 10,000): this one comes from the interrupt,
    # with the 25 vector steps' transitions, 25 in each of the 4 sub-buffers.
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["step"] == interrupt_at
    assert transitions_held(run_dir) == [25] * 4

    monkeypatch.undo()
    resumed = train(config, run_dir, progress=False)
    assert resumed.steps == 160 and resumed.interrupted is False
    assert resumed.weights_path.is_file()
    # Updates at 64, 68, ..., 160: (160 - 64) / 4 + 1 = 25, those up to 100 carried by the checkpoint.
    assert int(restored_learner(run_dir).optimizer.iterations.numpy()) == updates(config, 160) == 25
    assert transitions_held(run_dir) == [40] * 4  # 160 / 4
    _, loss_rows = read_csv(run_dir / "losses.csv")
    assert [int(row["step"]) for row in loss_rows] == [64, 96, 128, 160]


def test_a_crash_keeps_the_last_periodic_checkpoint(tmp_path, monkeypatch):
    """An error at step 72 propagates; the checkpoint of step 52 survives and a new call resumes from it."""
    config = dataclasses.replace(TINY, total_steps=120, buffer_size=500, batch_size=16, checkpoint_interval=50)
    run_dir = tmp_path / "run"
    real_schedule = training.linear_schedule

    def failing_schedule(start, end, duration, step):
        if step == 72:  # vector steps start at multiples of 4
            raise RuntimeError("simulated crash")
        return real_schedule(start, end, duration, step)

    monkeypatch.setattr(training, "linear_schedule", failing_schedule)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(config, run_dir, progress=False)
    # Step 50 falls inside the vector step 48 -> 52, so its checkpoint is taken at step 52;
    # the next multiple, 100, was never reached.
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["step"] == 52
    assert transitions_held(run_dir) == [13] * 4  # 52 / 4
    assert not (run_dir / "checkpoint.new").exists() and not (run_dir / "checkpoint.old").exists()
    _, crashed_loss_rows = read_csv(run_dir / "losses.csv")
    assert [int(row["step"]) for row in crashed_loss_rows] == [64]  # written before the crash, after the checkpoint

    monkeypatch.undo()
    summary = train(config, run_dir, progress=False)
    assert summary.steps == 120
    # 52 transitions from the checkpoint and 68 new ones: 30 per environment. The checkpoint
    # of step 52 predates every update, so all of them, at 64, 68, ..., 120, come after: 15.
    assert transitions_held(run_dir) == [30] * 4
    assert int(restored_learner(run_dir).optimizer.iterations.numpy()) == updates(config, 120) == 15
    # The row of step 64 from the crashed run was dropped on resuming and written again, once.
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
    assert transitions_held(run_dir) == [25] * 4  # 80 recovered + 20 new transitions, a quarter each
    assert not (run_dir / "checkpoint.old").exists() and not (run_dir / "checkpoint.new").exists()


def test_a_game_that_ends_inside_reset_is_still_logged(tmp_path, monkeypatch):
    """Every finished game is logged, also one that the wrappers' own no-op or FIRE in reset ended."""
    # A 240-frame cap (60 agent steps) makes games end often, some of them inside reset.
    # epsilon stays 1 and no update is due, so the network never acts: the actions come
    # from the seeded generator alone, the games are seeded, and the run is the same every time.
    config = dataclasses.replace(
        TINY, total_steps=400, buffer_size=500, batch_size=16, learning_starts=10_000, epsilon_end=1.0
    )
    logs: list[list[dict]] = []
    logged = logged_make_env(logs, max_episode_frames=240)
    game_starts = []

    def counting_make_env(*args, **kwargs):
        env = logged(*args, **kwargs)
        emulator = env.unwrapped
        real_reset = emulator.reset

        def reset(*, seed=None, options=None):
            game_starts.append(1)
            return real_reset(seed=seed, options=options)

        emulator.reset = reset  # every real game start goes through the emulator's own reset
        return env

    monkeypatch.setattr(envs, "make_env", counting_make_env)
    summary = train(config, tmp_path / "run", progress=False)
    _, rows = read_csv(tmp_path / "run" / "episodes.csv")
    # Each game start but the last of each of the 4 environments (still under way) is a game
    # that ended and must be counted.
    assert summary.episodes == len(rows) == len(game_starts) - config.num_envs
    games = finished_games(logs, config.num_envs)
    assert sum(game.in_reset for game in games) >= 1  # the path under test is taken (3 of 4 games here)
    assert [(int(row["step"]), float(row["return"]), int(row["length"])) for row in rows] == [
        (game.step, float(game.statistics["r"]), int(game.statistics["l"])) for game in games
    ]


# --- a run's record as its config ------------------------------------------------------------------


def test_the_reference_record_gives_the_reference_settings():
    """Check that the shipped agent's config.json reads back as the settings `make reference` trains with."""
    from dqn_helpers import reference

    record = json.loads((reference.WEIGHTS.parent / "config.json").read_text())
    config = DQNConfig.from_file(reference.WEIGHTS.parent / "config.json")
    settings = dataclasses.asdict(config)
    assert {name: settings[name] for name in record if name not in ("fixed", "compute")} == {
        name: value for name, value in record.items() if name not in ("fixed", "compute")
    }
    assert (config.n_step, config.double_dqn, config.total_steps) == (3, True, 3_000_000)
    assert DQNConfig.from_file(reference.WEIGHTS.parent / "config.json", seed=2).seed == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not a run's config.json"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"n_step": 3, "replay_ratio": 2}', "settings DQNConfig does not know: replay_ratio"),
        ('{"fixed": {"loss": "mean squared error"}}', "fixed choices differ from this version's"),
        ('{"n_step": 0}', "n_step"),
    ],
)
def test_a_record_that_is_no_runs_config_is_refused(tmp_path, content, message):
    """Check that from_file names what is wrong with a file that cannot be a run's record."""
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        DQNConfig.from_file(path)


def test_a_missing_record_is_a_file_not_found_error(tmp_path):
    """Check that a path to no file says so."""
    with pytest.raises(FileNotFoundError):
        DQNConfig.from_file(tmp_path / "nowhere.json")
