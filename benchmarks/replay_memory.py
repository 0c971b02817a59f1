"""Replay memory at full size: fill the trainer's replay buffer and measure what it takes.

Fills a ``VectorReplayBuffer`` of ``--capacity`` transitions (1,000,000 by default,
the Nature DQN size), laid out as the trainer lays it out (``--num-envs`` streams),
with real-sized 84x84 frames in episodes of ``--episode-length`` agent steps, then
samples from it. Prints one JSON line: bytes per transition (the arrays' size over
the capacity), this process's peak resident memory, and the time to fill and to
sample a batch of 32.

Frames are random bytes, not emulator frames: the buffer's arrays have a fixed
size, so what the frames show changes no number here, and filling a million of
them from the emulator would take an hour.

Usage:
    python benchmarks/replay_memory.py
    python benchmarks/replay_memory.py --capacity 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
from tqdm import tqdm

from dqn_helpers.replay import VectorReplayBuffer

FRAME_POOL = 512  # distinct random frames, cycled (generating a million would dominate the run)
# DQNConfig's default; not imported from dqn_helpers.training, whose TensorFlow
# would add about 0.6 GB to the resident memory measured here.
NUM_ENVS = 4


def main() -> None:
    """Fill a replay memory of the given capacity and print its size and speed as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", type=int, default=1_000_000, help="transitions")
    parser.add_argument("--num-envs", type=int, default=NUM_ENVS)
    parser.add_argument("--episode-length", type=int, default=1_000, help="agent steps per episode")
    args = parser.parse_args()
    if args.episode_length <= 0:
        parser.error(f"--episode-length must be positive, got {args.episode_length}")

    rng = np.random.default_rng(0)
    buffer = VectorReplayBuffer(args.capacity, args.num_envs)
    frames = rng.integers(0, 256, size=(FRAME_POOL, 84, 84), dtype=np.uint8)
    states = np.zeros((args.num_envs, 4, 84, 84), np.uint8)
    actions = np.zeros(args.num_envs, np.int64)
    rewards = np.zeros(args.num_envs, np.float32)
    truncated = np.zeros(args.num_envs, bool)
    steps = args.capacity // args.num_envs
    start = time.perf_counter()
    for t in tqdm(range(steps), unit="vector step", mininterval=2):
        next_states = np.concatenate(
            [states[:, 1:], np.broadcast_to(frames[t % FRAME_POOL], (args.num_envs, 1, 84, 84))], axis=1
        )
        terminated = np.full(args.num_envs, (t + 1) % args.episode_length == 0)
        buffer.add(states, actions, rewards, next_states, terminated, truncated)
        states = np.zeros_like(states) if terminated[0] else next_states
    fill_seconds = time.perf_counter() - start

    sample_seconds = []
    for _ in range(200):
        begin = time.perf_counter()
        buffer.sample(32, rng)
        sample_seconds.append(time.perf_counter() - begin)
    peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "capacity": args.capacity,
                "num_envs": args.num_envs,
                "transitions_held": len(buffer),
                "replay_bytes_per_transition": round(buffer.nbytes / args.capacity, 1),
                "replay_gb": round(buffer.nbytes / 1e9, 3),
                "peak_rss_mb": round(peak_rss_bytes / 1e6, 1),
                "peak_rss_gb": round(peak_rss_bytes / 1e9, 3),
                "fill_seconds": round(fill_seconds, 1),
                "sample_32_ms": round(float(np.median(sample_seconds)) * 1e3, 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
