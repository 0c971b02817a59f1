"""Training speed on real Breakout: the course's trainer against the naive tutorial loop.

Runs ``--steps`` agent steps of DQN training (batch 32, one update every 4 agent
steps, learning from the start, a fixed exploration rate) and prints one JSON line
per implementation:

- ``steps_per_s``: agent steps per second of wall-clock time, after a warm-up
  (TensorFlow's tracing and XLA's compilation are not counted).
- ``update_ms``: median time of one update (train step) inside the loop, and
  ``update_ms_alone``: the same updates re-run with nothing else going on.
- ``ceiling_steps_per_s``: ``train_frequency / update_ms_alone``, the speed of a
  loop that did nothing but learn; ``fraction_of_ceiling`` is how close we get.
- ``act_ms``: median time to choose the actions of one loop iteration.
- ``replay_bytes_per_transition`` and ``peak_rss_mb`` (this process's peak
  resident memory; each implementation runs in its own process).

``--impl updates`` times the update alone (a Double DQN update of the Nature CNN,
batch 32, Adam, ``--update-repeats`` per process after 5 untimed) along every path
worth trying on a CPU: float32 and bfloat16 (Keras' ``mixed_bfloat16``, Q-values and
loss in float32), each with XLA and as TensorFlow's graph (oneDNN's kernels); float32
with oneDNN switched off (``TF_ENABLE_ONEDNN_OPTS=0``); TensorFlow's thread pools set
by hand; and one forward pass of the online network over the 64 current and next
states that Double DQN needs. Each path runs in its own process (the environment
variables and thread settings only act before TensorFlow starts), ``--rounds`` times,
interleaved, so that a machine whose speed drifts favours none. It prints one JSON
line per path, then one that names the fastest and the path the learner takes by
default on this CPU.

``--impl ours`` runs ``dqn_helpers.training.train`` itself, timing its learner and
policy from outside. ``--impl naive`` is a faithful, self-contained copy of the loop
that popular tutorials use (the keras.io Breakout example among them): float32
stacks kept in Python lists, an eager model call for every greedy action, and an
eager update whose targets come from ``model.predict``. ``--impl both`` (the
default) runs one after the other in separate processes, so both are measured in
one run on the same machine.

Usage:
    python benchmarks/train_speed.py                       # both, 2,000 steps each
    python benchmarks/train_speed.py --impl ours --steps 8000
    python benchmarks/train_speed.py --impl updates       # the update alone, every path
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any, Callable

import numpy as np

BATCH_SIZE = 32
TRAIN_FREQUENCY = 4  # agent steps per update


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def median_ms(seconds: list[float]) -> float:
    """The median of ``seconds``, in milliseconds."""
    return float(np.median(seconds) * 1e3)


def common_fields(impl: str, steps: int, epsilon: float) -> dict[str, Any]:
    """What every result records: the implementation, the run's size and this machine's TensorFlow."""
    import tensorflow as tf

    return {
        "impl": impl,
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "train_frequency": TRAIN_FREQUENCY,
        "epsilon": epsilon,
        "cpus": os.cpu_count(),
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
    }


# --- updates: the update alone, along each compute path ------------------------------------------

# name: (learner settings, environment variables, (intra-op, inter-op) threads or None, fused forward)
UPDATE_PATHS: dict[str, tuple[dict[str, Any], dict[str, str], tuple[int, int] | None, bool]] = {
    "float32_xla": ({"precision": "float32", "jit_compile": True}, {}, None, False),
    "float32_graph": ({"precision": "float32", "jit_compile": False}, {}, None, False),
    "bfloat16_graph": ({"precision": "bfloat16", "jit_compile": False}, {}, None, False),
    "bfloat16_xla": ({"precision": "bfloat16", "jit_compile": True}, {}, None, False),
    "float32_xla_no_onednn": (
        {"precision": "float32", "jit_compile": True},
        {"TF_ENABLE_ONEDNN_OPTS": "0"},
        None,
        False,
    ),
    "float32_graph_no_onednn": (
        {"precision": "float32", "jit_compile": False},
        {"TF_ENABLE_ONEDNN_OPTS": "0"},
        None,
        False,
    ),
    "float32_xla_threads_2_1": ({"precision": "float32", "jit_compile": True}, {}, (2, 1), False),
    "float32_xla_fused_forward": ({"precision": "float32", "jit_compile": True}, {}, None, True),
}


def time_update_path(name: str, repeats: int) -> dict[str, Any]:
    """Median milliseconds of one Double DQN update along one path (run in a fresh process)."""
    settings, _, threads, fused = UPDATE_PATHS[name]
    import tensorflow as tf

    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    from dqn_helpers.learner import DQNLearner, huber_loss, td_targets

    class FusedForwardLearner(DQNLearner):
        """Double DQN with one online forward pass over the current and next states together."""

        def _train_step(self, states, actions, rewards, next_states, terminated, discounts):
            batch = tf.shape(states)[0]
            next_q_target = self.target_network(next_states, training=False)
            variables = self.online_network.trainable_variables
            with tf.GradientTape() as tape:
                q_all = tf.cast(self.online_network(tf.concat([states, next_states], 0), training=True), tf.float32)
                next_q_online = tf.stop_gradient(q_all[batch:])
                targets = tf.stop_gradient(td_targets(rewards, terminated, next_q_target, discounts, next_q_online))
                q_taken = tf.gather(q_all[:batch], actions, axis=1, batch_dims=1)
                loss = tf.reduce_mean(huber_loss(targets - q_taken))
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss, tf.reduce_mean(q_taken)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bfloat16 on a CPU without it warns: the point here is to time it
        learner = (FusedForwardLearner if fused else DQNLearner)(4, double_dqn=True, **settings)
    rng = np.random.default_rng(0)
    batch = (
        rng.integers(0, 256, (BATCH_SIZE, 4, 84, 84), dtype=np.uint8),
        rng.integers(0, 4, BATCH_SIZE),
        rng.choice([0.0, 1.0], BATCH_SIZE).astype(np.float32),
        rng.integers(0, 256, (BATCH_SIZE, 4, 84, 84), dtype=np.uint8),
        (rng.random(BATCH_SIZE) < 0.05).astype(np.float32),
    )
    for _ in range(5):  # tracing and compiling
        learner.train_step(*batch)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        learner.train_step(*batch)
        seconds.append(time.perf_counter() - start)
    return {"path": name, **learner.compute_path, "median_ms": round(median_ms(seconds), 2)}


def run_updates(rounds: int, repeats: int, paths: list[str]) -> None:
    """Time each path ``rounds`` times, interleaved, each in its own process; print JSON lines."""
    from dqn_helpers.learner import cpu_has_native_bfloat16, resolve_precision
    from dqn_helpers.training import DQNConfig

    per_path: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name in paths:
            environment = UPDATE_PATHS[name][1]
            command = [
                sys.executable,
                __file__,
                "--impl",
                "updates",
                "--update-path",
                name,
                "--update-repeats",
                str(repeats),
            ]
            done = subprocess.run(
                command, check=True, capture_output=True, text=True, env={**os.environ, **environment}
            )
            per_path[name].append(json.loads(done.stdout.strip().splitlines()[-1])["median_ms"])
    for name, values in per_path.items():
        settings, environment, threads, fused = UPDATE_PATHS[name]
        print(
            json.dumps(
                {
                    **common_fields("updates", 0, 0.0),
                    "path": name,
                    **settings,
                    "environment": environment,
                    "threads": threads,
                    "fused_forward": fused,
                    "double_dqn": True,
                    "repeats": repeats,
                    "median_ms": round(float(np.median(values)), 2),
                    "rounds_ms": values,
                }
            ),
            flush=True,
        )
    medians = {name: float(np.median(values)) for name, values in per_path.items()}
    # The path train() takes with its default settings on this CPU (XLA for float32, the graph for bfloat16).
    precision = resolve_precision(DQNConfig().precision)
    default = f"{precision}_{'xla' if precision == 'float32' else 'graph'}"
    summary = {
        "impl": "updates",
        "cpu_native_bfloat16": cpu_has_native_bfloat16(),
        "fastest": min(medians, key=medians.get),
        "fastest_ms": round(min(medians.values()), 2),
        "default_path": default,
    }
    if default in medians:
        summary["default_ms"] = round(medians[default], 2)
        summary["ceiling_steps_per_s_at_default"] = round(TRAIN_FREQUENCY / medians[default] * 1e3, 1)
    print(json.dumps(summary), flush=True)


# --- ours: dqn_helpers.training.train, timed from outside --------------------------------------


def timed(method: Callable, seconds: list[tuple[float, float]], calls: deque[tuple] | None = None) -> Callable:
    """Wrap a method so that each call's start and duration (and, optionally, its arguments) are recorded."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        result = method(self, *args, **kwargs)
        seconds.append((start, time.perf_counter() - start))
        if calls is not None:
            calls.append((self, args))
        return result

    return wrapper


