"""How a trained agent plays full games: its scores, how long it waits to serve, whether it tunnels.

After a lost life, Breakout waits for FIRE before it serves the next ball. An agent
that has not learnt this well stands still until it happens to press FIRE, often by
an epsilon-random action; notebook 06 tells students what to expect of their own
agent from this measure, for notebook 05's agent and the reference agent.

An agent that tunnels clears a column of bricks and sends the ball through it: the
ball then bounces between the top wall and the bricks, scoring without the paddle.
The script counts, per game, the agent steps that end with the ball above the top
row of bricks, which only a tunnel lets it reach.

Plays ``--games`` full games by the evaluation protocol (all lives, up to 30 random
no-ops, epsilon 0.05, 18,000 frames at most), game ``i`` seeded with ``--seed + i``,
and prints one JSON line: the scores, the agent steps from each lost life to the
agent's first FIRE after it (15 agent steps are one second of play), and each game's
agent steps with the ball above the bricks and the first of them (null if none).

Usage:
    python benchmarks/agent_behaviour.py                                   # the reference agent
    python benchmarks/agent_behaviour.py --weights runs/my_dqn/q_network.weights.h5
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

FIRE = 1  # Breakout's action that serves the ball


def play(weights: Path | None, games: int, seed: int, max_episode_frames: int) -> dict:
    """Play the games and measure them (see the module's docstring)."""
    from dqn_helpers import reference
    from dqn_helpers.envs import make_env
    from dqn_helpers.evaluation import EVAL_EPSILON, ball_above_the_bricks
    from dqn_helpers.networks import load_q_network
    from dqn_helpers.policies import QPolicy

    network = reference.load_network() if weights is None else load_q_network(weights, 4)
    policy = QPolicy(network)
    scores, waits, above, first_above = [], [], [], []
    with make_env("Breakout", training=False, max_episode_frames=max_episode_frames) as env:
        for game in range(games):
            rng = np.random.default_rng(seed + game)
            state, info = env.reset(seed=seed + game)
            lives, waiting, score, steps_above = info["lives"], None, 0.0, []
            for step in itertools.count():
                action = policy(state, rng, EVAL_EPSILON)
                if waiting is not None:
                    waiting += 1
                    if action == FIRE:
                        waits.append(waiting)
                        waiting = None
                state, reward, terminated, truncated, info = env.step(action)
                score += reward
                if ball_above_the_bricks(env.unwrapped.ale.getScreenRGB()):
                    steps_above.append(step)
                if info["lives"] < lives and not terminated:
                    waiting = 0
                lives = info["lives"]
                if terminated or truncated:
                    break
            scores.append(score)
            above.append(len(steps_above))
            first_above.append(steps_above[0] if steps_above else None)
    return {
        "agent": "reference" if weights is None else str(weights),
        "games": games,
        "seed": seed,
        "scores": scores,
        "mean_score": float(np.mean(scores)),
        "steps_to_fire_after_a_lost_life": waits,
        "median_steps_to_fire": float(np.median(waits)) if waits else None,
        "max_steps_to_fire": max(waits) if waits else None,
        "steps_with_the_ball_above_the_bricks": above,
        "first_step_with_the_ball_above_the_bricks": first_above,
    }


def main() -> None:
    """Parse the arguments, refuse bad ones, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--weights", type=Path, help="an agent's q_network.weights.h5 (default: the reference agent)")
    parser.add_argument("--games", type=int, default=10, help="full games to play (default 10)")
    parser.add_argument("--seed", type=int, default=3, help="game i is seeded with seed + i (default 3)")
    parser.add_argument("--max-episode-frames", type=int, default=18_000, help="emulator frames per game at most")
    args = parser.parse_args()
    if args.weights is not None and not args.weights.is_file():
        parser.error(f"--weights {args.weights}: no such file; expected a q_network.weights.h5 written by training")
    if args.games <= 0:
        parser.error(f"--games must be positive, got {args.games}")
    print(json.dumps(play(args.weights, args.games, args.seed, args.max_episode_frames)))


if __name__ == "__main__":
    main()
