"""Visible checks of notebook 04, The Nature CNN and the DQN loss.

The checks of the network build it from the student's function and compare it,
layer by layer, with the architecture of Mnih et al. (2015); then they load the
weights of :func:`dqn_helpers.networks.nature_cnn` into it and compare the
Q-values, so that a network that merely has the right shapes but scales its input
twice, or reads the frames transposed, is told apart and named.

The checks of the learning step never use the student's network: they build tiny
Q-networks of their own (``uint8`` states of shape ``(2, 5, 5)``, one hidden layer),
with seeded weights, so that a mistake in the network costs only the network's
checks and each check runs in well under a second. Each check computes what a
correct answer gives, and also what each classic mistake gives (targets from the
online network, ``terminated`` ignored, ``max_a Q(s, a)`` instead of the action
taken, a ``(B, 1) - (B,)`` broadcast, Double DQN with the target's argmax, ...), so
a wrong answer is named by the mistake it matches.

The student's functions have the API of :mod:`dqn_helpers.learner`:
``q_of_actions(q_values, actions)``, ``td_targets(rewards, terminated, next_q_target,
gamma, next_q_online=None)``, ``copy_network(network)`` and
``make_train_step(online_network, target_network, optimizer, gamma, double_dqn)``
returning a ``tf.function`` ``train_step(states, actions, rewards, next_states,
terminated) -> loss``.

Notebook 07's checks (:mod:`dqn_helpers.checks.debugging`) reuse this module's tiny
network, tiny batch and Huber reference.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from dqn_helpers._tensorflow import keras, tf
from dqn_helpers.checks import (
    ATOL,
    RTOL,
    SHAPE_HINTS,
    as_numbers,
    call_answer,
    close,
    judged_alone,
    name_the_mistake,
)
from dqn_helpers.envs import STATE_SHAPE
from dqn_helpers.learner import td_targets as _reference_td_targets
from dqn_helpers.networks import CONVOLUTIONS, HIDDEN_UNITS, nature_cnn

__all__ = [
    "NATURE_PARAMETERS",
    "check_copy_network",
    "check_q_network_architecture",
    "check_q_network_matches_the_paper",
    "check_q_of_actions",
    "check_td_targets",
    "check_td_targets_double_dqn",
    "check_train_step_loss_and_update",
    "check_train_step_leaves_the_target_alone",
    "check_train_step_overfits_one_batch",
    "expected_parameters",
    "huber",
    "quiet_tensorflow",
    "tiny_batch",
    "tiny_q_network",
]

NATURE_PARAMETERS = 1_686_180  # Mnih et al. (2015) for Breakout's 4 actions (see dqn_helpers.networks)
TINY_STATE_SHAPE = (2, 5, 5)  # the checks' own tiny states: 2 frames of 5x5 pixels
TINY_HIDDEN_UNITS = 32
SGD_LEARNING_RATE = 0.05  # the update check compares one plain gradient step: w - lr * gradient


# --- hints, and the Huber reference --------------------------------------------------------


_HINTS = {
    "zero or negative": "The convolution read the stack channels first, (4, 84, 84), as an image 4 pixels high "
    "with 84 channels. Keras convolutions want channels last: put layers.Permute((2, 3, 1)) before the first one.",
    "NHWC": "TensorFlow's CPU convolutions support only channels last (data_format='channels_first' cannot run): "
    "move the frames' axis last with layers.Permute((2, 3, 1)) instead.",
    "padding": "Is a string such as 'relu' given as a positional argument? Conv2D(filters, kernel_size, strides, "
    "padding, ...): name the others, activation='relu'.",
    "No gradients provided": "The loss does not depend on the variables given to tape.gradient and "
    "apply_gradients: they must be online_network.trainable_variables (the target network is frozen, "
    "trainable = False, so it has none, and is never trained).",
    **SHAPE_HINTS,
}


def huber(errors: np.ndarray, delta: float = 1.0) -> np.ndarray:
    """The Huber loss of each TD error, in NumPy: what the loss checks (here and notebook 07's) compare with."""
    absolute = np.abs(errors)
    return np.where(absolute <= delta, 0.5 * errors**2, delta * (absolute - 0.5 * delta))


# --- the network ---------------------------------------------------------------------------


def expected_parameters(num_actions: int, input_shape: tuple[int, int, int] = STATE_SHAPE) -> int:
    """The Nature CNN's parameter count for ``num_actions`` and states of ``input_shape`` (channels first).

    Example:
        >>> expected_parameters(4)
        1686180
    """
    channels, height, width = input_shape
    total = 0
    for filters, kernel, stride in CONVOLUTIONS:
        total += kernel * kernel * channels * filters + filters
        channels, height, width = filters, (height - kernel) // stride + 1, (width - kernel) // stride + 1
    return total + (height * width * channels + 1) * HIDDEN_UNITS + (HIDDEN_UNITS + 1) * num_actions


def _layer_shapes(input_shape: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """(height, width, filters) after each convolution."""
    _, height, width = input_shape
    shapes = []
    for filters, kernel, stride in CONVOLUTIONS:
        height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        shapes.append((height, width, filters))
    return shapes


def _build(build_q_network: Callable, num_actions: int, input_shape: tuple[int, int, int], name: str) -> keras.Model:
    call = f"{name}({num_actions}, input_shape={input_shape})"
    model = call_answer(build_q_network, call, num_actions, input_shape=input_shape, hints=_HINTS)
    if not isinstance(model, keras.Model):
        raise AssertionError(
            f"{call} must return a keras.Model, got {type(model).__name__}: end with keras.Model(states, q_values)"
        )
    return model


def _activation_after(model: keras.Model, layer: keras.layers.Layer) -> str:
    """The activation a Conv2D or Dense layer applies, counting a ReLU/Activation layer right after it."""
    name = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if name != "linear":
        return name
    layers = model.layers
    following = layers[layers.index(layer) + 1] if layers.index(layer) + 1 < len(layers) else None
    if isinstance(following, keras.layers.ReLU):
        return "relu"
    if isinstance(following, keras.layers.Activation):
        return getattr(following.activation, "__name__", "linear")
    return "linear"


def check_q_network_architecture(
    build_q_network: Callable,
    num_actions: int = 4,
    input_shape: tuple[int, int, int] = STATE_SHAPE,
    name: str = "build_q_network",
) -> None:
    """Check the network layer by layer against the paper: input, three convolutions, dense 512, one output per action.

    Args:
        build_q_network: The student's function, called as ``build_q_network(num_actions, input_shape=...)``.
        num_actions: Number of actions to build it for (a second build uses ``num_actions + 2``,
            a third one more frame per state).
        input_shape: Shape of one state, channels first.
        name: The function's name in the notebook, for the messages.

    Raises:
        AssertionError: Naming a float input, a wrong input shape, a convolution with
            the wrong filters, kernel, stride, padding or data format, a missing ReLU, a
            wrong hidden layer, a wrong number or a ReLU on the outputs, or a wrong
            parameter count.
    """
    model = _build(build_q_network, num_actions, input_shape, name)
    _check_input(model, input_shape)
    _check_convolutions(model, input_shape)
    _check_dense_head(model, num_actions)
    other = _build(build_q_network, num_actions + 2, input_shape, name)
    if tuple(other.output_shape) != (None, num_actions + 2):
        raise AssertionError(
            f"built for {num_actions + 2} actions, your network outputs shape {other.output_shape}: use "
            "num_actions for the output layer, not a fixed number"
        )
    # Another stack depth, as a game with other preprocessing gives: an input shape written in fails here.
    deeper = (input_shape[0] + 1, *input_shape[1:])
    if tuple(_build(build_q_network, num_actions, deeper, name).input_shape) != (None, *deeper):
        raise AssertionError(
            f"built for states of shape {deeper}, your network takes another shape: use the input_shape argument, "
            "keras.Input(shape=input_shape, ...), not a fixed (4, 84, 84)"
        )
    count, expected = model.count_params(), expected_parameters(num_actions, input_shape)
    if count != expected:
        raise AssertionError(f"your network has {count:,} parameters; the paper's architecture has {expected:,}")


def _check_input(model, input_shape: tuple[int, int, int]) -> None:
    """One uint8 input that takes a batch of states, channels first (see check_q_network_architecture)."""
    if len(model.inputs) != 1:
        raise AssertionError(f"the network must have one input, the batch of states; yours has {len(model.inputs)}")
    dtype = str(model.inputs[0].dtype)
    if dtype != "uint8":
        raise AssertionError(
            f"your network's input is {dtype}: frames must stay uint8 (0-255, one byte each) from the emulator to the "
            'network, which scales them itself. Use keras.Input(shape=input_shape, dtype="uint8")'
        )
    if tuple(model.input_shape) != (None, *input_shape):
        raise AssertionError(
            f"the input must take a batch of states of shape {input_shape} (frames, height, width: channels first, "
            f"as the environment gives them), so (None, {', '.join(map(str, input_shape))}); got {model.input_shape}"
        )


def _check_convolutions(model, input_shape: tuple[int, int, int]) -> None:
    """The paper's three convolutions, each with its ReLU and output shape (see check_q_network_architecture)."""
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if len(convolutions) != 3:
        raise AssertionError(f"the Nature CNN has 3 convolutions, yours has {len(convolutions)}")
    for number, (layer, (filters, kernel, stride), shape) in enumerate(
        zip(convolutions, CONVOLUTIONS, _layer_shapes(input_shape)), start=1
    ):
        where = f"convolution {number} ({layer.name})"
        if layer.data_format != "channels_last":
            raise AssertionError(
                f"{where} uses data_format={layer.data_format!r}: TensorFlow's CPU convolutions run channels last "
                "only. Move the frames' axis last with layers.Permute((2, 3, 1)) before the first convolution"
            )
        if layer.filters != filters:
            raise AssertionError(f"{where} has {layer.filters} filters; the paper's has {filters}")
        if tuple(layer.kernel_size) != (kernel, kernel):
            raise AssertionError(
                f"{where} has a {layer.kernel_size} kernel; the paper's is {kernel}x{kernel}, kernel_size={kernel}"
            )
        if tuple(layer.strides) != (stride, stride):
            raise AssertionError(
                f"{where} has strides {tuple(layer.strides)}; the paper's moves {stride} pixel{'s' * (stride > 1)} at a "
                f"time: strides={stride}. (Keras's Conv2D takes (filters, kernel_size, strides, padding, ...) in that "
                "order: name the arguments to be sure)"
            )
        if layer.padding != "valid":
            raise AssertionError(
                f"{where} has padding={layer.padding!r}; the paper's convolutions use no padding, 'valid'"
            )
        activation = _activation_after(model, layer)
        if activation != "relu":
            raise AssertionError(
                f"{where} has no ReLU (its activation is {activation}): without the non-linearity, stacked layers "
                'collapse into one linear function of the pixels. Give it activation="relu"'
            )
        got = tuple(layer.output.shape[1:])
        if got != shape:
            raise AssertionError(
                f"{where} outputs {got}, but the paper's gives (height, width, filters) = {shape}: a "
                f"{kernel}x{kernel} kernel with stride {stride} and no padding maps n pixels to (n - {kernel}) // {stride} + 1"
            )


def _check_dense_head(model, num_actions: int) -> None:
    """A hidden dense layer of 512 ReLUs, then one linear output per action (see check_q_network_architecture)."""
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(dense) != 2:
        raise AssertionError(
            f"after the convolutions the Nature CNN has 2 dense layers (512 units, then one output per action), yours has {len(dense)}"
        )
    hidden, head = dense
    if hidden.units != HIDDEN_UNITS or _activation_after(model, hidden) != "relu":
        raise AssertionError(
            f"the hidden dense layer must have {HIDDEN_UNITS} units and a ReLU, got {hidden.units} units and "
            f"{_activation_after(model, hidden)}"
        )
    if tuple(model.output_shape) != (None, num_actions):
        raise AssertionError(
            f"built for {num_actions} actions, your network outputs shape {model.output_shape}: it needs one Q-value "
            f"per action, (None, {num_actions}): Dense(num_actions), not a fixed number"
        )
    if _activation_after(model, head) != "linear":
        raise AssertionError(
            f"the output layer has activation {_activation_after(model, head)}: it must be linear. Q-values are "
            "estimates of returns and may be negative or large"
        )


def _nature_forward(weights: list[np.ndarray], states: np.ndarray, *, scale: float, transpose: bool) -> np.ndarray:
    """The Nature CNN's Q-values with the given weights, scaling and axis order (to name a mismatch)."""
    x = tf.transpose(tf.cast(states, tf.float32), (0, 3, 2, 1) if transpose else (0, 2, 3, 1)) * scale
    for (_, _, stride), kernel, bias in zip(CONVOLUTIONS, weights[0:6:2], weights[1:6:2]):
        x = tf.nn.relu(tf.nn.conv2d(x, kernel, stride, "VALID") + bias)
    x = tf.nn.relu(tf.reshape(x, (x.shape[0], -1)) @ weights[6] + weights[7])
    return (x @ weights[8] + weights[9]).numpy()


def _test_states(count: int, input_shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """uint8 states with every gray level, brighter towards the bottom right, so a transpose changes them."""
    rng = np.random.default_rng(seed)
    _, height, width = input_shape
    ramp = np.linspace(0, 120, height)[:, None] + np.linspace(0, 40, width)[None, :]
    noise = rng.integers(0, 96, size=(count, *input_shape))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def check_q_network_matches_the_paper(
    build_q_network: Callable, num_actions: int = 4, input_shape: tuple[int, int, int] = STATE_SHAPE, seed: int = 0
) -> None:
    """Check that the network computes the paper's Q-values, given the paper's weights.

    It must have the paper's parameter count, take the weights of
    ``dqn_helpers.networks.nature_cnn`` (as arrays and from a ``.weights.h5`` file), and
    then compute the same Q-values on ``uint8`` states.

    Raises:
        AssertionError: Naming a wrong parameter count, weights that do not fit, and
            Q-values from frames never scaled to [0, 1], scaled twice, or read with
            height and width swapped.
    """
    model = _build(build_q_network, num_actions, input_shape, "build_q_network")
    count, expected = model.count_params(), expected_parameters(num_actions, input_shape)
    if count != expected:
        raise AssertionError(
            f"your network has {count:,} parameters; the paper's architecture has {expected:,} for {num_actions} actions "
            f"and states of shape {input_shape} (check_q_network_architecture says where they differ)"
        )
    reference = nature_cnn(num_actions, input_shape=input_shape)
    rng = np.random.default_rng(seed)
    # Fresh weights with non-zero biases, so that no mistake hides behind zeros.
    weights = [
        rng.normal(0.0, 1.0 / np.sqrt(np.prod(w.shape[:-1])) if w.ndim > 1 else 0.05, w.shape).astype(np.float32)
        for w in reference.get_weights()
    ]
    reference.set_weights(weights)
    shapes = [tuple(w.shape) for w in model.get_weights()]
    if shapes != [tuple(w.shape) for w in weights]:
        raise AssertionError(
            f"the reference network's weights do not fit yours: it holds {[tuple(w.shape) for w in weights]}, yours "
            f"{shapes}. Build the layers in the paper's order, each with its bias"
        )
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "nature_cnn.weights.h5")
        reference.save_weights(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call_answer(
                model.load_weights,
                "loading the reference network's .weights.h5 file into your network",
                path,
                hints=_HINTS,
            )
    loaded = model.get_weights()
    if not all(np.array_equal(a, b) for a, b in zip(loaded, weights)):
        raise AssertionError(
            "after load_weights your network does not hold the reference's weights: are its layers in the paper's order?"
        )
    states = _test_states(3, input_shape, seed)
    try:
        output = model(states, training=False)
    except Exception as error:
        if "conversion requested to type uint8" in str(error):
            raise AssertionError(
                "your network never scales the frames to [0, 1]: the uint8 frames reach the first convolution "
                "unconverted. Divide by 255 inside the model, layers.Rescaling(1 / 255), which also makes them float32"
            ) from error
        output = call_answer(model, "your network", states, training=False, hints=_HINTS)
    got = as_numbers(output, "your network")
    want = reference(states, training=False).numpy()
    if close(got, want):
        return
    variants = {
        "your network never scales the frames to [0, 1]: divide by 255 inside the model, layers.Rescaling(1 / 255), "
        "so that the first layer sees numbers of size 1, not up to 255": {"scale": 1.0, "transpose": False},
        "your network scales the frames twice (divided by 255 * 255): scale once, inside the model, and give it the "
        "uint8 frames as they come": {"scale": 1.0 / 255**2, "transpose": False},
        "your network reads the frames with height and width swapped: layers.Permute((2, 3, 1)) turns (frames, "
        "height, width) into (height, width, frames); (3, 2, 1) transposes the picture": {
            "scale": 1 / 255,
            "transpose": True,
        },
    }
    for message, variant in variants.items():
        if close(got, _nature_forward(weights, states, **variant)):
            raise AssertionError(message)
    raise AssertionError(
        f"with the reference network's weights loaded, your network's Q-values differ from the reference's: "
        f"{np.round(got[0], 4).tolist()} instead of {np.round(want[0], 4).tolist()} for the first test state. "
        "Layers: Permute((2, 3, 1)), Rescaling(1 / 255), the three convolutions, Flatten, Dense(512, relu), Dense(num_actions)"
    )


# --- tiny Q-networks for the checks of the learning step -----------------------------------


def tiny_q_network(num_actions: int, seed: int, input_shape: tuple[int, ...] = TINY_STATE_SHAPE) -> keras.Model:
    """A small Q-network with seeded weights: uint8 states scaled inside, one hidden ReLU layer.

    Its Q-values are of size 1 to 5, so that TD errors fall on both sides of the
    Huber loss's bend.

    Example:
        >>> tiny_q_network(3, seed=0).output_shape
        (None, 3)
    """
    states = keras.Input(shape=input_shape, dtype="uint8", name="states")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale")(keras.layers.Flatten(name="flatten")(states))
    x = keras.layers.Dense(TINY_HIDDEN_UNITS, activation="relu", name="dense")(x)
    q_values = keras.layers.Dense(num_actions, name="q_values")(x)
    model = keras.Model(states, q_values, name=f"tiny_q_network_{seed}")
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


class TinyBatch(NamedTuple):
    """A batch of transitions for :func:`tiny_q_network`, as NumPy arrays (the order of ``train_step``'s arguments)."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_states: np.ndarray
    terminated: np.ndarray


def tiny_batch(batch_size: int, num_actions: int, seed: int) -> TinyBatch:
    """A batch with every action, rewards from -3 to 3 and about a third of the transitions terminal (at least one)."""
    rng = np.random.default_rng(seed + 1000)
    terminated = (rng.random(batch_size) < 0.35).astype(np.float32)
    terminated[1] = 1.0
    terminated[0] = 0.0
    return TinyBatch(
        states=rng.integers(0, 256, (batch_size, *TINY_STATE_SHAPE), dtype=np.uint8),
        actions=(np.arange(batch_size) + rng.integers(num_actions)) % num_actions,
        rewards=rng.uniform(-3.0, 3.0, batch_size).astype(np.float32),
        next_states=rng.integers(0, 256, (batch_size, *TINY_STATE_SHAPE), dtype=np.uint8),
        terminated=terminated,
    )


def _as_tensors(batch: TinyBatch) -> tuple[tf.Tensor, ...]:
    dtypes = (tf.uint8, tf.int64, tf.float32, tf.uint8, tf.float32)
    return tuple(tf.constant(value, dtype) for value, dtype in zip(batch, dtypes))


# --- q_of_actions ------------------------------------------------------------------------


def _reference_q_of_actions(q_values, actions):
    """Exercise 3's answer: each row's Q-value of its own action."""
    return tf.gather(q_values, actions, axis=1, batch_dims=1)


# Three states, four actions; every number distinct. actions = [2, 0, 1]:
#   Q(s, a_taken) = [2, 7, 8]; max_a Q(s, a) = [5, 9, 8]
_Q = np.array([[1.0, 5.0, 2.0, 0.0], [7.0, 3.0, 9.0, 4.0], [6.0, 8.0, 0.0, 2.0]])
_ACTIONS = np.array([2, 0, 1])
_Q_TAKEN = np.array([2.0, 7.0, 8.0])


def check_q_of_actions(q_of_actions: Callable, seed: int | None = None) -> None:
    """Check that ``q_of_actions(q_values, actions)`` picks ``Q(s_i, a_i)`` in each row, shape ``(batch,)``.

    Args:
        q_of_actions: The student's function.
        seed: With a seed, a random batch is checked too.

    Raises:
        AssertionError: Naming ``max_a Q(s, a)`` instead of the action taken, a
            ``(batch, batch)`` gather without ``batch_dims``, rows picked instead of
            columns, or a ``(batch, 1)`` result.
    """
    cases = [(_Q, _ACTIONS, _Q_TAKEN)]
    if seed is not None:
        rng = np.random.default_rng(seed)
        batch, actions = int(rng.integers(2, 40)), int(rng.integers(2, 19))
        q_values = rng.normal(size=(batch, actions))
        taken = rng.integers(0, actions, batch)
        cases.append((q_values, taken, q_values[np.arange(batch), taken]))
    for q_values, actions, expected in cases:
        shown = (
            f"Q = {q_values.tolist()}, actions = {actions.tolist()}"
            if q_values is _Q
            else f"a random batch of {len(actions)}"
        )
        got = as_numbers(
            call_answer(
                q_of_actions,
                "q_of_actions",
                tf.constant(q_values, tf.float32),
                tf.constant(actions, tf.int64),
                hints=_HINTS,
            ),
            "q_of_actions",
        )
        batch = len(actions)
        if got.shape == (batch, batch) and batch != q_values.shape[1]:
            raise AssertionError(
                f"your result has shape {got.shape}: tf.gather(q_values, actions, axis=1) without batch_dims=1 picks "
                "every action of the batch in every row. Add batch_dims=1, so row i picks only actions[i]"
            )
        if got.shape == q_values.shape:
            raise AssertionError(
                f"your result has the shape of q_values, {q_values.shape}: tf.gather(q_values, actions) picks rows "
                "(states), not the action of each row. Use tf.gather(q_values, actions, axis=1, batch_dims=1)"
            )
        if got.shape == (batch, 1):
            raise AssertionError(
                f"your result has shape ({batch}, 1): it must be one value per transition, shape ({batch},). A (B, 1) "
                "array minus a (B,) array broadcasts to (B, B), a loss that still trains, badly"
            )
        if got.shape != (batch,):
            raise AssertionError(
                f"q_of_actions must return one Q-value per transition, shape ({batch},), got {got.shape}"
            )
        if np.allclose(got, q_values.max(axis=1)) and not np.allclose(expected, q_values.max(axis=1)):
            raise AssertionError(
                "your q_of_actions returns max_a Q(s, a), the best action's value: the loss needs Q(s, a) of the "
                "action the agent took, actions[i] in row i"
            )
        if not np.allclose(got, expected, rtol=RTOL, atol=ATOL):
            raise AssertionError(
                f"for {shown} the Q-values of the actions taken are {np.round(expected, 4).tolist()}, got {np.round(got, 4).tolist()}"
            )


# --- td_targets ----------------------------------------------------------------------------


# Three transitions, three actions (as many actions as transitions, so that a max over
# the batch axis still runs and its wrong values show); every number distinct; gamma = 0.5.
#   plain:   y = r + 0.5 * (1 - terminated) * max_a' Q_target(s', a')
#            row 0: 1 + 0.5 * 6 = 4; row 1 terminal: 0; row 2: 2 + 0.5 * 10 = 7
#   Double:  a' = argmax_a' Q_online(s', a') = [0, 2, 1] (terminated all 0)
#            Q_target(s', a') = [2, -3, 8]: y = [1 + 1, 0 - 1.5, 2 + 4] = [2, -1.5, 6]
_REWARDS = np.array([1.0, 0.0, 2.0])
_NEXT_Q_TARGET = np.array([[2.0, 6.0, 1.0], [-4.0, -2.0, -3.0], [10.0, 8.0, 9.0]])
_NEXT_Q_ONLINE = np.array([[5.0, 1.0, 0.0], [0.0, 0.0, 9.0], [6.0, 7.0, 0.0]])
_TERMINATED = np.array([0.0, 1.0, 0.0])
_GAMMA = 0.5


def _targets(rewards, terminated, next_q_target, gamma, next_q_online=None):
    """The right targets, in NumPy: what the checks compare with."""
    if next_q_online is None:
        next_values = next_q_target.max(axis=1)
    else:
        next_values = next_q_target[np.arange(len(rewards)), next_q_online.argmax(axis=1)]
    return rewards + gamma * (1.0 - terminated) * next_values


def _call_targets(td_targets: Callable, rewards, terminated, next_q_target, gamma, next_q_online=None) -> np.ndarray:
    arguments = [
        tf.constant(rewards, tf.float32),
        tf.constant(terminated, tf.float32),
        tf.constant(next_q_target, tf.float32),
        gamma,
    ]
    if next_q_online is not None:
        arguments.append(tf.constant(next_q_online, tf.float32))
    return as_numbers(call_answer(td_targets, "td_targets", *arguments, hints=_HINTS), "td_targets")


def _check_random_batch(td_targets: Callable, seed: int, *, double_dqn: bool) -> None:
    """Check the targets of a random batch: 2-39 transitions, 2-18 actions, about 30% of them terminal."""
    rng = np.random.default_rng(seed)
    batch, actions = int(rng.integers(2, 40)), int(rng.integers(2, 19))
    case = (
        rng.normal(size=batch),
        (rng.random(batch) < 0.3).astype(float),
        rng.normal(size=(batch, actions)),
        float(rng.uniform(0.8, 1.0)),
        *([rng.normal(size=(batch, actions))] if double_dqn else []),
    )
    targets = _call_targets(td_targets, *case)
    _check_target_shape(targets, batch)
    if not close(targets, _targets(*case)):
        kind = "Double DQN targets" if double_dqn else "targets"
        raise AssertionError(f"on a random batch of {batch} transitions with {actions} actions your {kind} are wrong")


def _check_target_shape(targets: np.ndarray, batch: int) -> None:
    if targets.shape == (batch, batch):
        raise AssertionError(
            f"your targets have shape ({batch}, {batch}) for a batch of {batch}: an array of shape ({batch}, 1) was "
            f"broadcast against one of shape ({batch},) (keepdims=True?). Keep every per-transition quantity of shape ({batch},)"
        )
    if targets.shape != (batch,):
        raise AssertionError(f"td_targets must return one target per transition, shape ({batch},), got {targets.shape}")


def check_td_targets(td_targets: Callable, seed: int | None = None) -> None:
    """Check plain DQN targets ``r + gamma (1 - terminated) max_a' Q_target(s', a')`` in TensorFlow.

    Raises:
        AssertionError: Naming a target that ignores ``terminated`` or inverts it, a
            max over the batch axis or over the whole batch, a mean in place of the max,
            a ``(B, 1) - (B,)`` broadcast, a missing or squared discount, a reward left
            out or subtracted.
    """
    targets = _call_targets(td_targets, _REWARDS, _TERMINATED, _NEXT_Q_TARGET, _GAMMA)
    _check_target_shape(targets, 3)
    expected = _targets(_REWARDS, _TERMINATED, _NEXT_Q_TARGET, _GAMMA)
    wrong = {
        "your target ignores `terminated`: after the last step of a game there is no next state, so the target is the "
        "reward alone. Multiply the bootstrap term by (1 - terminated)": _targets(
            _REWARDS, 0 * _TERMINATED, _NEXT_Q_TARGET, _GAMMA
        ),
        "your terminal mask is inverted: bootstrap where terminated is 0, multiply by (1 - terminated), not by terminated": _REWARDS
        + _GAMMA * _TERMINATED * _NEXT_Q_TARGET.max(axis=1),
        "your max runs over the batch (axis 0) instead of over each row's actions (axis 1): each transition "
        "bootstraps from its own next state's best action": _REWARDS
        + _GAMMA * (1 - _TERMINATED) * _NEXT_Q_TARGET.max(axis=0),
        "your target ignores the discount: y = r + gamma * (1 - terminated) * max_a' Q(s', a')": _targets(
            _REWARDS, _TERMINATED, _NEXT_Q_TARGET, 1.0
        ),
        "your target discounts twice (gamma ** 2): y = r + gamma * (1 - terminated) * max_a' Q(s', a')": _targets(
            _REWARDS, _TERMINATED, _NEXT_Q_TARGET, _GAMMA**2
        ),
        "your max runs over the whole batch (no axis), one number for every row: take each row's max over the "
        "actions, axis=1": _REWARDS + _GAMMA * (1 - _TERMINATED) * _NEXT_Q_TARGET.max(),
        "your target averages the next Q-values over the actions: the target takes their max, the value of the "
        "best next action": _REWARDS + _GAMMA * (1 - _TERMINATED) * _NEXT_Q_TARGET.mean(axis=1),
        "your target leaves out the reward: y = r + gamma * (1 - terminated) * max_a' Q(s', a')": _targets(
            0 * _REWARDS, _TERMINATED, _NEXT_Q_TARGET, _GAMMA
        ),
        "your target subtracts the reward: y = r + gamma * (1 - terminated) * max_a' Q(s', a')": _targets(
            -_REWARDS, _TERMINATED, _NEXT_Q_TARGET, _GAMMA
        ),
    }
    name_the_mistake(
        targets,
        expected,
        wrong,
        f"for rewards {_REWARDS.tolist()}, terminated {_TERMINATED.tolist()}, next target Q-values "
        f"{_NEXT_Q_TARGET.tolist()} and gamma = {_GAMMA}, the targets are {expected.tolist()}, got {targets.tolist()}",
    )
    if seed is not None:
        _check_random_batch(td_targets, seed, double_dqn=False)


# Double DQN's targets call the student's q_of_actions, and the train step calls q_of_actions
# and td_targets: their checks run them with the package's versions, so that a mistake in
# one of those costs its own exercise only (checks.reference_answers).
@judged_alone(q_of_actions=_reference_q_of_actions)
def check_td_targets_double_dqn(td_targets: Callable, seed: int | None = None) -> None:
    """Check Double DQN targets: the online network picks ``a'``, the target network values it.

    Raises:
        AssertionError: Naming the target's own argmax (plain DQN), values taken from
            the online network, an argmax over the batch axis, a broadcast, an inverted
            terminal mask, a missing or squared discount, a reward left out or subtracted.
    """
    terminated = np.zeros(3)
    targets = _call_targets(td_targets, _REWARDS, terminated, _NEXT_Q_TARGET, _GAMMA, _NEXT_Q_ONLINE)
    _check_target_shape(targets, 3)
    expected = _targets(_REWARDS, terminated, _NEXT_Q_TARGET, _GAMMA, _NEXT_Q_ONLINE)
    rows = np.arange(3)
    wrong = {
        "your Double DQN target picks the next action with the target network's argmax (that is plain DQN's max): "
        "the online network chooses a' = argmax Q_online(s', a'), the target network values it, Q_target(s', a')": _targets(
            _REWARDS, terminated, _NEXT_Q_TARGET, _GAMMA
        ),
        "your Double DQN target takes the value from the online network: the online network only chooses a', "
        "the target network values it, Q_target(s', a')": _targets(_REWARDS, terminated, _NEXT_Q_ONLINE, _GAMMA),
        "your Double DQN target swaps the networks' roles: the target network chooses a' and the online network "
        "values it; it must be the other way round": _REWARDS
        + _GAMMA * _NEXT_Q_ONLINE[rows, _NEXT_Q_TARGET.argmax(axis=1)],
        "your argmax runs over the batch (axis 0) instead of each row's actions (axis 1)": _REWARDS
        + _GAMMA * _NEXT_Q_TARGET[rows, _NEXT_Q_ONLINE.argmax(axis=0)],
        "with no terminal transition your targets are the rewards alone: is the terminal mask inverted? Multiply "
        "the bootstrap term by (1 - terminated), not by terminated": _REWARDS,
        "your Double DQN target ignores the discount: y = r + gamma * (1 - terminated) * Q_target(s', a')": _targets(
            _REWARDS, terminated, _NEXT_Q_TARGET, 1.0, _NEXT_Q_ONLINE
        ),
        "your Double DQN target discounts twice (gamma ** 2)": _targets(
            _REWARDS, terminated, _NEXT_Q_TARGET, _GAMMA**2, _NEXT_Q_ONLINE
        ),
        "your Double DQN target leaves out the reward": _targets(
            0 * _REWARDS, terminated, _NEXT_Q_TARGET, _GAMMA, _NEXT_Q_ONLINE
        ),
        "your Double DQN target subtracts the reward": _targets(
            -_REWARDS, terminated, _NEXT_Q_TARGET, _GAMMA, _NEXT_Q_ONLINE
        ),
    }
    name_the_mistake(
        targets,
        expected,
        wrong,
        f"for rewards {_REWARDS.tolist()}, next Q-values of the target network {_NEXT_Q_TARGET.tolist()} and of "
        f"the online network {_NEXT_Q_ONLINE.tolist()}, gamma = {_GAMMA} and no terminal step, the Double DQN "
        f"targets are {expected.tolist()}, got {targets.tolist()}",
    )
    with_terminal = _call_targets(td_targets, _REWARDS, _TERMINATED, _NEXT_Q_TARGET, _GAMMA, _NEXT_Q_ONLINE)
    if not close(with_terminal, _targets(_REWARDS, _TERMINATED, _NEXT_Q_TARGET, _GAMMA, _NEXT_Q_ONLINE)):
        raise AssertionError(
            "your Double DQN target ignores `terminated`: a terminal transition's target is its reward alone"
        )
    if seed is not None:
        _check_random_batch(td_targets, seed, double_dqn=True)


# --- copy_network --------------------------------------------------------------------------


def check_copy_network(copy_network: Callable, num_actions: int = 3, seed: int = 0) -> None:
    """Check that ``copy_network(network)`` returns a separate model with equal weights, sharing no variable.

    Raises:
        AssertionError: Naming the online network returned itself (assigned, not
            copied), a new model around the same layers (shared variables), or a
            clone with fresh random weights.
    """
    network = tiny_q_network(num_actions, seed)
    before = network.get_weights()
    copy = call_answer(copy_network, "copy_network", network, hints=_HINTS)
    if copy is network:
        raise AssertionError(
            "your target network is the online network itself (assigned, not copied): every update of the online "
            "network would move the target with it, and the targets would chase the network. Build a new model, "
            "keras.models.clone_model(network), and copy the weights into it"
        )
    if not isinstance(copy, keras.Model):
        raise AssertionError(f"copy_network must return a keras.Model, got {type(copy).__name__}")
    if not all(np.array_equal(a, b) for a, b in zip(network.get_weights(), before)):
        raise AssertionError("copy_network changed the weights of the network it copies: it must only read them")
    online_variables = {id(variable) for variable in network.weights}
    if any(id(variable) in online_variables for variable in copy.weights):
        raise AssertionError(
            "your copy shares its variables with the online network (a new Model around the same layers): training "
            "one trains the other. keras.models.clone_model builds new layers with new variables"
        )
    weights = copy.get_weights()
    if [w.shape for w in weights] != [w.shape for w in before]:
        raise AssertionError(
            f"the copy's weights have shapes {[w.shape for w in weights]}, the network's {[w.shape for w in before]}"
        )
    if not all(np.array_equal(a, b) for a, b in zip(weights, before)):
        raise AssertionError(
            "your copy has the architecture but fresh random weights: clone_model copies the layers, not their "
            "values. Copy them with copy.set_weights(network.get_weights())"
        )
    states = _test_states(4, TINY_STATE_SHAPE, seed)
    expected = network(states).numpy()
    for variable in network.weights:
        variable.assign(variable + 1.0)
    if not close(as_numbers(copy(states), "the copy"), expected):
        raise AssertionError(
            "after the online network's weights changed, your copy's Q-values changed too: it must hold its own weights"
        )


# --- the train step ------------------------------------------------------------------------


class _Setup(NamedTuple):
    online: keras.Model
    target: keras.Model
    batch: TinyBatch
    gamma: float


def _setup(num_actions: int, batch_size: int, seed: int, gamma: float = 0.9) -> _Setup:
    return _Setup(
        tiny_q_network(num_actions, seed),
        tiny_q_network(num_actions, seed + 1),
        tiny_batch(batch_size, num_actions, seed),
        gamma,
    )


def _make_step(make_train_step: Callable, setup: _Setup, optimizer, double_dqn: bool) -> Callable:
    step = call_answer(
        make_train_step,
        "make_train_step",
        setup.online,
        setup.target,
        optimizer,
        gamma=setup.gamma,
        double_dqn=double_dqn,
        hints=_HINTS,
    )
    if not callable(step):
        raise AssertionError(f"make_train_step must return the train_step function, got {type(step).__name__}")
    if not isinstance(step, tf.types.experimental.PolymorphicFunction):
        raise AssertionError(
            "make_train_step must return train_step compiled with tf.function (decorate it with @tf.function): "
            "compiled, the whole update runs as one TensorFlow graph instead of op by op from Python"
        )
    # Each check makes a new step from the same code, which TensorFlow counts as "retracing" and reports on
    # stderr after 5 of them; stderr would zero the graded cell, and here the retracing is intended.
    if hasattr(step, "_omit_frequent_tracing_warning"):
        step._omit_frequent_tracing_warning = True
    return step


@contextlib.contextmanager
def quiet_tensorflow() -> Iterator[None]:
    """Keep TensorFlow's Python warnings (retracing, AutoGraph) off stderr while a check runs the student's step."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _run_step(step: Callable, batch: TinyBatch) -> float:
    with quiet_tensorflow():
        loss = call_answer(step, "train_step", *_as_tensors(batch), hints=_HINTS)
    if isinstance(loss, (tuple, list)):
        raise AssertionError(
            f"train_step must return the loss alone, a scalar; it returned a {type(loss).__name__} of {len(loss)} values"
        )
    value = as_numbers(loss, "train_step")
    if value.shape != ():
        raise AssertionError(
            f"train_step must return the loss as one number (the mean over the batch), got shape {value.shape}: "
            "average with tf.reduce_mean"
        )
    return float(value)


_USUAL_GAMMA = 0.99  # the discount a step that ignores its gamma argument has written in


def _loss_after_the_step(setup: _Setup, double_dqn: bool, targets_before: np.ndarray) -> float:
    """The mean Huber loss of the targets of before the step and the online network's Q-values after it."""
    online, _, batch, _ = setup
    q_after = online(batch.states).numpy().astype(np.float64)[np.arange(len(batch.actions)), batch.actions]
    return float(np.mean(huber(targets_before - q_after)))


def _candidate_losses(setup: _Setup, double_dqn: bool) -> tuple[float, dict[str, float]]:
    """The loss of a correct step, and the loss each classic mistake gives instead."""
    online, target, batch, gamma = setup
    rows = np.arange(len(batch.actions))
    q = online(batch.states).numpy().astype(np.float64)
    next_target = target(batch.next_states).numpy().astype(np.float64)
    next_online = online(batch.next_states).numpy().astype(np.float64)
    q_taken = q[rows, batch.actions]
    choose = next_online if double_dqn else None
    targets = _targets(batch.rewards, batch.terminated, next_target, gamma, choose)

    def mean_huber(errors):
        return float(np.mean(huber(errors)))

    wrong = {
        "your targets come from the online network: bootstrap from target_network, the frozen copy, "
        "next_q_target = target_network(next_states)": mean_huber(
            _targets(batch.rewards, batch.terminated, next_online, gamma, choose) - q_taken
        ),
        "your train step ignores `terminated`: the target of a transition that ended the game must be its reward "
        "alone; pass `terminated` to td_targets": mean_huber(
            _targets(batch.rewards, 0 * batch.terminated, next_target, gamma, choose) - q_taken
        ),
        "your loss uses max_a Q(s, a) instead of Q(s, a) of the action taken: pick each row's Q-value at actions[i] "
        "with q_of_actions(q_values, actions)": mean_huber(targets - q.max(axis=1)),
        "your loss compares every target with every Q-value: a (B, 1) array minus a (B,) array broadcast into a "
        "(B, B) matrix. Keep targets and Q(s, a) both of shape (batch,)": mean_huber(
            targets[:, None] - q_taken[None, :]
        ),
        "your loss is the squared error, not the Huber loss: use huber_loss(targets - q_taken)": float(
            np.mean((targets - q_taken) ** 2)
        ),
        "your loss is half the squared error, not the Huber loss: use huber_loss(targets - q_taken)": float(
            np.mean(0.5 * (targets - q_taken) ** 2)
        ),
        "your loss is the sum over the batch: take the mean, tf.reduce_mean, so that the step size does not grow "
        "with the batch size": float(np.sum(huber(targets - q_taken))),
        "your loss compares each target with the Q-values of every action, a (B, 1) minus a (B, num_actions) array: "
        "take the Q-value of the action taken, q_of_actions(q_values, actions)": mean_huber(targets[:, None] - q),
        f"your train step does not use its gamma argument (the checks pass gamma={gamma:g}; your loss is the one "
        f"gamma={_USUAL_GAMMA:g} gives): pass gamma on to td_targets": mean_huber(
            _targets(batch.rewards, batch.terminated, next_target, _USUAL_GAMMA, choose) - q_taken
        ),
    }
    if double_dqn:
        wrong = {
            "with double_dqn=True your targets are plain DQN's, max_a' Q_target(s', a'), as if the target network "
            "chose the action: pass the online network's next Q-values to td_targets, so that it chooses a'": mean_huber(
                _targets(batch.rewards, batch.terminated, next_target, gamma) - q_taken
            ),
            **wrong,
        }
    return mean_huber(targets - q_taken), wrong


def _gradients(setup: _Setup, double_dqn: bool) -> list[np.ndarray]:
    """The gradient of the correct loss for each of the online network's trainable variables."""
    online, target, batch, gamma = setup
    next_target = target(batch.next_states)
    next_online = online(batch.next_states) if double_dqn else None
    targets = tf.constant(
        _targets(
            batch.rewards,
            batch.terminated,
            next_target.numpy(),
            gamma,
            None if next_online is None else next_online.numpy(),
        ),
        tf.float32,
    )
    with tf.GradientTape() as tape:
        q_taken = tf.gather(online(batch.states, training=True), batch.actions, axis=1, batch_dims=1)
        errors = targets - q_taken
        absolute = tf.abs(errors)
        quadratic = tf.minimum(absolute, 1.0)
        loss = tf.reduce_mean(0.5 * quadratic**2 + (absolute - quadratic))
    return [g.numpy() for g in tape.gradient(loss, online.trainable_variables)]


def _check_target_untouched(target: keras.Model, before: list[np.ndarray], online: keras.Model, steps: int) -> None:
    after = target.get_weights()
    if all(np.array_equal(a, b) for a, b in zip(after, before)):
        return
    if all(np.array_equal(a, b) for a, b in zip(after, online.get_weights())):
        raise AssertionError(
            f"after {steps} step{'s' * (steps > 1)} the target network holds the online network's new weights: your "
            "train step copies them into it (syncs it every step), so the targets move with every update. The "
            "target network is synced only every few thousand steps, by the training loop"
        )
    raise AssertionError(
        f"after {steps} step{'s' * (steps > 1)} the target network's weights changed: gradients reached the target "
        "network. Apply the gradients to online_network.trainable_variables only; the target network is never trained"
    )


@judged_alone(q_of_actions=_reference_q_of_actions, td_targets=_reference_td_targets)
def check_train_step_loss_and_update(
    make_train_step: Callable, double_dqn: bool = False, num_actions: int = 3, batch_size: int = 6, seed: int = 0
) -> None:
    """Check one compiled train step on a tiny batch: the loss it returns and the update it makes.

    The step gets tiny online and target networks with different weights and a plain
    SGD optimizer, so that the update must be exactly ``w - lr * gradient`` of the
    mean Huber loss of ``y - Q(s, a)``.

    Raises:
        AssertionError: Naming a step that is not a ``tf.function``, targets from the
            online network, ``terminated`` ignored, ``max_a Q(s, a)`` in the loss, a
            ``(B, B)`` or ``(B, num_actions)`` broadcast, a squared or summed loss, a gamma
            argument left unused, the loss after the update returned, Double DQN with the
            target's argmax, gradients reaching the target network, or an update that is
            not one gradient step on the online network.
    """
    setup = _setup(num_actions, batch_size, seed)
    expected_loss, wrong = _candidate_losses(setup, double_dqn)
    gradients = _gradients(setup, double_dqn)
    next_online = setup.online(setup.batch.next_states).numpy() if double_dqn else None
    targets_before = _targets(
        setup.batch.rewards,
        setup.batch.terminated,
        setup.target(setup.batch.next_states).numpy(),
        setup.gamma,
        next_online,
    )
    target_before = setup.target.get_weights()
    trainable = [v.numpy() for v in setup.online.trainable_variables]
    step = _make_step(make_train_step, setup, keras.optimizers.SGD(learning_rate=SGD_LEARNING_RATE), double_dqn)
    loss = _run_step(step, setup.batch)
    _check_target_untouched(setup.target, target_before, setup.online, 1)
    if not np.isclose(loss, expected_loss, rtol=RTOL, atol=ATOL):
        for message, value in wrong.items():
            if np.isclose(loss, value, rtol=RTOL, atol=ATOL):
                raise AssertionError(message)
        if np.isclose(loss, _loss_after_the_step(setup, double_dqn, targets_before), rtol=RTOL, atol=ATOL):
            raise AssertionError(
                f"your train step returned the loss after its update, {loss:.6f}, not the loss it took the gradient "
                f"of, {expected_loss:.6f}: return the loss computed inside the tape, before apply_gradients"
            )
        raise AssertionError(
            f"on the checks' batch your train step returned the loss {loss:.6f}; the mean Huber loss of "
            f"y - Q(s, a) before the update is {expected_loss:.6f}. Is the loss computed on the batch it was given?"
        )
    new = [v.numpy() for v in setup.online.trainable_variables]
    if all(np.array_equal(a, b) for a, b in zip(new, trainable)):
        raise AssertionError(
            "your train step did not change the online network's weights: compute tape.gradient(loss, variables) and "
            "apply them with optimizer.apply_gradients(zip(gradients, variables))"
        )
    expected = [w - SGD_LEARNING_RATE * g for w, g in zip(trainable, gradients)]
    if all(
        np.allclose(n, w + SGD_LEARNING_RATE * g, rtol=1e-3, atol=1e-5) for n, w, g in zip(new, trainable, gradients)
    ):
        raise AssertionError(
            "your train step moves the weights up the gradient, making the loss larger: minimise the loss itself"
        )
    if not all(np.allclose(n, e, rtol=1e-3, atol=1e-5) for n, e in zip(new, expected)):
        raise AssertionError(
            "your train step returned the right loss but did not make one gradient step on it: with plain SGD the "
            "online weights must become w - learning_rate * dloss/dw. Record the loss inside tf.GradientTape and take "
            "its gradient with respect to online_network.trainable_variables"
        )


@judged_alone(q_of_actions=_reference_q_of_actions, td_targets=_reference_td_targets)
def check_train_step_leaves_the_target_alone(
    make_train_step: Callable,
    double_dqn: bool = False,
    num_actions: int = 3,
    batch_size: int = 6,
    seed: int = 0,
    steps: int = 5,
) -> None:
    """Check that no gradient ever reaches the target network.

    After several Adam steps (target network left trainable, as a student's may be)
    its weights must be bit-identical.

    Raises:
        AssertionError: If the target's weights change at all (gradients into the
            target network, or a copy of the online weights every step), or if the
            online network does not learn.
    """
    setup = _setup(num_actions, batch_size, seed)
    target_before, online_before = setup.target.get_weights(), setup.online.get_weights()
    step = _make_step(make_train_step, setup, keras.optimizers.Adam(learning_rate=1e-3), double_dqn)
    for done in range(1, steps + 1):
        _run_step(step, setup.batch)
        _check_target_untouched(setup.target, target_before, setup.online, done)
    if all(np.array_equal(a, b) for a, b in zip(setup.online.get_weights(), online_before)):
        raise AssertionError(
            f"after {steps} steps the online network's weights never changed: apply the gradients to them"
        )


@judged_alone(q_of_actions=_reference_q_of_actions, td_targets=_reference_td_targets)
def check_train_step_overfits_one_batch(
    make_train_step: Callable,
    steps: int = 300,
    num_actions: int = 3,
    batch_size: int = 8,
    seed: int = 0,
    learning_rate: float = 3e-3,
) -> list[float]:
    """Check that repeated steps on one fixed batch drive the loss towards zero.

    With the target network frozen the targets are fixed numbers, and a network
    with far more weights than the batch has transitions can fit them: the loss must
    fall below 1% of where it started. Returns the losses, for a plot.

    Raises:
        AssertionError: If the loss does not fall that far, naming a loss that does
            not move or grows.
    """
    setup = _setup(num_actions, batch_size, seed)
    step = _make_step(make_train_step, setup, keras.optimizers.Adam(learning_rate=learning_rate), False)
    losses = [_run_step(step, setup.batch) for _ in range(steps)]
    first, last = losses[0], float(np.mean(losses[-5:]))
    if not np.all(np.isfinite(losses)):
        raise AssertionError(f"the loss became {losses[-1]} while fitting one batch: it blew up")
    if last > 0.01 * first:
        trend = ""
        if abs(last - first) < 1e-6 * max(1.0, abs(first)):
            trend = " It never moved: are the gradients applied to the online network's weights?"
        elif last > first:
            trend = " It grew: does the step go up the gradient, or do the targets move with the online network?"
        raise AssertionError(
            f"after {steps} steps on one fixed batch of {batch_size} transitions the loss went from {first:.4f} to "
            f"{last:.4f}; it should fall towards zero (below {0.01 * first:.4f}).{trend}"
        )
    return losses
