"""The Q-network of Mnih et al. (2015), "Human-level control through deep RL".

Input: a stack of 4 grayscale 84x84 ``uint8`` frames, channels first as the
environment returns them. Inside the model the stack is moved to channels last
(TensorFlow's CPU convolutions need it) and scaled to [0, 1], so callers never
convert frames to float themselves and the replay buffer stays ``uint8``.

=========  =============================  ==============
layer      shape out (for 4 actions)      parameters
=========  =============================  ==============
conv 1     20x20x32, 8x8 stride 4, ReLU   8x8x4x32+32 = 8,224
conv 2     9x9x64, 4x4 stride 2, ReLU     4x4x32x64+64 = 32,832
conv 3     7x7x64, 3x3 stride 1, ReLU     3x3x64x64+64 = 36,928
dense      512, ReLU                      3136x512+512 = 1,606,144
head       4, linear                      512x4+4 = 2,052
=========  =============================  ==============

1,686,180 parameters in all for Breakout's 4 actions.

With ``precision="bfloat16"`` every layer but the head computes in bfloat16
(Keras' ``mixed_bfloat16`` policy): weights stay float32, and the Q-values come out
in float32, so saved weights and the loss are the same in both precisions.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from dqn_helpers._tensorflow import keras
from dqn_helpers.envs import STATE_SHAPE

# (filters, kernel size, stride) of the paper's three convolutions, then the hidden dense layer's units.
CONVOLUTIONS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
HIDDEN_UNITS = 512

__all__ = ["PRECISIONS", "load_q_network", "nature_cnn"]

# The compute precisions of the network's hidden layers, and the Keras dtype policy of each.
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def nature_cnn(
    num_actions: int,
    *,
    input_shape: tuple[int, int, int] = STATE_SHAPE,
    name: str = "q_network",
    precision: str = "float32",
) -> keras.Model:
    """Build the Nature DQN convolutional Q-network.

    Args:
        num_actions: Number of discrete actions: one Q-value output each.
        input_shape: Shape of one state, channels (stacked frames) first.
        name: The model's name.
        precision: ``"float32"``, or ``"bfloat16"`` for the hidden layers (the
            Q-value head and every weight stay float32).

    Returns:
        A Keras functional model mapping ``uint8`` states ``(batch, 4, 84, 84)`` to
        Q-values ``(batch, num_actions)``.

    Raises:
        ValueError: If ``num_actions`` is not positive or ``precision`` unknown.

    Example:
        >>> model = nature_cnn(4)
        >>> model.count_params()
        1686180
        >>> model.output_shape
        (None, 4)
    """
    if num_actions <= 0:
        raise ValueError(f"num_actions must be positive, got {num_actions}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    num_actions = int(num_actions)  # gymnasium's action_space.n is a NumPy integer, which Dense rejects
    layers = keras.layers
    hidden = PRECISIONS[precision]  # 0-255 are exact in bfloat16, so the frames lose nothing before scaling
    states = keras.Input(shape=input_shape, dtype="uint8", name="states")
    x = layers.Permute((2, 3, 1), name="channels_last", dtype=hidden)(states)
    x = layers.Rescaling(1.0 / 255.0, name="scale", dtype=hidden)(x)
    for number, (filters, kernel_size, stride) in enumerate(CONVOLUTIONS, start=1):
        x = layers.Conv2D(filters, kernel_size, strides=stride, activation="relu", name=f"conv{number}", dtype=hidden)(
            x
        )
    x = layers.Flatten(name="flatten", dtype=hidden)(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", name="dense", dtype=hidden)(x)
    q_values = layers.Dense(num_actions, name="q_values", dtype="float32")(x)
    return keras.Model(states, q_values, name=name)


def load_q_network(weights_path: str | Path, num_actions: int) -> keras.Model:
    """Build :func:`nature_cnn` and load saved weights into it.

    Args:
        weights_path: A ``.weights.h5`` file written by ``model.save_weights``.
        num_actions: The number of actions the weights were trained with.

    Returns:
        The Q-network with the weights loaded.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the weights do not fit a network with ``num_actions`` outputs.
    """
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise FileNotFoundError(f"no weights file at {weights_path}")
    model = nature_cnn(num_actions)
    try:
        with warnings.catch_warnings():
            # Keras warns about "nested containers" before it raises on a mismatch; the error says more.
            warnings.filterwarnings("ignore", message="Skipping nested container")
            model.load_weights(weights_path)
    except ValueError as error:
        raise ValueError(
            f"the weights in {weights_path} do not fit a Nature CNN with {num_actions} actions "
            f"(were they trained on another game?): {error}"
        ) from None
    return model
