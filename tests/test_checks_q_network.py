"""The visible checks of notebook 04 pass correct answers and name each classic mistake.

Each buggy variant below is a small function a student could write; the tables
pair it with the check that must catch it and key words of the message it must
print. The classic mistakes that can occur in this notebook (each a row of
docs/bug_catalogue.md) are marked "a classic mistake".
"""

import pytest

from dqn_helpers import keras, tf
from dqn_helpers.checks import q_network as checks
from dqn_helpers.learner import huber_loss
from dqn_helpers.learner import td_targets as reference_td_targets
from dqn_helpers.networks import nature_cnn

layers = keras.layers


# --- the network: correct answers and buggy variants ---------------------------------------


def make_build(
    *,
    dtype="uint8",
    permute=(2, 3, 1),
    scales=1,
    convolutions=((32, 8, 4), (64, 4, 2), (64, 3, 1)),
    activations=("relu", "relu", "relu"),
    padding="valid",
    data_format=None,
    hidden_activation="relu",
    head_activation=None,
    fixed_outputs=None,
    separate_relu=False,
    positional_activation=False,
):
    """The notebook's build_q_network, with switches for the classic network mistakes."""

    def build_q_network(num_actions, input_shape=(4, 84, 84)):
        states = keras.Input(shape=input_shape, dtype=dtype, name="states")
        x = layers.Permute(permute, name="channels_last")(states) if permute else states
        for i in range(scales):
            x = layers.Rescaling(1.0 / 255.0, name=f"scale{i}")(x)
        for number, ((filters, kernel, stride), activation) in enumerate(zip(convolutions, activations), start=1):
            if positional_activation:
                x = layers.Conv2D(filters, kernel, stride, activation)(x)  # "relu" lands in padding
            elif separate_relu:
                x = layers.ReLU()(layers.Conv2D(filters, kernel, strides=stride, name=f"conv{number}")(x))
            else:
                x = layers.Conv2D(
                    filters,
                    kernel,
                    strides=stride,
                    activation=activation,
                    padding=padding,
                    data_format=data_format,
                    name=f"conv{number}",
                )(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(512, activation=hidden_activation, name="dense")(x)
        q_values = layers.Dense(fixed_outputs or int(num_actions), activation=head_activation, name="q_values")(x)
        return keras.Model(states, q_values, name="q_network")

    return build_q_network


def reference_build(num_actions, input_shape=(4, 84, 84)):
    return nature_cnn(num_actions, input_shape=input_shape)


def fixed_input_shape_build(num_actions, input_shape=(4, 84, 84)):
    return nature_cnn(num_actions)  # the input_shape argument left unused


CORRECT_BUILDS = [reference_build, make_build(), make_build(separate_relu=True)]
NETWORK_CHECKS = [checks.check_q_network_architecture, checks.check_q_network_matches_the_paper]

BUGGY_BUILDS = [
    # a classic mistake (docs/bug_catalogue.md): frames kept as float32, or scaled to [0, 1] twice, or never
    (make_build(dtype="float32"), checks.check_q_network_architecture, "input is float32: frames must stay uint8"),
    (make_build(scales=0), checks.check_q_network_matches_the_paper, "never scales the frames to \\[0, 1\\]"),
    (make_build(scales=2), checks.check_q_network_matches_the_paper, "scales the frames twice"),
    (fixed_input_shape_build, checks.check_q_network_architecture, "shape \\(5, 84, 84\\).*use the input_shape"),
    # channel axis confusion
    (
        make_build(permute=None),
        checks.check_q_network_architecture,
        "read the stack channels first.*Permute\\(\\(2, 3, 1\\)\\)",
    ),
    (
        make_build(permute=None, data_format="channels_first"),
        checks.check_q_network_architecture,
        "data_format='channels_first'.*channels last",
    ),
    (make_build(permute=(3, 2, 1)), checks.check_q_network_matches_the_paper, "height and width swapped"),
    # wrong strides, kernels, filters, padding; a string given positionally
    (
        make_build(convolutions=((32, 8, 1), (64, 4, 2), (64, 3, 1))),
        checks.check_q_network_architecture,
        "convolution 1 .* strides \\(1, 1\\).*strides=4",
    ),
    (
        make_build(convolutions=((32, 8, 4), (64, 4, 1), (64, 3, 1))),
        checks.check_q_network_architecture,
        "convolution 2 .* strides \\(1, 1\\).*strides=2",
    ),
    (
        make_build(convolutions=((32, 4, 8), (64, 4, 2), (64, 3, 1))),
        checks.check_q_network_architecture,
        "convolution 1 .* kernel; the paper's is 8x8",
    ),
    (
        make_build(convolutions=((64, 8, 4), (32, 4, 2), (64, 3, 1))),
        checks.check_q_network_architecture,
        "convolution 1 .* has 64 filters; the paper's has 32",
    ),
    (make_build(padding="same"), checks.check_q_network_architecture, "padding='same'.*'valid'"),
    (
        make_build(positional_activation=True),
        checks.check_q_network_architecture,
        "raised ValueError.*'relu' given as a positional argument",
    ),
    # missing ReLU
    (
        make_build(activations=("relu", None, "relu")),
        checks.check_q_network_architecture,
        "convolution 2 .* has no ReLU",
    ),
    (
        make_build(hidden_activation=None),
        checks.check_q_network_architecture,
        "512 units and a ReLU, got 512 units and linear",
    ),
    (
        make_build(head_activation="relu"),
        checks.check_q_network_architecture,
        "output layer has activation relu: it must be linear",
    ),
    # wrong output count
    (
        make_build(fixed_outputs=4),
        checks.check_q_network_architecture,
        "built for 6 actions, your network outputs shape \\(None, 4\\)",
    ),
    (
        make_build(fixed_outputs=18),
        checks.check_q_network_architecture,
        "built for 4 actions.*\\(None, 18\\).*Dense\\(num_actions\\)",
    ),
]


@pytest.mark.parametrize("build", CORRECT_BUILDS, ids=["nature_cnn", "notebook", "separate_relu_layers"])
@pytest.mark.parametrize("check", NETWORK_CHECKS, ids=lambda f: f.__name__)
def test_correct_networks_pass(check, build):
    """Check that the reference, the notebook's solution and a variant with ReLU layers pass both network checks."""
    check(build)


def test_correct_networks_pass_with_other_sizes():
    """Check the other action counts and state shapes that hidden tests use."""
    for check in NETWORK_CHECKS:
        check(make_build(), num_actions=9, input_shape=(2, 84, 84))
        check(make_build(), num_actions=18, input_shape=(4, 100, 90))


@pytest.mark.parametrize(("build", "check", "message"), BUGGY_BUILDS, ids=range(len(BUGGY_BUILDS)))
def test_buggy_networks_fail_with_a_message_that_names_the_mistake(build, check, message):
    """Check that each buggy network fails its check with a message naming its mistake."""
    with pytest.raises(AssertionError, match=message):
        check(build)


def test_expected_parameters_follows_the_paper():
    """Check the parameter formula against the paper's table (see dqn_helpers.networks) and Keras's count."""
    # 8*8*4*32+32 + 4*4*32*64+64 + 3*3*64*64+64 + 3136*512+512 + 512*4+4
    assert checks.expected_parameters(4) == 8_224 + 32_832 + 36_928 + 1_606_144 + 2_052 == checks.NATURE_PARAMETERS
    assert checks.expected_parameters(6, (2, 84, 84)) == nature_cnn(6, input_shape=(2, 84, 84)).count_params()


# --- q_of_actions ----------------------------------------------------------------------------


def q_of_actions(q_values, actions):
    return tf.gather(q_values, actions, axis=1, batch_dims=1)


def q_of_actions_one_hot(q_values, actions):
    return tf.reduce_sum(q_values * tf.one_hot(actions, q_values.shape[1]), axis=1)


BUGGY_Q_OF_ACTIONS = [
    # a classic mistake (docs/bug_catalogue.md): the loss uses max_a Q(s, a) instead of Q(s, a_taken)
    (lambda q, a: tf.reduce_max(q, axis=1), "returns max_a Q\\(s, a\\), the best action's value"),
    (lambda q, a: tf.gather(q, a, axis=1), "without batch_dims=1"),
    (lambda q, a: tf.gather(q, a), "picks rows \\(states\\)"),
    # a classic mistake (docs/bug_catalogue.md): (B, 1) - (B,) broadcasting
    (lambda q, a: tf.gather(q, a[:, None], axis=1, batch_dims=1), "shape \\(3, 1\\).*broadcasts to \\(B, B\\)"),
]


@pytest.mark.parametrize("answer", [q_of_actions, q_of_actions_one_hot], ids=["gather", "one_hot"])
def test_correct_q_of_actions_pass(answer):
    """Check that tf.gather with batch_dims and the one-hot sum both pass, with the hidden tests' seeds."""
    for seed in (None, 1, 2):
        checks.check_q_of_actions(answer, seed=seed)


@pytest.mark.parametrize(("answer", "message"), BUGGY_Q_OF_ACTIONS, ids=range(len(BUGGY_Q_OF_ACTIONS)))
def test_buggy_q_of_actions_are_named(answer, message):
    """Check that each wrong way of picking Q(s, a) is named."""
    with pytest.raises(AssertionError, match=message):
        checks.check_q_of_actions(answer)


# --- td_targets --------------------------------------------------------------------------------


def make_td_targets(
    *,
    mask="done",
    max_axis=1,
    keepdims=False,
    chooser="online",
    valuer="target",
    argmax_axis=1,
    discount=True,
    gamma_power=1,
    reduce=tf.reduce_max,
    reward_sign=1.0,
):
    """The notebook's td_targets, with switches for the classic target mistakes."""

    def td_targets(rewards, terminated, next_q_target, gamma, next_q_online=None):
        gamma = gamma**gamma_power if discount else 1.0
        rewards = reward_sign * rewards
        if next_q_online is None:
            next_values = reduce(next_q_target, axis=max_axis, keepdims=keepdims)
        else:
            networks = {"online": next_q_online, "target": next_q_target}
            next_actions = tf.argmax(networks[chooser], axis=argmax_axis)
            next_values = tf.gather(networks[valuer], next_actions, axis=1, batch_dims=1)
        not_over = {"done": 1.0 - terminated, "ignored": 1.0, "inverted": terminated}[mask]
        return rewards + gamma * not_over * next_values

    return td_targets


TD_TARGETS = make_td_targets()

BUGGY_TD_TARGETS = [
    # a classic mistake (docs/bug_catalogue.md): the target bootstraps past the end of the game
    (make_td_targets(mask="ignored"), checks.check_td_targets, "ignores `terminated`"),
    (make_td_targets(mask="inverted"), checks.check_td_targets, "terminal mask is inverted"),
    (make_td_targets(mask="ignored"), checks.check_td_targets_double_dqn, "Double DQN target ignores `terminated`"),
    # a classic mistake (docs/bug_catalogue.md): a max (or argmax) over the batch axis
    (make_td_targets(max_axis=0), checks.check_td_targets, "max runs over the batch \\(axis 0\\)"),
    (make_td_targets(argmax_axis=0), checks.check_td_targets_double_dqn, "argmax runs over the batch \\(axis 0\\)"),
    # a classic mistake (docs/bug_catalogue.md): (B, 1) - (B,) broadcasting
    (make_td_targets(keepdims=True), checks.check_td_targets, "shape \\(3, 3\\).*\\(3, 1\\) was broadcast"),
    # a classic mistake (docs/bug_catalogue.md): Double DQN picks the next action with the target network
    (
        make_td_targets(chooser="target"),
        checks.check_td_targets_double_dqn,
        "picks the next action with the target network's argmax",
    ),
    (
        make_td_targets(chooser="online", valuer="online"),
        checks.check_td_targets_double_dqn,
        "takes the value from the online network",
    ),
    (
        make_td_targets(chooser="target", valuer="online"),
        checks.check_td_targets_double_dqn,
        "swaps the networks' roles",
    ),
    (make_td_targets(discount=False), checks.check_td_targets, "ignores the discount"),
    (make_td_targets(discount=False), checks.check_td_targets_double_dqn, "Double DQN target ignores the discount"),
    (make_td_targets(gamma_power=2), checks.check_td_targets, "discounts twice"),
    (make_td_targets(gamma_power=2), checks.check_td_targets_double_dqn, "discounts twice"),
    (make_td_targets(max_axis=None), checks.check_td_targets, "max runs over the whole batch \\(no axis\\)"),
    (make_td_targets(reduce=tf.reduce_mean), checks.check_td_targets, "averages the next Q-values"),
    (make_td_targets(reward_sign=0.0), checks.check_td_targets, "leaves out the reward"),
    (make_td_targets(reward_sign=-1.0), checks.check_td_targets_double_dqn, "subtracts the reward"),
    (make_td_targets(mask="inverted"), checks.check_td_targets_double_dqn, "is the terminal mask inverted"),
]


@pytest.mark.parametrize("answer", [TD_TARGETS, reference_td_targets], ids=["notebook", "dqn_helpers"])
def test_correct_td_targets_pass(answer):
    """Check that the notebook's solution and the package's td_targets pass, with the hidden tests' seeds."""
    for seed in (None, 4, 5):
        checks.check_td_targets(answer, seed=seed)
        checks.check_td_targets_double_dqn(answer, seed=seed)


@pytest.mark.parametrize(("answer", "check", "message"), BUGGY_TD_TARGETS, ids=range(len(BUGGY_TD_TARGETS)))
def test_buggy_td_targets_are_named(answer, check, message):
    """Check that each buggy target fails its check with a message naming its mistake."""
    with pytest.raises(AssertionError, match=message):
        check(answer)


# --- copy_network ------------------------------------------------------------------------------


def copy_network(network):
    copy = keras.models.clone_model(network)
    copy.set_weights(network.get_weights())
    copy.trainable = False
    return copy


BUGGY_COPIES = [
    # a classic mistake (docs/bug_catalogue.md): the target network is the same object as the online network (assigned, not copied)
    (lambda network: network, "is the online network itself \\(assigned, not copied\\)"),
    (lambda network: keras.Model(network.inputs, network.outputs), "shares its variables with the online network"),
    (lambda network: keras.models.clone_model(network), "fresh random weights.*set_weights"),
]


def test_a_correct_copy_passes():
    """Check that clone_model plus set_weights passes, with the hidden tests' sizes."""
    checks.check_copy_network(copy_network)
    checks.check_copy_network(copy_network, num_actions=5, seed=3)


@pytest.mark.parametrize(("answer", "message"), BUGGY_COPIES, ids=["same_object", "same_layers", "fresh_weights"])
def test_buggy_copies_are_named(answer, message):
    """Check that each wrong copy of the online network is named."""
    with pytest.raises(AssertionError, match=message):
        checks.check_copy_network(answer)


# --- the train step ----------------------------------------------------------------------------


def make_make_train_step(
    *,
    compiled=True,
    bootstrap_from="target",
    terminal=True,
    pick="taken",
    broadcast=False,
    loss="huber",
    reduce="mean",
    honour_double=True,
    trained="online",
    sync_every_step=False,
    ascent=False,
    apply=True,
    returns="loss",
    own_gamma=None,
):
    """The notebook's make_train_step, with switches for the classic mistakes of the learning step."""

    def make_train_step(online_network, target_network, optimizer, gamma=0.99, double_dqn=False):
        gamma = own_gamma or gamma

        def train_step(states, actions, rewards, next_states, terminated):
            bootstrap = {"target": target_network, "online": online_network}[bootstrap_from]
            next_q_online = online_network(next_states, training=False) if double_dqn and honour_double else None
            done = terminated if terminal else tf.zeros_like(terminated)
            with tf.GradientTape() as tape:
                # Training both networks, the targets are recorded by the tape too: their gradients reach the target.
                next_q_target = bootstrap(next_states, training=False)
                targets = TD_TARGETS(rewards, done, next_q_target, gamma, next_q_online)
                if trained == "online":
                    targets = tf.stop_gradient(targets)
                q_values = online_network(states, training=True)
                q_taken = q_of_actions(q_values, actions) if pick == "taken" else tf.reduce_max(q_values, axis=1)
                if broadcast:
                    q_taken = q_taken[:, None]
                errors = targets[:, None] - q_values if pick == "all" else targets - q_taken
                losses = huber_loss(errors) if loss == "huber" else tf.square(errors)
                value = tf.reduce_mean(losses) if reduce == "mean" else tf.reduce_sum(losses)
                if ascent:
                    value = -value
            variables = {
                "online": online_network.trainable_variables,
                "both": online_network.trainable_variables + target_network.trainable_variables,
                "target only": target_network.trainable_variables,
            }[trained]
            gradients = tape.gradient(value, variables)
            if apply:
                optimizer.apply_gradients(
                    [(g, v) for g, v in zip(gradients, variables) if g is not None]
                    or [(tf.zeros_like(v), v) for v in variables]
                )
            if sync_every_step:
                for target, online in zip(target_network.weights, online_network.weights):
                    target.assign(online)
            value = -value if ascent else value
            if returns == "after the update":
                q_after = q_of_actions(online_network(states, training=False), actions)
                value = tf.reduce_mean(huber_loss(targets - q_after))
            return (value, tf.reduce_mean(q_taken)) if returns == "tuple" else value

        return tf.function(train_step) if compiled else train_step

    return make_train_step


MAKE_TRAIN_STEP = make_make_train_step()
LOSS = checks.check_train_step_loss_and_update
TARGET = checks.check_train_step_leaves_the_target_alone
OVERFIT = checks.check_train_step_overfits_one_batch


def double(check):
    def check_double(make_train_step):
        return check(make_train_step, double_dqn=True)

    check_double.__name__ = f"{check.__name__}_double"
    return check_double


BUGGY_TRAIN_STEPS = [
    (make_make_train_step(compiled=False), LOSS, "compiled with tf.function"),
    # a classic mistake (docs/bug_catalogue.md): the target is computed with the online network instead of the target network
    (make_make_train_step(bootstrap_from="online"), LOSS, "targets come from the online network"),
    # a classic mistake (docs/bug_catalogue.md): terminated ignored
    (make_make_train_step(terminal=False), LOSS, "ignores `terminated`"),
    # a classic mistake (docs/bug_catalogue.md): max_a Q(s, a) instead of Q(s, a_taken)
    (make_make_train_step(pick="max"), LOSS, "max_a Q\\(s, a\\) instead of Q\\(s, a\\) of the action taken"),
    # a classic mistake (docs/bug_catalogue.md): (B, 1) - (B,) broadcasting into a (B, B) loss
    (make_make_train_step(broadcast=True), LOSS, "\\(B, 1\\) array minus a \\(B,\\) array broadcast"),
    # a classic mistake (docs/bug_catalogue.md): Double DQN picks the next action with the target network
    (make_make_train_step(honour_double=False), double(LOSS), "with double_dqn=True your targets are plain DQN's"),
    (make_make_train_step(bootstrap_from="online"), double(LOSS), "targets come from the online network"),
    # a classic mistake (docs/bug_catalogue.md): gradients reach the target network, or it is synced every step
    (make_make_train_step(trained="both"), LOSS, "gradients reached the target network"),
    (
        make_make_train_step(trained="both"),
        TARGET,
        "after 1 step the target network's weights changed: gradients reached",
    ),
    (make_make_train_step(trained="both"), double(TARGET), "gradients reached the target network"),
    (make_make_train_step(sync_every_step=True), TARGET, "copies them into it \\(syncs it every step\\)"),
    # the loss and the update
    (make_make_train_step(loss="squared"), LOSS, "squared error, not the Huber loss"),
    (make_make_train_step(reduce="sum"), LOSS, "sum over the batch: take the mean"),
    (make_make_train_step(ascent=True), LOSS, "up the gradient"),
    (make_make_train_step(apply=False), LOSS, "did not change the online network's weights"),
    (make_make_train_step(apply=False), TARGET, "online network's weights never changed"),
    (make_make_train_step(returns="tuple"), LOSS, "must return the loss alone"),
    (make_make_train_step(pick="all"), LOSS, "Q-values of every action, a \\(B, 1\\) minus a \\(B, num_actions\\)"),
    (make_make_train_step(own_gamma=0.99), LOSS, "does not use its gamma argument"),
    (make_make_train_step(returns="after the update"), LOSS, "returned the loss after its update"),
    (make_make_train_step(apply=False), OVERFIT, "should fall towards zero.*never moved"),
    (make_make_train_step(ascent=True), OVERFIT, "should fall towards zero.*It grew"),
]


@pytest.mark.parametrize("check", [LOSS, double(LOSS), TARGET, double(TARGET), OVERFIT], ids=lambda f: f.__name__)
def test_a_correct_train_step_passes(check):
    """Check that the notebook's solution passes every check of the train step."""
    check(MAKE_TRAIN_STEP)


def test_a_correct_train_step_passes_with_other_seeds_and_sizes():
    """Check the seeds and sizes the hidden tests use."""
    LOSS(MAKE_TRAIN_STEP, num_actions=5, batch_size=9, seed=3)
    LOSS(MAKE_TRAIN_STEP, double_dqn=True, num_actions=4, batch_size=7, seed=4)
    TARGET(MAKE_TRAIN_STEP, double_dqn=True, num_actions=6, batch_size=5, seed=5)
    OVERFIT(MAKE_TRAIN_STEP, num_actions=5, batch_size=12, seed=6)


@pytest.mark.parametrize(("make_train_step", "check", "message"), BUGGY_TRAIN_STEPS, ids=range(len(BUGGY_TRAIN_STEPS)))
def test_buggy_train_steps_are_named(make_train_step, check, message):
    """Check that each buggy train step fails its check with a message naming its mistake."""
    with pytest.raises(AssertionError, match=message):
        check(make_train_step)


def test_the_overfit_check_returns_the_losses_falling():
    """Check that the overfit check hands back its losses for a plot, falling below 1% of the first."""
    losses = OVERFIT(MAKE_TRAIN_STEP, steps=200)
    assert len(losses) == 200 and losses[-1] < 0.01 * losses[0]


def test_a_student_exception_is_wrapped_with_its_name():
    """Check that an error inside the student's step becomes an AssertionError naming the function."""

    def make_train_step(online_network, target_network, optimizer, gamma=0.99, double_dqn=False):
        @tf.function
        def train_step(states, actions, rewards, next_states, terminated):
            return tf.reduce_mean(rewards[:, None] + tf.zeros((3, 2)))

        return train_step

    with pytest.raises(AssertionError, match="train_step raised"):
        LOSS(make_train_step)


# --- one mistake, one exercise ------------------------------------------------------------------

STUDENT_MAKE_TRAIN_STEP = """
def make_train_step(online_network, target_network, optimizer, gamma=0.99, double_dqn=False):
    @tf.function
    def train_step(states, actions, rewards, next_states, terminated):
        next_q_target = target_network(next_states, training=False)
        next_q_online = online_network(next_states, training=False) if double_dqn else None
        targets = td_targets(rewards, terminated, next_q_target, gamma, next_q_online)
        with tf.GradientTape() as tape:
            q_taken = q_of_actions(online_network(states, training=True), actions)
            loss = tf.reduce_mean(huber_loss(targets - q_taken))
        variables = online_network.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss
    return train_step
"""


def test_a_mistake_in_q_of_actions_or_td_targets_costs_their_exercise_only():
    """Check that the train step's checks and Double DQN's run with the package's q_of_actions and td_targets."""
    wrong_pick, wrong_targets = BUGGY_Q_OF_ACTIONS[0][0], make_td_targets(argmax_axis=0)
    namespace = {"tf": tf, "huber_loss": huber_loss, "q_of_actions": wrong_pick, "td_targets": wrong_targets}
    exec(STUDENT_MAKE_TRAIN_STEP, namespace)  # noqa: S102 - a student's notebook cell
    make_train_step = namespace["make_train_step"]
    double_namespace = {"tf": tf, "q_of_actions": wrong_pick}
    exec(
        "def td_targets(rewards, terminated, next_q_target, gamma, next_q_online=None):\n"
        "    if next_q_online is None:\n"
        "        return rewards + gamma * (1.0 - terminated) * tf.reduce_max(next_q_target, axis=1)\n"
        "    chosen = q_of_actions(next_q_target, tf.argmax(next_q_online, axis=1))\n"
        "    return rewards + gamma * (1.0 - terminated) * chosen\n",
        double_namespace,
    )

    for check in (LOSS, TARGET):
        check(make_train_step)
        check(make_train_step, double_dqn=True)
    OVERFIT(make_train_step)
    checks.check_td_targets_double_dqn(double_namespace["td_targets"])

    assert namespace["q_of_actions"] is wrong_pick and namespace["td_targets"] is wrong_targets
    assert double_namespace["q_of_actions"] is wrong_pick
    with pytest.raises(AssertionError, match="returns max_a Q"):
        checks.check_q_of_actions(wrong_pick)
