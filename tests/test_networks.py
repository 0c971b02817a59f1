"""Tests of dqn_helpers.networks: the Nature DQN Q-network and loading its weights."""

from __future__ import annotations

import numpy as np
import pytest

from dqn_helpers._tensorflow import keras, tf
from dqn_helpers.networks import load_q_network, nature_cnn

NUM_ACTIONS = 4


@pytest.fixture(scope="module")
def model():
    """One Breakout-sized Q-network, shared by the read-only tests."""
    return nature_cnn(NUM_ACTIONS)


@pytest.fixture(scope="module")
def states():
    """Three random uint8 states with every pixel value possible."""
    return np.random.default_rng(0).integers(0, 256, size=(3, 4, 84, 84), dtype=np.uint8)


# Parameters per layer, with 84x84x4 input: conv1 8*8*4*32+32 = 8,224; conv2
# 4*4*32*64+64 = 32,832; conv3 3*3*64*64+64 = 36,928; the 7x7x64 = 3,136 features
# feed dense 3,136*512+512 = 1,606,144; together 1,684,128. The head adds 512*A+A.
@pytest.mark.parametrize(
    ("num_actions", "expected"),
    [
        (4, 1_684_128 + 513 * 4),  # 1,686,180: Breakout
        (6, 1_684_128 + 513 * 6),  # 1,687,206: Pong
        (18, 1_684_128 + 513 * 18),  # 1,693,362: the full action set
    ],
)
def test_parameter_count_matches_the_nature_architecture(num_actions, expected):
    """The parameter count is the Nature DQN's, for several action counts."""
    assert nature_cnn(num_actions).count_params() == expected


def test_input_is_uint8_channels_first_stack(model):
    """The model takes uint8 (batch, 4, 84, 84) states, so the replay buffer stays uint8."""
    (states,) = model.inputs
    assert states.dtype == "uint8"
    assert tuple(states.shape) == (None, 4, 84, 84)


@pytest.mark.parametrize("batch", [1, 5])
def test_output_shape_is_batch_by_actions(model, batch):
    """Q-values come out as (batch, num_actions) float32."""
    q_values = model(np.zeros((batch, 4, 84, 84), np.uint8))
    assert tuple(q_values.shape) == (batch, NUM_ACTIONS)
    assert q_values.dtype == tf.float32


@pytest.mark.parametrize(
    ("name", "filters", "kernel", "strides"),
    [
        ("conv1", 32, (8, 8), (4, 4)),
        ("conv2", 64, (4, 4), (2, 2)),
        ("conv3", 64, (3, 3), (1, 1)),
    ],
)
def test_convolution_layers(model, name, filters, kernel, strides):
    """Each convolution has the Nature DQN's filters, kernel, stride, valid padding and ReLU."""
    config = model.get_layer(name).get_config()
    assert config["filters"] == filters
    assert tuple(config["kernel_size"]) == kernel
    assert tuple(config["strides"]) == strides
    assert config["padding"] == "valid"
    assert config["activation"] == "relu"


@pytest.mark.parametrize(("name", "units", "activation"), [("dense", 512, "relu"), ("q_values", NUM_ACTIONS, "linear")])
def test_dense_layers(model, name, units, activation):
    """A 512-unit ReLU layer, then a linear head with one output per action."""
    config = model.get_layer(name).get_config()
    assert config["units"] == units
    assert config["activation"] == activation


def test_frames_are_scaled_once_by_one_255th(model):
    """Exactly one Rescaling layer, multiplying by 1/255 with no offset."""
    rescalings = [layer for layer in model.layers if isinstance(layer, keras.layers.Rescaling)]
    assert [layer.name for layer in rescalings] == ["scale"]
    assert rescalings[0].scale == pytest.approx(1 / 255)
    assert rescalings[0].offset == 0.0


def test_output_equals_a_manual_float_computation(model, states):
    """The model equals its layers applied by hand to channels-last states divided by 255 once."""
    x = tf.constant(states.transpose(0, 2, 3, 1).astype(np.float32) / 255.0)
    for name in ("conv1", "conv2", "conv3", "flatten", "dense", "q_values"):
        x = model.get_layer(name)(x)
    np.testing.assert_allclose(model(states).numpy(), x.numpy(), rtol=1e-5, atol=1e-6)


def test_integer_valued_float_input_is_handled_as_uint8(model, states):
    """Float frames with 0-255 values give the same Q-values as the uint8 frames."""
    np.testing.assert_array_equal(model(states.astype(np.float32)).numpy(), model(states).numpy())


