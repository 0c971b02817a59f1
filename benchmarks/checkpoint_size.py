"""A training run's checkpoint on disk: its size and the time to write and read it, stored and compressed.

A checkpoint must hold everything a resume needs, the replay buffer above all (one
84x84 frame per transition). This measures what that costs, written as
``np.savez`` stores it and as ``np.savez_compressed`` does (what the trainer and
notebook 05 use), for:

- by default, a buffer of ``--transitions`` transitions filled by playing real
  Breakout at random (frames are what decide how well they compress), and a learner
  after ``--updates`` updates from it (so that Adam's moments are not zeros);
- with ``--checkpoint DIR``, the ``learner.npz`` and ``replay.npz`` of a real run's
  checkpoint folder (e.g. notebook 05's ``runs/my_dqn/checkpoint``).

Prints one JSON line: megabytes and seconds to write and to read back, each way.

Usage:
    python benchmarks/checkpoint_size.py                      # 100,000 transitions, notebook 05's buffer
    python benchmarks/checkpoint_size.py --checkpoint notebooks/runs/my_dqn/checkpoint
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm


def _filled(transitions: int, updates: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """A replay buffer of real random Breakout play and a learner trained a little on it, as arrays."""
    from dqn_helpers.envs import make_env
    from dqn_helpers.learner import DQNLearner
    from dqn_helpers.replay import ReplayBuffer

    env = make_env("Breakout", training=True)
    replay = ReplayBuffer(transitions, n_step=3, gamma=0.99)
    rng = np.random.default_rng(seed)
    state, _ = env.reset(seed=seed)
    for _ in tqdm(range(transitions), desc="random play", unit="step"):
        action = int(rng.integers(env.action_space.n))
        next_state, reward, terminated, truncated, _ = env.step(action)
        replay.add(state, action, reward, next_state, terminated, truncated)
        state = next_state if not (terminated or truncated) else env.reset()[0]
    env.close()
    learner = DQNLearner(int(env.action_space.n))
    for _ in range(updates):
        learner.train_step(*replay.sample(32, rng))
    return {"learner": learner.get_state(), "replay": replay.state_dict()}


def _measure(parts: dict[str, dict[str, np.ndarray]], folder: Path, compressed: bool) -> dict[str, float]:
    save = np.savez_compressed if compressed else np.savez
    started = time.perf_counter()
    for name, arrays in parts.items():
        save(folder / f"{name}.npz", **arrays)
    written = time.perf_counter() - started
    started = time.perf_counter()
    for name in parts:
        with np.load(folder / f"{name}.npz") as arrays:
            {key: arrays[key] for key in arrays.files}
    read = time.perf_counter() - started
    sizes = {name: (folder / f"{name}.npz").stat().st_size / 1e6 for name in parts}
    return {
        "megabytes": round(sum(sizes.values()), 1),
        "replay_megabytes": round(sizes["replay"], 1),
        "write_s": round(written, 2),
        "read_s": round(read, 2),
    }


def main() -> None:
    """Measure a checkpoint stored and compressed; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=100_000, help="replay capacity, filled (notebook 05's)")
    parser.add_argument("--updates", type=int, default=20, help="updates before measuring (Adam's moments)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, help="measure this checkpoint folder's learner.npz and replay.npz")
    args = parser.parse_args()
    if args.checkpoint is not None:
        missing = [name for name in ("learner.npz", "replay.npz") if not (args.checkpoint / name).is_file()]
        if missing:
            parser.error(f"{args.checkpoint} is not a checkpoint folder: expected {' and '.join(missing)} in it")
        parts = {}
        for name in ("learner", "replay"):
            with np.load(args.checkpoint / f"{name}.npz") as arrays:
                parts[name] = {key: arrays[key] for key in arrays.files}
        source = str(args.checkpoint)
    else:
        if args.transitions <= 0:
            parser.error(f"--transitions must be positive, got {args.transitions}")
        parts = _filled(args.transitions, args.updates, args.seed)
        source = f"{args.transitions} transitions of random Breakout play"
    raw = sum(array.nbytes for arrays in parts.values() for array in arrays.values()) / 1e6
    with tempfile.TemporaryDirectory() as scratch:
        stored = _measure(parts, Path(scratch), compressed=False)
        compressed = _measure(parts, Path(scratch), compressed=True)
    print(
        json.dumps(
            {
                "source": source,
                "array_megabytes": round(raw, 1),
                "savez": stored,
                "savez_compressed": compressed,
                "ratio": round(stored["megabytes"] / compressed["megabytes"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