def run_ours(steps: int, warmup: int, epsilon: float, num_envs: int, precision: str) -> dict[str, Any]:
    """Time the course's trainer (``train``'s loop: vector games, batched actions, the learner)."""
    from dqn_helpers.learner import DQNLearner
    from dqn_helpers.policies import QPolicy
    from dqn_helpers.replay import VectorReplayBuffer
    from dqn_helpers.training import DQNConfig, train

    update_calls_timing: list[tuple[float, float]] = []
    act_calls: list[tuple[float, float]] = []
    update_calls: deque[tuple] = deque(maxlen=100)  # the last batches, to re-run alone
    DQNLearner.train_step = timed(DQNLearner.train_step, update_calls_timing, update_calls)
    QPolicy.act = timed(QPolicy.act, act_calls)
    config = DQNConfig(
        total_steps=warmup + steps,
        num_envs=num_envs,
        buffer_size=100_000,
        learning_starts=BATCH_SIZE + num_envs,  # learning from the start
        train_frequency=TRAIN_FREQUENCY,
        batch_size=BATCH_SIZE,
        epsilon_start=epsilon,
        epsilon_end=epsilon,
        checkpoint_interval=10**9,
        precision=precision,
    )
    with tempfile.TemporaryDirectory() as run_dir:
        train(config, run_dir, progress=False)
    # One act call per loop iteration (num_envs agent steps): time from the first
    # iteration after the warm-up to the last one.
    first = -(-warmup // num_envs)
    steps_per_s = (len(act_calls) - 1 - first) * num_envs / (act_calls[-1][0] - act_calls[first][0])
    warm_updates = (warmup - BATCH_SIZE) // TRAIN_FREQUENCY
    update_seconds = [seconds for _, seconds in update_calls_timing[warm_updates:]]

    # The same updates again, alone: the learner, on the batches it last trained on.
    learner, _ = update_calls[-1]
    alone: list[float] = []
    for _, batch in list(update_calls):
        start = time.perf_counter()
        learner.train_step(*batch)
        alone.append(time.perf_counter() - start)
    update_alone = median_ms(alone[10:])
    replay = VectorReplayBuffer(config.buffer_size, num_envs)
    return {
        **common_fields("ours", steps, epsilon),
        **learner.compute_path,
        "num_envs": num_envs,
        "steps_per_s": round(steps_per_s, 1),
        "update_ms": round(median_ms(update_seconds), 2),
        "update_ms_alone": round(update_alone, 2),
        "ceiling_steps_per_s": round(TRAIN_FREQUENCY / update_alone * 1e3, 1),
        "fraction_of_ceiling": round(steps_per_s / (TRAIN_FREQUENCY / update_alone * 1e3), 3),
        "act_ms": round(median_ms([seconds for _, seconds in act_calls[first:]]), 2),
        "replay_bytes_per_transition": round(replay.nbytes / config.buffer_size, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


# --- student: notebook 05's train_loop, one game at a time --------------------------------------

NOTEBOOK_05 = Path(__file__).resolve().parents[1] / "solutions" / "05_training_loop" / "05_training_loop.ipynb"


def notebook_05_loop() -> dict[str, Any]:
    """The names notebook 05's cells define for its run: TrainingLog and train_loop (the solution)."""
    import csv

    from tqdm.auto import tqdm

    from dqn_helpers import schedules

    cells = {
        cell["metadata"]["nbgrader"]["grade_id"]: "".join(cell["source"])
        for cell in json.loads(NOTEBOOK_05.read_text())["cells"]
        if "nbgrader" in cell["metadata"]
    }
    namespace: dict[str, Any] = {"csv": csv, "time": time, "np": np, "tqdm": tqdm, "schedules": schedules}
    for grade_id in ("training_log", "train_loop"):
        exec(compile(cells[grade_id], f"{NOTEBOOK_05.name}:{grade_id}", "exec"), namespace)
    return namespace


def run_student(steps: int, warmup: int, epsilon: float, precision: str) -> dict[str, Any]:
    """Notebook 05's own loop (the solution of its exercise), with the parts notebook 05 gives it."""
    from dqn_helpers.envs import make_env
    from dqn_helpers.learner import DQNLearner
    from dqn_helpers.policies import QPolicy
    from dqn_helpers.replay import ReplayBuffer
    from dqn_helpers.training import DQNConfig

    update_calls: list[tuple[float, float]] = []
    act_calls: list[tuple[float, float]] = []
    DQNLearner.train_step = timed(DQNLearner.train_step, update_calls)
    QPolicy.act = timed(QPolicy.act, act_calls)
    notebook = notebook_05_loop()
    config = DQNConfig(
        num_envs=1,
        total_steps=warmup + steps,
        buffer_size=100_000,
        learning_starts=BATCH_SIZE + 1,
        train_frequency=TRAIN_FREQUENCY,
        batch_size=BATCH_SIZE,
        epsilon_start=epsilon,
        epsilon_end=epsilon,
        precision=precision,
    )
    env = make_env(config.game, training=True)
    learner = DQNLearner(int(env.action_space.n), precision=config.precision)
    with tempfile.TemporaryDirectory() as run_dir:
        log = notebook["TrainingLog"](Path(run_dir))
        notebook["train_loop"](
            config,
            env,
            learner,
            ReplayBuffer(config.buffer_size),
            QPolicy(learner.online_network),
            np.random.default_rng(0),
            log,
            progress=False,
        )
        log.close()
    env.close()
    # One act call per agent step: time from the first step after the warm-up to the last one.
    steps_per_s = (len(act_calls) - 1 - warmup) / (act_calls[-1][0] - act_calls[warmup][0])
    update_ms = median_ms([seconds for _, seconds in update_calls[(warmup - BATCH_SIZE) // TRAIN_FREQUENCY :]])
    return {
        **common_fields("student", steps, epsilon),
        **learner.compute_path,
        "num_envs": 1,
        "steps_per_s": round(steps_per_s, 1),
        "update_ms": round(update_ms, 2),
        "ceiling_steps_per_s": round(TRAIN_FREQUENCY / update_ms * 1e3, 1),
        "fraction_of_ceiling": round(steps_per_s / (TRAIN_FREQUENCY / update_ms * 1e3), 3),
        "act_ms": round(median_ms([seconds for _, seconds in act_calls[warmup:]]), 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


# --- naive: the popular tutorial loop, self-contained ----------------------------------------------


def run_naive(steps: int, warmup: int, epsilon: float) -> dict[str, Any]:
    """The keras.io-style loop, kept as it is written there but for the benchmark's settings."""
    import keras
    import tensorflow as tf
    from keras import layers

    from dqn_helpers.envs import make_env

    env = make_env("Breakout", training=True)
    num_actions = int(env.action_space.n)

    def create_q_model() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input(shape=(4, 84, 84)),
                layers.Lambda(lambda tensor: keras.ops.transpose(tensor, [0, 2, 3, 1]), output_shape=(84, 84, 4)),
                layers.Conv2D(32, 8, strides=4, activation="relu"),
                layers.Conv2D(64, 4, strides=2, activation="relu"),
                layers.Conv2D(64, 3, strides=1, activation="relu"),
                layers.Flatten(),
                layers.Dense(512, activation="relu"),
                layers.Dense(num_actions, activation="linear"),
            ]
        )

    model, model_target = create_q_model(), create_q_model()
    optimizer = keras.optimizers.Adam(learning_rate=0.00025, clipnorm=1.0)
    loss_function = keras.losses.Huber()
    gamma, max_memory_length, update_target_network = 0.99, 100_000, 10_000
    action_history, state_history, state_next_history, rewards_history, done_history = [], [], [], [], []
    rng = np.random.default_rng(0)
    update_seconds, act_seconds = [], []

    observation, _ = env.reset(seed=0)
    state = np.array(observation, dtype=np.float32) / 255.0
    start = None
    for frame_count in range(1, warmup + steps + 1):
        if frame_count == warmup + 1:
            start = time.perf_counter()
        if epsilon > rng.random():
            action = int(rng.integers(num_actions))
        else:
            act_start = time.perf_counter()
            state_tensor = keras.ops.expand_dims(keras.ops.convert_to_tensor(state), 0)
            action_probs = model(state_tensor, training=False)
            action = int(keras.ops.argmax(action_probs[0]).numpy())
            if frame_count > warmup:
                act_seconds.append(time.perf_counter() - act_start)
        observation, reward, terminated, truncated, _ = env.step(action)
        state_next = np.array(observation, dtype=np.float32) / 255.0
        action_history.append(action)
        state_history.append(state)
        state_next_history.append(state_next)
        done_history.append(terminated)
        rewards_history.append(reward)
        state = state_next

        if frame_count % TRAIN_FREQUENCY == 0 and len(done_history) > BATCH_SIZE:
            indices = rng.choice(len(done_history), size=BATCH_SIZE)
            state_sample = np.array([state_history[i] for i in indices])
            state_next_sample = np.array([state_next_history[i] for i in indices])
            rewards_sample = np.array([rewards_history[i] for i in indices], dtype=np.float32)
            action_sample = [action_history[i] for i in indices]
            done_sample = keras.ops.convert_to_tensor([float(done_history[i]) for i in indices])
            update_start = time.perf_counter()  # the train step proper, as for ours
            future_rewards = model_target.predict(state_next_sample, verbose=0)
            # keras.io subtracts done_sample here as well (a terminal target of -1);
            # this benchmark keeps the standard target, which costs the same.
            updated_q_values = rewards_sample + gamma * keras.ops.amax(future_rewards, axis=1)
            updated_q_values = updated_q_values * (1 - done_sample)
            masks = keras.ops.one_hot(action_sample, num_actions)
            with tf.GradientTape() as tape:
                q_values = model(state_sample)
                q_action = keras.ops.sum(keras.ops.multiply(q_values, masks), axis=1)
                loss = loss_function(updated_q_values, q_action)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            update_seconds.append(time.perf_counter() - update_start)
        if frame_count % update_target_network == 0:
            model_target.set_weights(model.get_weights())
        if len(rewards_history) > max_memory_length:
            for history in (rewards_history, state_history, state_next_history, action_history, done_history):
                del history[:1]
        if terminated or truncated:
            observation, _ = env.reset()
            state = np.array(observation, dtype=np.float32) / 255.0
    elapsed = time.perf_counter() - start
    env.close()

    warm_updates = (warmup - BATCH_SIZE) // TRAIN_FREQUENCY
    update_ms = median_ms(update_seconds[warm_updates:])
    # Each transition keeps two float32 stacks, plus five list slots (8-byte pointers).
    per_transition = state_history[0].nbytes + state_next_history[0].nbytes + 5 * 8
    return {
        **common_fields("naive", steps, epsilon),
        "num_envs": 1,
        "steps_per_s": round(steps / elapsed, 1),
        "update_ms": round(update_ms, 2),
        "update_ms_alone": round(update_ms, 2),  # nothing overlaps its updates
        "ceiling_steps_per_s": round(TRAIN_FREQUENCY / update_ms * 1e3, 1),
        "fraction_of_ceiling": round(steps / elapsed / (TRAIN_FREQUENCY / update_ms * 1e3), 3),
        "act_ms": round(median_ms(act_seconds), 2),
        "replay_bytes_per_transition": per_transition,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    """Run the implementations asked for and print one JSON object per result."""
    from dqn_helpers.training import DQNConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["ours", "naive", "student", "both", "updates"], default="both")
    parser.add_argument(
        "--rounds", type=int, default=2, help="--impl updates: times each path is measured, interleaved"
    )
    parser.add_argument("--update-repeats", type=int, default=40, help="--impl updates: updates timed per process")
    parser.add_argument(
        "--paths", default=",".join(UPDATE_PATHS), help="--impl updates: the paths to time, comma-separated"
    )
    parser.add_argument("--update-path", choices=sorted(UPDATE_PATHS), help=argparse.SUPPRESS)  # one path, in a child
    parser.add_argument("--steps", type=int, default=2_000, help="agent steps timed")
    parser.add_argument(
        "--warmup", type=int, default=400, help="agent steps before the timing starts (tracing, compilation)"
    )
    parser.add_argument(
        "--epsilon", type=float, default=0.05, help="fixed exploration rate (0.05: most actions greedy)"
    )
    parser.add_argument("--num-envs", type=int, default=DQNConfig().num_envs, help="games played at once (ours)")
    parser.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default=DQNConfig().precision,
        help="compute precision of the learner (ours, student); default: DQNConfig's",
    )
    args = parser.parse_args()
    if args.impl == "updates":
        if args.update_path:
            print(json.dumps(time_update_path(args.update_path, args.update_repeats)), flush=True)
        else:
            paths = args.paths.split(",")
            unknown = sorted(set(paths) - set(UPDATE_PATHS))
            if unknown or args.rounds < 1 or args.update_repeats < 1:
                parser.error(
                    f"--paths must name paths of {sorted(UPDATE_PATHS)} and --rounds, --update-repeats be "
                    f"positive; got unknown {unknown}, {args.rounds}, {args.update_repeats}"
                )
            run_updates(args.rounds, args.update_repeats, paths)
        return
    if args.steps <= 0:
        parser.error(f"--steps must be positive, got {args.steps}")
    if args.warmup < BATCH_SIZE + args.num_envs:
        parser.error(
            f"--warmup must be at least batch size + num_envs ({BATCH_SIZE + args.num_envs}), got {args.warmup}"
        )
    if args.impl == "both":
        for impl in ("naive", "student", "ours"):
            command = [
                sys.executable,
                __file__,
                "--impl",
                impl,
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--epsilon",
                str(args.epsilon),
                "--num-envs",
                str(args.num_envs),
                "--precision",
                args.precision,
            ]
            subprocess.run(command, check=True)
        return
    if args.impl == "ours":
        result = run_ours(args.steps, args.warmup, args.epsilon, args.num_envs, args.precision)
    elif args.impl == "student":
        result = run_student(args.steps, args.warmup, args.epsilon, args.precision)
    else:
        result = run_naive(args.steps, args.warmup, args.epsilon)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