def test_float_input_is_cast_to_the_declared_uint8(model, states):
    """Fractional float pixels are truncated to uint8 as the input declares, not rescaled."""
    fractional = states.astype(np.float32) + 0.75
    np.testing.assert_array_equal(model(np.minimum(fractional, 255.0)).numpy(), model(states).numpy())


def test_already_scaled_frames_lose_their_content(model, states):
    """Frames scaled to [0, 1] before the model are cast to uint8 zeros: scale inside the model only."""
    below_white = np.minimum(states, 254)  # x / 255 < 1 for every pixel, so the cast gives 0
    prescaled = model(below_white.astype(np.float32) / 255.0).numpy()
    np.testing.assert_array_equal(prescaled, model(np.zeros_like(states)).numpy())
    assert not np.allclose(prescaled, model(below_white).numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_actions", [0, -1])
def test_non_positive_num_actions_raises(num_actions):
    """Zero or negative action counts are rejected with a clear message."""
    with pytest.raises(ValueError, match=f"num_actions must be positive, got {num_actions}"):
        nature_cnn(num_actions)


def test_numpy_integer_num_actions_works():
    """Gymnasium's action_space.n is a NumPy integer: it is accepted."""
    assert nature_cnn(np.int64(6)).output_shape == (None, 6)


def test_custom_input_shape_and_name():
    """A smaller state shape and a name can be given (36x36 is the least the convolutions fit)."""
    small = nature_cnn(3, input_shape=(2, 36, 36), name="small")
    # 36 -> (36-8)/4+1 = 8 -> (8-4)/2+1 = 3 -> 3-3+1 = 1: 64 features into the dense layer.
    assert small.name == "small"
    assert small.get_layer("dense").kernel.shape == (64, 512)
    assert small(np.zeros((2, 2, 36, 36), np.uint8)).shape == (2, 3)


def test_load_q_network_round_trip(model, states, tmp_path):
    """Saved weights load into a fresh network that gives identical Q-values."""
    path = tmp_path / "q.weights.h5"
    model.save_weights(path)
    loaded = load_q_network(path, NUM_ACTIONS)
    assert loaded is not model
    np.testing.assert_array_equal(loaded(states).numpy(), model(states).numpy())
    # A freshly initialised network differs, so the equality above is the loaded weights' doing.
    assert not np.allclose(nature_cnn(NUM_ACTIONS)(states).numpy(), model(states).numpy())


def test_load_q_network_accepts_a_string_path(model, tmp_path):
    """A str path works as well as a Path."""
    path = tmp_path / "q.weights.h5"
    model.save_weights(path)
    assert load_q_network(str(path), NUM_ACTIONS).output_shape == (None, NUM_ACTIONS)


def test_load_q_network_missing_file_raises(tmp_path):
    """A missing weights file raises FileNotFoundError naming the path."""
    missing = tmp_path / "nothing.weights.h5"
    with pytest.raises(FileNotFoundError, match="no weights file at .*nothing.weights.h5"):
        load_q_network(missing, NUM_ACTIONS)


def test_load_q_network_with_wrong_action_count_raises(model, tmp_path):
    """Weights of a 4-action network do not load into a 6-action one."""
    path = tmp_path / "q.weights.h5"
    model.save_weights(path)
    with pytest.raises(ValueError, match="do not fit a Nature CNN with 6 actions"):
        load_q_network(path, 6)


# --- precision ------------------------------------------------------------------------------


def test_bfloat16_network_keeps_float32_weights_and_q_values(model, states):
    """The hidden layers compute in bfloat16; the weights (what checkpoints hold) and Q-values stay float32."""
    half = nature_cnn(NUM_ACTIONS, precision="bfloat16")
    assert {w.dtype for w in half.weights} == {"float32"}
    assert half.get_layer("conv1").compute_dtype == "bfloat16"
    assert half.get_layer("q_values").compute_dtype == "float32"
    half.set_weights(model.get_weights())
    q_full, q_half = model(states).numpy(), half(states).numpy()
    assert q_half.dtype == np.float32
    # bfloat16 keeps 8 significant bits: the Q-values agree to a few per cent of their spread.
    assert np.max(np.abs(q_half - q_full)) < 0.05 * np.ptp(q_full) + 1e-3


def test_unknown_precision_raises():
    with pytest.raises(ValueError, match=r"precision must be one of \['bfloat16', 'float32'\], got 'float16'"):
        nature_cnn(NUM_ACTIONS, precision="float16")
