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
from collections import deque
from typing import Any, Callable

import numpy as np

BATCH_SIZE = 32
TRAIN_FREQUENCY = 4  # agent steps per update


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def median_ms(seconds: list[float]) -> float:
    return float(np.median(seconds) * 1e3)


def common_fields(impl: str, steps: int, epsilon: float) -> dict[str, Any]:
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


def run_ours(steps: int, warmup: int, epsilon: float, num_envs: int) -> dict[str, Any]:
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
    from dqn_helpers.training import DQNConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["ours", "naive", "both"], default="both")
    parser.add_argument("--steps", type=int, default=2_000, help="agent steps timed")
    parser.add_argument("--warmup", type=int, default=400, help="agent steps before the timing starts (tracing, compilation)")
    parser.add_argument("--epsilon", type=float, default=0.05, help="fixed exploration rate (0.05: most actions greedy)")
    parser.add_argument("--num-envs", type=int, default=DQNConfig().num_envs, help="games played at once (ours)")
    args = parser.parse_args()
    if args.steps <= 0:
        parser.error(f"--steps must be positive, got {args.steps}")
    if args.warmup < BATCH_SIZE + args.num_envs:
        parser.error(f"--warmup must be at least batch size + num_envs ({BATCH_SIZE + args.num_envs}), got {args.warmup}")
    if args.impl == "both":
        for impl in ("naive", "ours"):
            command = [sys.executable, __file__, "--impl", impl, "--steps", str(args.steps), "--warmup", str(args.warmup),
                       "--epsilon", str(args.epsilon), "--num-envs", str(args.num_envs)]  # fmt: skip
            subprocess.run(command, check=True)
        return
    if args.impl == "ours":
        result = run_ours(args.steps, args.warmup, args.epsilon, args.num_envs)
    else:
        result = run_naive(args.steps, args.warmup, args.epsilon)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
