"""Visible checks of notebook 07, Debugging a DQN.

Notebook 07 hands students a complete Keras DQN script with five planted classic
mistakes: a convolution's stride given as the third positional argument, the batch's
fields unpacked in the wrong order, a max over the whole batch, a terminal target
forced to -1, and a loss on ``max_a Q(s, a)``. Each check tests one fixed function of
the script on numbers small enough to work out by hand, and names the planted mistake
(or another classic one) when it sees it.

The script's functions, as the notebook defines them:
``build_model(num_actions, input_shape)``; ``sample_batch(memory, batch_size, rng)``
over transitions ``(state, action, reward, next_state, done)``, returning
``(states, actions, rewards, next_states, dones)``; ``compute_targets(rewards,
dones, next_q_values, gamma)`` in NumPy; and ``train_step(model, target_model,
optimizer, states, actions, rewards, next_states, dones) -> loss``, which calls
``compute_targets``. Each check tests only its own function: the train step runs
with the package's ``compute_targets`` in place of the student's, so one mistake
costs one exercise.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import numpy as np

from dqn_helpers._tensorflow import keras, tf
from dqn_helpers.checks import SHAPE_HINTS, as_numbers, call_answer, close, judged_alone, name_the_mistake
from dqn_helpers.checks.q_network import (
    check_q_network_architecture,
    huber,
    quiet_tensorflow,
    tiny_batch,
    tiny_q_network,
)
from dqn_helpers.envs import STATE_SHAPE

__all__ = [
    "FIELDS",
    "check_build_model",
    "check_compute_targets_per_sample",
    "check_compute_targets_terminal",
    "check_sample_batch",
    "check_targets_by_hand",
    "check_train_step_action_taken",
    "reference_compute_targets",
]

FIELDS = ("states", "actions", "rewards", "next_states", "dones")  # the order the loop stores and train_step takes
SGD_LEARNING_RATE = 0.05  # one plain gradient step moves each weight by exactly -lr * gradient


def check_build_model(
    build_model: Callable, num_actions: int = 4, input_shape: tuple[int, int, int] = STATE_SHAPE
) -> None:
    """Check that the script's ``build_model`` is the Nature CNN, stride by stride.

    Raises:
        AssertionError: Naming the layer that differs from the paper, e.g. a
            convolution whose stride came from a positional argument meant as the
            kernel's second side.
    """
    check_q_network_architecture(build_model, num_actions, input_shape, name="build_model")


# --- the hand-made batch's targets, by hand ----------------------------------------------------

# The notebook's table: rewards, dones and the target network's Q-values of the three next states.
HAND_REWARDS = np.array([0.0, 1.0, 0.0])
HAND_DONES = np.array([0.0, 1.0, 0.0])
HAND_NEXT_Q = np.array([[0.5, 2.0, 1.0, 0.0], [3.0, 1.0, 4.0, 2.0], [1.0, 0.0, 0.0, 5.0]])
HAND_GAMMA = 0.99


def check_targets_by_hand(hand_targets) -> None:
    """Check the three targets the student worked out by hand from the notebook's table.

    The comparison cell before it prints "agree" wherever the hand and the script's
    ``compute_targets`` give the same number, which a copy of the script's (wrong)
    output would do too: this check grades the hand's own numbers.

    Raises:
        AssertionError: Saying which transition is wrong and why: the script's -1 for
            a last step, bootstrapping past the end of the game, a missing discount,
            a mean or a sum in place of the max, or the Q-value of another action.
    """
    hand = as_numbers(hand_targets, "hand_targets")
    if hand.shape != (3,):
        raise AssertionError(
            f"hand_targets must be a list of three numbers, one per transition, got shape {hand.shape}"
        )
    best = HAND_NEXT_Q.max(axis=1)
    expected = HAND_REWARDS + HAND_GAMMA * (1.0 - HAND_DONES) * best
    for i, (got, want) in enumerate(zip(hand, expected)):
        if np.isclose(got, want, atol=1e-3):
            continue
        reward, next_q = HAND_REWARDS[i], HAND_NEXT_Q[i]
        if HAND_DONES[i]:
            causes = {
                -1.0: "-1 is what the script's compute_targets gives a last step, not what it should be",
                reward + HAND_GAMMA * best[i]: "it adds 0.99 * max Q(s', a), but done is True: nothing comes after "
                "this step to bootstrap from",
                0.0: "the step earned its reward before the game ended: the target keeps it",
            }
            hint = "the target of a step that ended the game is its reward alone"
        else:
            causes = {
                reward + best[i]: "the max Q(s', a) is not discounted: multiply it by gamma = 0.99",
                reward + HAND_GAMMA * next_q.mean(): "it averages the four Q-values: take their max",
                reward + HAND_GAMMA * next_q.sum(): "it sums the four Q-values: take their max",
                HAND_GAMMA * best[i]: "the reward is missing",
            }
            causes.update(
                {
                    reward + HAND_GAMMA * q: f"it takes the Q-value of {name}, not the largest of the four"
                    for name, q in zip(("NOOP", "FIRE", "RIGHT", "LEFT"), next_q)
                    if q != best[i]
                }
            )
            hint = "the target is r + 0.99 * max over the four Q-values of s'"
        cause = next((why for value, why in causes.items() if np.isclose(got, value, atol=1e-3)), None)
        raise AssertionError(
            f"transition {i}: your target is {got:.4f}, which is not right: "
            + (cause if cause else hint)
            + (f" ({hint})" if cause else "")
        )


# --- sample_batch ----------------------------------------------------------------------------


def _memory(size: int, seed: int) -> tuple[collections.deque, dict[str, np.ndarray]]:
    """Transitions told apart by every field: state i is filled with i, and no two fields hold the same numbers.

    Rewards are clipped Breakout rewards (0 or 1), as the script's memory holds them,
    and actions 0-3: swapped, the two would still make a batch that runs.
    """
    rng = np.random.default_rng(seed)
    stored = {
        "states": np.stack([np.full((2, 3, 3), i, np.uint8) for i in range(size)]),
        "actions": (np.arange(size) + 2) % 4,
        "rewards": (rng.permutation(size) % 2).astype(np.float32),
        "next_states": np.stack([np.full((2, 3, 3), 100 + i, np.uint8) for i in range(size)]),
        "dones": (np.arange(size) % 3 == 1).astype(np.float32),
    }
    memory = collections.deque(
        (
            stored["states"][i],
            int(stored["actions"][i]),
            float(stored["rewards"][i]),
            stored["next_states"][i],
            bool(stored["dones"][i]),
        )
        for i in range(size)
    )
    return memory, stored


def check_sample_batch(sample_batch: Callable, size: int = 6, batch_size: int = 4, seed: int = 0) -> None:
    """Check that ``sample_batch`` returns the five fields in train_step's order, each from the same transitions.

    Args:
        sample_batch: The student's function, ``sample_batch(memory, batch_size, rng)``.
        size: Transitions in the hand-made memory.
        batch_size: Transitions per sample (a second sample takes the whole memory).
        seed: Seeds the memory's rewards and the sampling.

    Raises:
        AssertionError: Naming a field that holds another field's values (fields
            unpacked in the wrong order), a wrong count or dtype, repeated transitions,
            draws that are not random or do not come from the ``rng`` given.
    """
    memory, stored = _memory(size, seed)
    for count in (batch_size, size):
        call = f"sample_batch(memory, {count}, rng)"
        batch = call_answer(sample_batch, call, memory, count, np.random.default_rng(seed + count), hints=SHAPE_HINTS)
        if not isinstance(batch, (tuple, list)) or len(batch) != len(FIELDS):
            raise AssertionError(
                f"{call} must return the {len(FIELDS)} arrays ({', '.join(FIELDS)}), got {type(batch).__name__}"
            )
        batch = dict(zip(FIELDS, (np.asarray(field) for field in batch)))
        for name, values in batch.items():
            if len(values) != count:
                raise AssertionError(
                    f"{call} returned {len(values)} {name}; it must return {count}, one per sampled transition"
                )
        # state i is filled with i, its next state with 100 + i: which transitions were drawn, even if swapped
        which = batch["states"].reshape(count, -1)[:, 0].astype(int) % 100
        if len(set(which.tolist())) != count:
            raise AssertionError(f"{call} drew a transition twice: sample without replacement")
        for name, values in batch.items():
            if _same(values, stored[name][which]):
                continue
            holds = next((other for other in FIELDS if other != name and _same(values, stored[other][which])), None)
            if holds:
                raise AssertionError(
                    f"the batch's `{name}` hold the transitions' {holds}: the fields are unpacked in another order "
                    f"than the memory stores them, (state, action, reward, next_state, done). Unpack them in that "
                    f"order: {', '.join(FIELDS)}"
                )
            raise AssertionError(
                f"the batch's `{name}` are not those of the sampled transitions: `{name}`[k] must come from the same "
                "transition as states[k]"
            )
        for name, kind in (("actions", np.integer), ("states", np.uint8), ("next_states", np.uint8)):
            if not np.issubdtype(batch[name].dtype, kind):
                raise AssertionError(f"the batch's {name} must be {kind.__name__}, got {batch[name].dtype}")
    _check_draws_come_from_rng(sample_batch, memory, batch_size, seed)


def _drawn(sample_batch: Callable, memory: list, batch_size: int, seed: int) -> list[int]:
    """Which transitions (by the number their state is filled with) a sample with this seed draws, in order."""
    batch = call_answer(sample_batch, "sample_batch", memory, batch_size, np.random.default_rng(seed))
    return (np.asarray(batch[0]).reshape(batch_size, -1)[:, 0].astype(int) % 100).tolist()


def _check_draws_come_from_rng(sample_batch: Callable, memory: list, batch_size: int, seed: int) -> None:
    """Fail unless the draws are random and come from the ``rng`` given: equal seeds alike, other seeds not."""
    first = _drawn(sample_batch, memory, batch_size, seed + 100)
    if _drawn(sample_batch, memory, batch_size, seed + 100) != first:
        raise AssertionError(
            "two calls of sample_batch with generators seeded alike drew different transitions: draw the indices with "
            "the `rng` it is given, rng.choice(len(memory), size=batch_size, replace=False)"
        )
    if all(_drawn(sample_batch, memory, batch_size, other) == first for other in (seed + 101, seed + 102, seed + 103)):
        raise AssertionError(
            f"sample_batch drew the same transitions, {first}, with four differently seeded generators: a minibatch "
            "must be drawn at random, rng.choice(len(memory), size=batch_size, replace=False)"
        )


def _same(values: np.ndarray, expected: np.ndarray) -> bool:
    return values.shape == expected.shape and np.array_equal(values.astype(np.float64), expected.astype(np.float64))


# --- compute_targets ---------------------------------------------------------------------------


# Four transitions, three actions; every row's best action differs, and the batch's
# largest value (9) sits in row 2. gamma = 0.5.
#   per sample: y = r + 0.5 * max_a' Q(s', a') = [1 + 3, 0 + 2.5, 2 + 4.5, -1 + 0.5] = [4, 2.5, 6.5, -0.5]
_REWARDS = np.array([1.0, 0.0, 2.0, -1.0], np.float32)
_NEXT_Q = np.array([[6.0, 2.0, 1.0], [-4.0, 5.0, 3.0], [0.0, 8.0, 9.0], [1.0, -2.0, 0.0]], np.float32)
_GAMMA = 0.5
SCRIPT_GAMMA = 0.99  # the script's GAMMA, compute_targets' default


def _call_targets(compute_targets: Callable, rewards, dones, next_q_values, gamma) -> np.ndarray:
    targets = as_numbers(
        call_answer(compute_targets, "compute_targets", rewards, dones, next_q_values, gamma, hints=SHAPE_HINTS),
        "compute_targets",
    )
    if targets.shape != rewards.shape:
        raise AssertionError(
            f"compute_targets must return one target per transition, shape {rewards.shape}, got {targets.shape}: "
            "keep every per-transition quantity of shape (batch,) and take the max over each row's actions, axis=1"
        )
    return targets


def check_compute_targets_per_sample(compute_targets: Callable, seed: int | None = None) -> None:
    """Check that each transition bootstraps from its own next state: ``y_i = r_i + gamma max_a' Q(s'_i, a')``.

    No transition of this check is terminal, so the terminal case is left to
    :func:`check_compute_targets_terminal`.

    Raises:
        AssertionError: Naming a max over the whole batch, a max over the batch axis,
            a missing discount, a mean in place of the max, an inverted test on ``dones``,
            the gamma argument left unused.
    """
    dones = np.zeros(len(_REWARDS), np.float32)
    targets = _call_targets(compute_targets, _REWARDS, dones, _NEXT_Q, _GAMMA)
    expected = _REWARDS + _GAMMA * _NEXT_Q.max(axis=1)
    wrong = {
        "your targets take the max over the whole batch: every transition bootstraps from the single largest "
        f"Q-value in the batch ({_NEXT_Q.max():g} here), whatever its own next state. Take the max over each row's "
        "actions: next_q_values.max(axis=1)": _REWARDS + _GAMMA * _NEXT_Q.max(),
        "your targets ignore the discount: y = r + gamma * max_a' Q(s', a')": _REWARDS + _NEXT_Q.max(axis=1),
        "your targets take the mean of the next Q-values; Q-learning bootstraps from the best action's value, "
        "max over axis=1": _REWARDS + _GAMMA * _NEXT_Q.mean(axis=1),
        "with no terminal transition your targets are the rewards alone: is the test on `dones` inverted? Where done "
        "is 0 the target bootstraps, r + gamma * max_a' Q(s', a')": _REWARDS,
        f"your targets ignore the gamma they are given (gamma = {_GAMMA} here; they match the script's GAMMA = "
        f"{SCRIPT_GAMMA}): use the argument": _REWARDS + SCRIPT_GAMMA * _NEXT_Q.max(axis=1),
    }
    name_the_mistake(
        targets,
        expected,
        wrong,
        f"for rewards {_REWARDS.tolist()}, no terminal transition, next Q-values {_NEXT_Q.tolist()} and gamma = "
        f"{_GAMMA}, the targets are {expected.tolist()}, got {targets.tolist()}",
    )
    if seed is not None:
        rng = np.random.default_rng(seed)
        batch, actions = int(rng.integers(2, 40)), int(rng.integers(2, 19))
        rewards = rng.normal(size=batch).astype(np.float32)
        next_q = rng.normal(size=(batch, actions)).astype(np.float32)
        targets = _call_targets(compute_targets, rewards, np.zeros(batch, np.float32), next_q, 0.9)
        if not close(targets, rewards + 0.9 * next_q.max(axis=1)):
            raise AssertionError(
                f"on a random batch of {batch} transitions with {actions} actions your targets are wrong"
            )


def check_compute_targets_terminal(compute_targets: Callable, seed: int | None = None) -> None:
    """Check that a terminal transition's target is its reward alone: ``y = r``.

    Only the terminal transitions' targets are compared (the others are
    :func:`check_compute_targets_per_sample`'s), among them one with a reward: the
    last brick hit before the ball is lost.

    Raises:
        AssertionError: Naming a target forced to -1 (or any constant), a target that
            ignores ``dones``, an inverted mask.
    """
    dones = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    rewards = np.array([1.0, 1.0, 2.0, 0.0], np.float32)
    targets = _call_targets(compute_targets, rewards, dones, _NEXT_Q, _GAMMA)
    terminal = dones > 0
    got, expected = targets[terminal], rewards[terminal]
    if close(got, expected):
        if seed is not None:
            _check_random_terminal(compute_targets, seed)
        return
    if np.allclose(got, got[0]):
        raise AssertionError(
            f"your terminal targets are all {got[0]:g}, whatever the reward: after the last step there is no next "
            f"state, so the target is that step's reward alone, y = r (here {expected.tolist()}: the first one hit a "
            "brick as the ball was lost). A made-up penalty changes the game's rewards, and the agent then learns "
            "to value states by it"
        )
    if close(targets[~terminal], rewards[~terminal]):
        raise AssertionError(
            "your targets are inverted: the terminal transitions bootstrap from a next state that does not exist, and "
            "the others are their rewards alone. Where done is 1 the target is the reward alone; where it is 0, "
            "r + gamma * max_a' Q(s', a')"
        )
    wrong = {
        "your terminal targets ignore `dones`: they bootstrap from a next state that does not exist. Where done is 1 "
        "the target is the reward alone": rewards[terminal] + _GAMMA * _NEXT_Q.max(axis=1)[terminal],
    }
    name_the_mistake(
        got,
        expected,
        wrong,
        f"for rewards {rewards.tolist()} and dones {dones.tolist()}, the terminal transitions' targets are their "
        f"rewards, {expected.tolist()}, got {got.tolist()}",
    )


def _check_random_terminal(compute_targets: Callable, seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, actions = int(rng.integers(4, 40)), int(rng.integers(2, 19))
    rewards = rng.normal(size=batch).astype(np.float32)
    dones = (rng.random(batch) < 0.4).astype(np.float32)
    dones[:2] = (1.0, 0.0)
    next_q = rng.normal(size=(batch, actions)).astype(np.float32)
    targets = _call_targets(compute_targets, rewards, dones, next_q, 0.9)
    if not close(targets[dones > 0], rewards[dones > 0]):
        raise AssertionError(
            f"on a random batch of {batch} transitions the terminal ones' targets are not their rewards"
        )


# --- train_step --------------------------------------------------------------------------------


def reference_compute_targets(rewards, dones, next_q_values, gamma=SCRIPT_GAMMA):
    """The script's ``compute_targets`` with its two mistakes fixed: ``y = r + gamma (1 - done) max_a' Q(s', a')``."""
    rewards, dones = np.asarray(rewards, np.float32), np.asarray(dones, np.float32)
    return rewards + gamma * (1.0 - dones) * np.asarray(next_q_values).max(axis=1)


@judged_alone(compute_targets=reference_compute_targets)
def check_train_step_action_taken(
    train_step: Callable, num_actions: int = 3, batch_size: int = 6, seed: int = 0
) -> None:
    """Check that ``train_step`` fits ``Q(s, a)`` of the action taken: its loss and its one gradient step.

    The check runs the step on tiny networks of its own with plain gradient descent,
    with the package's ``compute_targets`` in place of the student's (which
    ``train_step`` calls), so that a mistake there costs only its own cells.

    Raises:
        AssertionError: Naming a loss on ``max_a Q(s, a)``, a loss that is not the
            mean Huber loss, an update that is not one gradient step, a target network
            that changed.
    """
    online, target = tiny_q_network(num_actions, seed), tiny_q_network(num_actions, seed + 1)
    batch = tiny_batch(batch_size, num_actions, seed)
    targets = reference_compute_targets(batch.rewards, batch.terminated, target(batch.next_states).numpy())
    with tf.GradientTape() as tape:
        q_values = online(batch.states)
        q_taken = tf.gather(q_values, batch.actions, axis=1, batch_dims=1)
        loss = keras.losses.Huber()(tf.constant(targets, tf.float32), q_taken)  # mean over the batch
    gradients = tape.gradient(loss, online.trainable_variables)
    expected_weights = [w - SGD_LEARNING_RATE * g for w, g in zip(online.get_weights(), (g.numpy() for g in gradients))]
    q = q_values.numpy()
    wrong = {
        "your loss compares the targets with max_a Q(s, a), the value of the best action, instead of Q(s, a) of the "
        "action the agent took. The target says what taking `actions[i]` was worth: pick that column, e.g. "
        "tf.reduce_sum(q_values * tf.one_hot(actions, num_actions), axis=1)": float(
            np.mean(huber(targets - q.max(axis=1)))
        ),
        "your loss is the mean squared error, not the Huber loss: large TD errors then give huge gradients": float(
            np.mean((targets - q[np.arange(batch_size), batch.actions]) ** 2)
        ),
    }
    target_before = target.get_weights()
    with quiet_tensorflow():
        got = call_answer(
            train_step,
            "train_step",
            online,
            target,
            keras.optimizers.SGD(learning_rate=SGD_LEARNING_RATE),
            batch.states,
            batch.actions,
            batch.rewards,
            batch.next_states,
            batch.terminated,
            hints=SHAPE_HINTS,
        )
    got = as_numbers(got, "train_step")
    if got.shape != ():
        raise AssertionError(
            f"train_step must return the loss as one number (the mean over the batch), got shape {got.shape}"
        )
    if not all(np.array_equal(a, b) for a, b in zip(target.get_weights(), target_before)):
        raise AssertionError("train_step changed the target network's weights: only the online model may be trained")
    name_the_mistake(
        np.array(float(got)),
        np.array(float(loss)),
        {m: np.array(v) for m, v in wrong.items()},
        f"on a batch of {batch_size} transitions the mean Huber loss of y - Q(s, a) is {float(loss):.5f}, your "
        f"train_step returned {float(got):.5f}",
    )
    after = online.get_weights()
    if not all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(after, expected_weights)):
        raise AssertionError(
            "your train_step returned the right loss, but its update is not one gradient step on it: compute the loss "
            "inside tf.GradientTape and apply tape.gradient(loss, model.trainable_variables) once"
        )
