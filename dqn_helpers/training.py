"""The DQN training loop: configuration, the loop itself, logs and checkpoints.

``train(config, run_dir)`` reads top to bottom like CleanRL's ``dqn_atari.py``: act
epsilon-greedily, store the transitions, carry the states forward, learn every few
steps, sync the target network now and then. It plays ``num_envs`` games at once:
one batched forward pass chooses all their actions, and the games are emulated in a
background thread while the learner makes the updates that are due, so emulation
costs little next to learning (``benchmarks/train_speed.py`` measures it). Around
that loop it keeps what a long run needs:

- ``run_dir/config.json``: the settings of the run, under ``"fixed"`` what
  every run does that the settings do not vary (network, loss, preprocessing...),
  and under ``"compute"`` how this machine computed the updates (precision, XLA).
- ``run_dir/episodes.csv``: one row per full game: the true score (not clipped),
  its length in agent steps (counting the FIRE and no-op steps the wrappers take
  after each lost life) and the epsilon of its last action.
- ``run_dir/losses.csv``: mean loss and Q-value every ``log_interval`` agent steps.
- ``run_dir/checkpoint/``: weights, optimizer, replay buffer and counters, every
  ``checkpoint_interval`` agent steps, when interrupted, and at the end.
- ``run_dir/q_network.weights.h5``: the online network's final weights.

Calling ``train`` again on the same ``run_dir`` resumes from the checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from dqn_helpers.envs import FRAME_SHAPE, FRAME_SKIP, STACK_SIZE, TRAINING_MAX_EPISODE_FRAMES, make_vector_env
from dqn_helpers.learner import DQNLearner
from dqn_helpers.policies import QPolicy
from dqn_helpers.replay import VectorReplayBuffer
from dqn_helpers.schedules import linear_schedule

__all__ = ["DQNConfig", "FIXED_CHOICES", "PRESETS", "TrainSummary", "export_weights", "train"]

EPISODE_FIELDS = ("step", "episode", "return", "length", "epsilon", "hours")
LOSS_FIELDS = ("step", "loss", "mean_q", "steps_per_s")

# What every run does and DQNConfig does not vary, recorded in config.json beside the settings.
FIXED_CHOICES = {
    "network": "Nature CNN (Mnih et al. 2015): conv 32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1, dense 512; "
    "no dueling head",
    "loss": "Huber (delta 1) of the TD error, mean over the batch",
    "optimizer": "Adam (learning_rate, adam_epsilon), no gradient clipping",
    "observation": f"{STACK_SIZE} stacked {FRAME_SHAPE[0]}x{FRAME_SHAPE[1]} grayscale uint8 frames, scaled to [0, 1] in the network",
    "frame_skip": f"{FRAME_SKIP} emulator frames per agent step, max over the last two",
    "starts": "up to 30 random no-op frames after each reset, then FIRE",
    "episodes": "a lost life ends the learning episode (the game goes on); games cut at "
    f"{TRAINING_MAX_EPISODE_FRAMES:,} emulator frames",
    "rewards": "clipped to their sign: -1, 0 or +1",
    "replay": "uniform over the transitions held, each frame stored once; n-step sums stop at an episode's end",
}


def _setting(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class DQNConfig:
    """Every setting of a training run. Change them with ``dataclasses.replace``.

    One agent step is one action, repeated for 4 emulator frames: 10M agent steps
    are 40M frames. Defaults follow CleanRL's ``dqn_atari.py`` (itself close to
    Mnih et al. 2015).

    Example:
        >>> config = dataclasses.replace(DQNConfig(), total_steps=1_000)
        >>> config.total_steps, config.train_frequency
        (1000, 4)
    """

    game: str = _setting("Breakout", "ALE game name")
    seed: int = _setting(1, "seed of the environments, exploration and sampling")
    num_envs: int = _setting(4, "games played at once; each takes one agent step per vector step")
    total_steps: int = _setting(10_000_000, "agent steps to train for (x4 frames)")
    buffer_size: int = _setting(1_000_000, "replay capacity, in transitions (agent steps)")
    learning_starts: int = _setting(80_000, "agent steps of play before the first update")
    train_frequency: int = _setting(4, "agent steps between two updates")
    batch_size: int = _setting(32, "transitions per update")
    learning_rate: float = _setting(1e-4, "Adam step size")
    adam_epsilon: float = _setting(1.5e-4, "Adam epsilon")
    gamma: float = _setting(0.99, "discount factor per agent step")
    n_step: int = _setting(1, "agent steps of reward summed before bootstrapping (1: the one-step DQN target)")
    double_dqn: bool = _setting(False, "use the Double DQN target")
    target_update_interval: int = _setting(1_000, "agent steps between target-network syncs")
    epsilon_start: float = _setting(1.0, "exploration rate at step 0")
    epsilon_end: float = _setting(0.01, "exploration rate after the decay")
    epsilon_decay_steps: int = _setting(1_000_000, "agent steps over which epsilon decays linearly")
    sticky_action_probability: float = _setting(0.0, "chance per frame of repeating the last action")
    precision: str = _setting(
        "auto",
        "compute precision of the hidden layers: float32, bfloat16, or auto (bfloat16 where the CPU has it "
        "natively, else float32; both learn alike, README 'Measured')",
    )
    log_interval: int = _setting(1_000, "agent steps between two rows of losses.csv")
    checkpoint_interval: int = _setting(100_000, "agent steps between two checkpoints")

    def __post_init__(self) -> None:
        """Refuse settings that cannot make a run, naming the setting and its value."""
        positive = (
            "total_steps",
            "num_envs",
            "buffer_size",
            "train_frequency",
            "batch_size",
            "n_step",
            "target_update_interval",
            "epsilon_decay_steps",
            "log_interval",
            "checkpoint_interval",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.total_steps % self.num_envs:
            raise ValueError(
                f"total_steps ({self.total_steps}) must be a multiple of num_envs ({self.num_envs}): "
                "each vector step takes one agent step in every game"
            )
        if self.learning_starts < self.batch_size + self.num_envs:
            raise ValueError(
                f"learning_starts ({self.learning_starts}) must be at least batch_size + num_envs "
                f"({self.batch_size} + {self.num_envs}): the first update draws a batch from the transitions "
                "stored before the vector step under way"
            )
        if self.precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {self.precision!r}")
        for name in ("epsilon_start", "epsilon_end", "gamma", "sticky_action_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def docs(cls) -> dict[str, str]:
        """Each field's one-line description, with its unit."""
        return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DQNConfig:
        """A named set of settings from :data:`PRESETS`, with any field overridden.

        Args:
            name: A key of :data:`PRESETS`, e.g. ``"short"``.
            **overrides: Fields to set on top of the preset.

        Raises:
            ValueError: If there is no such preset, or the settings are invalid.

        Example:
            >>> config = DQNConfig.preset("short", num_envs=1)
            >>> config.n_step, config.num_envs
            (3, 1)
        """
        if name not in PRESETS:
            raise ValueError(f"no preset named {name!r}: the presets are {sorted(PRESETS)}")
        return cls(**{**{field: value for field, (value, _) in PRESETS[name].items()}, **overrides})

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> DQNConfig:
        """The settings a run recorded in its ``config.json``, with any field overridden.

        A run's record reproduces it: ``train --config runs/x/config.json`` (or
        ``DQNConfig.from_file``) starts the same run again. Settings added after the
        record was written take their defaults, as they had then.

        Args:
            path: A ``config.json`` that :func:`train` wrote (e.g. the reference
                agent's, ``dqn_helpers/reference/config.json``).
            **overrides: Fields to set on top of the recorded ones.

        Raises:
            FileNotFoundError: If there is no such file.
            ValueError: If it is not a run's record: not JSON, a setting this version
                does not know, or choices fixed in code (``"fixed"``) other than this
                version's.
        """
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not a run's config.json: {error}") from error
        if not isinstance(record, dict):
            raise ValueError(f"{path} is not a run's config.json: expected a JSON object, got {type(record).__name__}")
        fixed, _ = record.pop("fixed", FIXED_CHOICES), record.pop("compute", None)
        if fixed != FIXED_CHOICES:
            changed = sorted(name for name in {*fixed, *FIXED_CHOICES} if fixed.get(name) != FIXED_CHOICES.get(name))
            raise ValueError(
                f"{path} records a run whose fixed choices differ from this version's ({', '.join(changed)}): "
                "train with the version that wrote it"
            )
        unknown = sorted(set(record) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{path} has settings DQNConfig does not know: {', '.join(unknown)}")
        return cls(**{**record, **overrides})


# Named presets: settings chosen by measurement for one purpose, each with the reason for it.
# Fields a preset leaves out keep DQNConfig's defaults (batch 32, one update every 4 agent steps...).
# "short" leaves Double DQN off: its extra forward pass costs a fifth of each update on a CPU, and
# in a 20-minute run the updates it costs teach more than its steadier target (README, "A short run").
PRESETS: dict[str, dict[str, tuple[Any, str]]] = {
    "short": {
        "total_steps": (
            160_000,
            "17 to 18 minutes of notebook 05's one-game loop on a 2-core CPU with native bfloat16 (three "
            "full runs; 166 agent steps/s in benchmarks/train_speed.py --impl student); 3.6 times slower on "
            "an AVX2 CPU without it",
        ),
        "n_step": (
            3,
            "a reward reaches back 3 agent steps in one update instead of 1: the first points are credited "
            "to the paddle moves that earned them sooner (Hessel et al. 2018)",
        ),
        "learning_rate": (
            2.5e-4,
            "2.5 times the long run's 1e-4, the Nature DQN's own step size: faster early "
            "progress, and the run is too short to need the smaller step's stability",
        ),
        "learning_starts": (
            5_000,
            "a buffer of 5,000 random transitions (about 150 games' worth of lives) is enough "
            "to draw varied batches; the long run's 80,000 would be a third of the run",
        ),
        "epsilon_decay_steps": (
            25_000,
            "random play falls to its floor in the first sixth of the run (25,000 of 160,000 agent steps), "
            "so most of the run's games are played by the network",
        ),
        "target_update_interval": (
            1_000,
            "a target that moves every 250 updates: targets steady enough to chase, "
            "fresh enough to pass newly learned values on within the run",
        ),
        "buffer_size": (
            100_000,
            "the last 100,000 transitions (about 700 MB): the games of the last 10 minutes or so, played by "
            "a network close to today's",
        ),
    },
}


class TrainSummary(NamedTuple):
    """What a finished (or interrupted) run reports."""

    run_dir: Path
    steps: int
    episodes: int
    weights_path: Path | None
    interrupted: bool


def train(config: DQNConfig, run_dir: str | Path, *, progress: bool = True) -> TrainSummary:
    """Train a DQN agent, resuming from ``run_dir``'s checkpoint if there is one.

    Interrupting (Ctrl-C, or the notebook's stop button) saves a checkpoint and
    returns; calling ``train`` again continues from it.

    Args:
        config: The run's settings. When resuming, they must match the saved ones,
            except ``total_steps``, which may grow.
        run_dir: Folder for the logs, checkpoint and final weights.
        progress: Show a tqdm progress bar.

    Returns:
        A :class:`TrainSummary`.

    Raises:
        ValueError: If ``run_dir`` holds a run with other settings.
    """
    run = _start_or_resume(config, Path(run_dir))
    interrupted = False
    try:
        _train_loop(config, run, progress)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        run.close()
    return _finish(run, interrupted)


@dataclass
class _Run:
    """What one call of :func:`train` works with: the run's parts and where it stands."""

    run_dir: Path
    envs: Any  # the vector environment of make_vector_env
    learner: DQNLearner
    replay: VectorReplayBuffer
    rng: np.random.Generator
    step: int  # agent steps, over all sessions of the run
    episodes: int  # full games finished, over all sessions
    hours_before: float  # wall-clock hours of the sessions before this one
    episode_log: _CsvLog
    loss_log: _CsvLog
    started: float = field(default_factory=time.perf_counter)

    def hours(self) -> float:
        """Wall-clock hours of training, across resumed sessions."""
        return self.hours_before + (time.perf_counter() - self.started) / 3600

    def save_checkpoint(self) -> None:
        """Write the run as it stands to ``run_dir/checkpoint``."""
        counters = {"step": self.step, "episodes": self.episodes, "hours": self.hours()}
        _save_checkpoint(self.run_dir, self.learner, self.replay, self.rng, counters)

    def close(self) -> None:
        """Stop the games and close the logs."""
        self.envs.close()
        self.episode_log.close()
        self.loss_log.close()


def _start_or_resume(config: DQNConfig, run_dir: Path) -> _Run:
    """Build the run's parts, restored from its checkpoint if it has one, and record its config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    resuming = _recover_checkpoint(run_dir)
    if resuming:
        _check_same_run(config, json.loads((run_dir / "config.json").read_text()))
    envs = make_vector_env(
        config.game, config.num_envs, training=True, sticky_action_probability=config.sticky_action_probability
    )
    learner = DQNLearner(
        int(envs.single_action_space.n),
        learning_rate=config.learning_rate,
        gamma=config.gamma,
        double_dqn=config.double_dqn,
        adam_epsilon=config.adam_epsilon,
        precision=config.precision,
    )
    replay = VectorReplayBuffer(config.buffer_size, config.num_envs, n_step=config.n_step, gamma=config.gamma)
    rng = np.random.default_rng(config.seed)
    counters = {"step": 0, "episodes": 0, "hours": 0.0}
    if resuming:
        counters = _load_checkpoint(run_dir, learner, replay, rng)
    # "compute" says which path ran on this machine (precision "auto" depends on the CPU).
    config_record = {**dataclasses.asdict(config), "fixed": FIXED_CHOICES, "compute": learner.compute_path}
    (run_dir / "config.json").write_text(json.dumps(config_record, indent=2) + "\n")
    return _Run(
        run_dir,
        envs,
        learner,
        replay,
        rng,
        counters["step"],
        counters["episodes"],
        counters["hours"],
        episode_log=_CsvLog(run_dir / "episodes.csv", EPISODE_FIELDS, after_step=counters["step"]),
        loss_log=_CsvLog(run_dir / "losses.csv", LOSS_FIELDS, after_step=counters["step"]),
    )


def _train_loop(config: DQNConfig, run: _Run, progress: bool) -> None:
    """Act, learn, store, log and checkpoint until ``config.total_steps``; ``run.step`` follows along."""
    policy = QPolicy(run.learner.online_network)
    recent_returns: deque[float] = deque(maxlen=20)
    losses, q_means = [], []
    last_log_time, last_log_step = time.perf_counter(), run.step
    states, _ = run.envs.reset(seed=config.seed + run.episodes)
    with tqdm(total=config.total_steps, initial=run.step, disable=not progress, unit="step", smoothing=0.05) as bar:
        while run.step < config.total_steps:
            # --- act: one action per game, from one batched forward pass ------------
            step = run.step
            epsilon = linear_schedule(config.epsilon_start, config.epsilon_end, config.epsilon_decay_steps, step)
            actions = policy.act(states, run.rng, epsilon)
            next_step = step + config.num_envs

            # --- learn while the games are emulated in the background ----------------
            # The updates due at the agent steps now under way draw from the transitions
            # stored before them (the newest num_envs are not in the buffer yet).
            updates = _multiples(max(step, config.learning_starts - 1), next_step, config.train_frequency)
            batches = [run.replay.sample(config.batch_size, run.rng) for _ in range(updates)]
            run.envs.step_async(actions)  # sampled first: sampling and emulation both need Python's lock
            for batch in batches:
                result = run.learner.train_step(*batch)
                losses.append(result.loss)
                q_means.append(result.mean_q)
            if _multiples(step, next_step, config.target_update_interval):
                run.learner.sync_target()
            next_states, rewards, terminated, truncated, info = run.envs.step_wait()

            # --- store ------------------------------------------------------------------
            run.replay.add(states, actions, rewards, _final_observations(next_states, info), terminated, truncated)
            states = next_states  # easy to forget: the next actions are chosen from here
            run.step = step = next_step
            for game_return, game_length in _finished_games(info):  # full games, not lives
                run.episodes += 1
                recent_returns.append(game_return)
                run.episode_log.write(step, run.episodes, game_return, game_length, epsilon, run.hours())

            # --- log and checkpoint ------------------------------------------------------
            if _multiples(step - config.num_envs, step, config.log_interval):
                now = time.perf_counter()
                steps_per_s = (step - last_log_step) / max(now - last_log_time, 1e-9)
                last_log_time, last_log_step = now, step
                if losses:
                    run.loss_log.write(step, float(np.mean(losses)), float(np.mean(q_means)), steps_per_s)
                bar.set_postfix(
                    recent_return=f"{np.mean(recent_returns):.1f}" if recent_returns else "-",
                    epsilon=f"{epsilon:.3f}",
                    loss=f"{np.mean(losses):.4f}" if losses else "-",
                    refresh=False,
                )
                losses, q_means = [], []
            if _multiples(step - config.num_envs, step, config.checkpoint_interval) and step < config.total_steps:
                run.save_checkpoint()
            bar.update(config.num_envs)


def _finish(run: _Run, interrupted: bool) -> TrainSummary:
    """Checkpoint the run; a finished one also writes its final weights."""
    run.save_checkpoint()
    weights_path = None
    if not interrupted:
        weights_path = run.run_dir / "q_network.weights.h5"
        run.learner.online_network.save_weights(weights_path)
    else:
        print(f"Interrupted at step {run.step:,}: checkpoint saved in {run.run_dir}; call train() again to resume.")
    return TrainSummary(run.run_dir, run.step, run.episodes, weights_path, interrupted)


def export_weights(run_dir: str | Path, path: str | Path) -> Path:
    """Write the online network of a run's checkpoint to a ``.weights.h5`` file.

    Works for finished runs and for runs still going or interrupted: every run
    keeps its newest online weights in ``run_dir/checkpoint``.

    Args:
        run_dir: A folder :func:`train` wrote.
        path: The ``.weights.h5`` file to write; load it with
            :func:`dqn_helpers.networks.load_q_network`.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: If ``run_dir`` has no checkpoint.
    """
    from dqn_helpers.networks import nature_cnn

    run_dir, path = Path(run_dir), Path(path)
    # Read only: a run still training may be swapping checkpoints (its complete ones are never written in place).
    learner_file = run_dir / "checkpoint" / "learner.npz"
    if not learner_file.is_file():
        raise FileNotFoundError(f"no checkpoint in {run_dir}: train() writes run_dir/checkpoint/learner.npz")
    with np.load(learner_file) as arrays:
        online = [arrays[f"online/{i}"] for i in range(sum(key.startswith("online/") for key in arrays.files))]
    network = nature_cnn(int(online[-1].shape[0]))  # the last array is the output layer's bias
    network.set_weights(online)
    path.parent.mkdir(parents=True, exist_ok=True)
    network.save_weights(path)
    return path


def _multiples(start: int, stop: int, interval: int) -> int:
    """How many multiples of ``interval`` lie in ``(start, stop]``: the events due in those agent steps.

    >>> _multiples(0, 4, 4), _multiples(4, 8, 3), _multiples(5, 4, 4)
    (1, 1, 0)
    """
    return max(0, stop // interval - start // interval)


def _final_observations(next_states: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The states the transitions led to: a finished episode's last one, not the next episode's first."""
    if not np.any(info.get("_final_obs", False)):
        return next_states
    final = next_states.copy()
    for i in np.flatnonzero(info["_final_obs"]):
        final[i] = info["final_obs"][i]
    return final


def _finished_games(info: dict[str, Any]) -> list[tuple[float, int]]:
    """(score, length) of each full game that ended in this vector step.

    A game usually ends on a step (its statistics are in the finished episode's
    ``final_info``); rarely it ends inside a wrapper's reset, whose info comes back
    as the vector step's own.
    """
    games = []
    for source in (info.get("final_info", {}), info):
        if "episode" in source:
            for i in np.flatnonzero(source["_episode"]):
                games.append((float(source["episode"]["r"][i]), int(source["episode"]["l"][i])))
    return games


def _check_same_run(config: DQNConfig, saved: dict[str, Any]) -> None:
    ours = dataclasses.asdict(config)
    # A setting added after the run was saved had its default value in that run.
    saved = {**dataclasses.asdict(DQNConfig()), **saved}
    differing = [name for name in ours if name != "total_steps" and saved.get(name) != ours[name]]
    if differing:
        details = ", ".join(f"{name}: saved {saved.get(name)!r}, given {ours[name]!r}" for name in differing)
        raise ValueError(
            f"this run folder holds a run with other settings ({details}); "
            "use another run_dir, or the saved settings to resume"
        )


class _CsvLog:
    """An append-only CSV file that drops rows logged after the checkpoint it resumes from."""

    def __init__(self, path: Path, fields: tuple[str, ...], after_step: int):
        rows = []
        if path.exists():
            with path.open(newline="") as existing:
                rows = [row for row in csv.DictReader(existing) if int(row["step"]) <= after_step]
        self._file = path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(fields)
        self._writer.writerows([row[name] for name in fields] for row in rows)
        self._file.flush()

    def write(self, *values: Any) -> None:
        self._writer.writerow(f"{v:.6g}" if isinstance(v, float) else v for v in values)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _recover_checkpoint(run_dir: Path) -> bool:
    """Finish a checkpoint swap that a crash interrupted; tell whether there is a checkpoint."""
    final, fresh, stale = run_dir / "checkpoint", run_dir / "checkpoint.new", run_dir / "checkpoint.old"
    if not (final / "state.json").exists():
        # state.json is written last: a folder that has it is complete.
        for candidate in (fresh, stale):
            if (candidate / "state.json").exists():
                shutil.rmtree(final, ignore_errors=True)
                candidate.rename(final)
                break
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)
    return (final / "state.json").exists()


def _save_checkpoint(
    run_dir: Path, learner: DQNLearner, replay: VectorReplayBuffer, rng: np.random.Generator, counters: dict[str, Any]
) -> None:
    """Write a complete checkpoint beside the old one, then swap them, so a crash never leaves half of one."""
    final, fresh, stale = run_dir / "checkpoint", run_dir / "checkpoint.new", run_dir / "checkpoint.old"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)
    fresh.mkdir()
    # Compressed: Breakout's screens are mostly black, and a 100,000-transition buffer takes 7.5 MB
    # on disk instead of 706 MB for a few seconds more (benchmarks/checkpoint_size.py).
    np.savez_compressed(fresh / "learner.npz", **learner.get_state())
    np.savez_compressed(fresh / "replay.npz", **replay.state_dict())
    state = {**counters, "rng": rng.bit_generator.state}
    (fresh / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    if final.exists():
        final.rename(stale)
    fresh.rename(final)
    shutil.rmtree(stale, ignore_errors=True)


def _load_checkpoint(
    run_dir: Path, learner: DQNLearner, replay: VectorReplayBuffer, rng: np.random.Generator
) -> dict[str, Any]:
    checkpoint = run_dir / "checkpoint"
    with np.load(checkpoint / "learner.npz") as arrays:
        learner.set_state(dict(arrays))
    with np.load(checkpoint / "replay.npz") as arrays:
        replay.load_state_dict(dict(arrays))
    state = json.loads((checkpoint / "state.json").read_text())
    rng.bit_generator.state = state.pop("rng")
    return state
