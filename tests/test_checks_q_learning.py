"""The visible checks of notebook 01 pass correct answers and name each classic mistake."""

import types

import numpy as np
import pytest

from dqn_helpers.checks import q_learning as checks
from dqn_helpers.policies import epsilon_greedy as reference_epsilon_greedy

# --- correct answers, as a student would write them ---------------------------------------


def td_targets(rewards, terminated, next_q_values, gamma):
    return rewards + gamma * (1.0 - np.asarray(terminated, dtype=float)) * np.max(next_q_values, axis=1)


def epsilon_greedy(q_values, epsilon, rng):
    if rng.random() < epsilon:
        return int(rng.integers(len(q_values)))
    return int(np.argmax(q_values))


def huber_loss(errors, delta=1.0):
    absolute = np.abs(errors)
    return np.where(absolute <= delta, 0.5 * errors**2, delta * (absolute - 0.5 * delta))


def huber_gradient(errors, delta=1.0):
    return np.clip(errors, -delta, delta)


def make_q_learning(*, bootstrap_on="terminated", carry_state=True, step_sign=1.0, update="step", discount_power=1):
    """Tabular Q-learning as the notebook asks for it, with switches for the classic loop mistakes."""

    def q_learning(env, episodes, alpha=0.5, gamma=0.99, epsilon=0.1, seed=0):
        rng = np.random.default_rng(seed)
        q_table = np.zeros((env.observation_space.n, env.action_space.n))
        returns = []
        for episode in range(episodes):
            state, _ = env.reset(seed=seed + episode)
            episode_return, done = 0.0, False
            while not done:
                action = epsilon_greedy(q_table[state], epsilon, rng)
                next_state, reward, terminated, truncated, _ = env.step(action)
                end = {"terminated": terminated, "either": terminated or truncated, "never": False}[bootstrap_on]
                discount = gamma**discount_power
                target = td_targets(np.array([reward]), np.array([float(end)]), q_table[[next_state]], discount)[0]
                if update == "step":
                    q_table[state, action] += step_sign * alpha * (target - q_table[state, action])
                elif update == "add":
                    q_table[state, action] += alpha * target
                else:  # "replace"
                    q_table[state, action] = alpha * target
                episode_return += reward
                if carry_state:
                    state = next_state
                done = terminated or truncated
            returns.append(episode_return)
        return q_table, returns

    return q_learning


CORRECT = [
    (checks.check_td_targets_values, td_targets),
    (checks.check_td_targets_terminal, td_targets),
    (checks.check_epsilon_greedy_is_greedy, epsilon_greedy),
    (checks.check_epsilon_greedy_explores, epsilon_greedy),
    (checks.check_epsilon_greedy_is_greedy, reference_epsilon_greedy),
    (checks.check_epsilon_greedy_explores, reference_epsilon_greedy),
    (checks.check_huber_loss_values, huber_loss),
    (checks.check_huber_gradient_is_clipped, huber_gradient),
    (checks.check_q_learning_bootstraps, make_q_learning()),
    (checks.check_q_learning_finds_the_safe_shortest_path, make_q_learning()),
]


@pytest.mark.parametrize(("check", "answer"), CORRECT, ids=lambda x: getattr(x, "__name__", ""))
def test_correct_answers_pass(check, answer):
    """Check that each visible check accepts a correct answer."""
    check(answer)


# --- the mistakes ---------------------------------------------------------------------------


def td_ignores_terminated(rewards, terminated, next_q_values, gamma):
    return rewards + gamma * np.max(next_q_values, axis=1)


def td_inverted_mask(rewards, terminated, next_q_values, gamma):
    return rewards + gamma * np.asarray(terminated, dtype=float) * np.max(next_q_values, axis=1)


def td_max_over_batch(rewards, terminated, next_q_values, gamma):
    return rewards + gamma * (1.0 - np.asarray(terminated, dtype=float)) * np.max(next_q_values, axis=0)


def td_global_max(rewards, terminated, next_q_values, gamma):
    return rewards + gamma * (1.0 - np.asarray(terminated, dtype=float)) * np.max(next_q_values)


def td_broadcast_column(rewards, terminated, next_q_values, gamma):
    return rewards + gamma * (1.0 - np.asarray(terminated, dtype=float)) * np.max(next_q_values, axis=1, keepdims=True)


def td_no_discount(rewards, terminated, next_q_values, gamma):
    return rewards + (1.0 - np.asarray(terminated, dtype=float)) * np.max(next_q_values, axis=1)


def td_discount_twice(rewards, terminated, next_q_values, gamma):
    return rewards + gamma**2 * (1.0 - np.asarray(terminated, dtype=float)) * np.max(next_q_values, axis=1)


def td_mean_instead_of_max(rewards, terminated, next_q_values, gamma):
    return rewards + gamma * (1.0 - np.asarray(terminated, dtype=float)) * np.mean(next_q_values, axis=1)


def eg_inverted(q_values, epsilon, rng):
    if rng.random() > epsilon:
        return int(rng.integers(len(q_values)))
    return int(np.argmax(q_values))


def eg_never_greedy_when_exploring(q_values, epsilon, rng):
    best = int(np.argmax(q_values))
    if rng.random() < epsilon:
        return int(rng.choice([a for a in range(len(q_values)) if a != best]))
    return best


def eg_argmin(q_values, epsilon, rng):
    if rng.random() < epsilon:
        return int(rng.integers(len(q_values)))
    return int(np.argmin(q_values))


def eg_never_explores(q_values, epsilon, rng):
    return int(np.argmax(q_values))


def eg_off_by_one_range(q_values, epsilon, rng):
    if rng.random() < epsilon:
        return int(rng.integers(len(q_values) - 1))
    return int(np.argmax(q_values))


def eg_returns_q_value(q_values, epsilon, rng):
    return float(np.max(q_values))


def huber_squared(errors, delta=1.0):
    return 0.5 * errors**2


def huber_absolute(errors, delta=1.0):
    return np.abs(errors)


def huber_twice(errors, delta=1.0):
    absolute = np.abs(errors)
    return np.where(absolute <= delta, errors**2, 2 * delta * (absolute - 0.5 * delta))


def huber_mean(errors, delta=1.0):
    return np.mean(huber_loss(errors, delta))


def huber_ignores_delta(errors, delta=1.0):
    return huber_loss(errors, 1.0)


def gradient_raw(errors, delta=1.0):
    return errors


def gradient_sign(errors, delta=1.0):
    return np.sign(errors)


def gradient_ignores_delta(errors, delta=1.0):
    return np.clip(errors, -1.0, 1.0)


MISTAKES = [
    (checks.check_td_targets_terminal, td_ignores_terminated, "ignores `terminated`"),
    (checks.check_td_targets_terminal, td_inverted_mask, "mask is inverted"),
    (checks.check_td_targets_values, td_max_over_batch, r"batch \(axis 0\).*axis=1"),
    (checks.check_td_targets_values, td_global_max, "whole batch"),
    (checks.check_td_targets_values, td_broadcast_column, r"shape \(3, 3\).*broadcast"),
    (checks.check_td_targets_values, td_no_discount, "ignores the discount"),
    (checks.check_td_targets_values, td_discount_twice, "discounts twice"),
    (checks.check_td_targets_values, td_mean_instead_of_max, r"the targets are \[4.0, -1.0, 7.0\]"),
    (checks.check_epsilon_greedy_explores, eg_inverted, "inverted"),
    (checks.check_epsilon_greedy_explores, eg_never_greedy_when_exploring, "greedy one included"),
    (checks.check_epsilon_greedy_is_greedy, eg_argmin, "argmin instead of argmax"),
    (checks.check_epsilon_greedy_explores, eg_never_explores, "inverted|every action must be random"),
    (checks.check_epsilon_greedy_explores, eg_off_by_one_range, "about 25%"),
    (checks.check_epsilon_greedy_is_greedy, eg_returns_q_value, "must return an action index"),
    (checks.check_huber_loss_values, huber_squared, "quadratic everywhere"),
    (checks.check_huber_loss_values, huber_absolute, r"\|error\| everywhere"),
    (checks.check_huber_loss_values, huber_twice, "twice too large"),
    (checks.check_huber_loss_values, huber_mean, "elementwise"),
    (checks.check_huber_loss_values, huber_ignores_delta, "use delta"),
    (checks.check_huber_gradient_is_clipped, gradient_raw, "raw error"),
    (checks.check_huber_gradient_is_clipped, gradient_sign, "sign of the error"),
    (checks.check_huber_gradient_is_clipped, gradient_ignores_delta, "clip to"),
    (checks.check_q_learning_bootstraps, make_q_learning(bootstrap_on="never"), "bootstraps after `terminated`"),
    (checks.check_q_learning_bootstraps, make_q_learning(bootstrap_on="either"), "treats a time-limit truncation"),
    (checks.check_q_learning_bootstraps, make_q_learning(carry_state=False), "`state = next_state` missing"),
    (checks.check_q_learning_bootstraps, make_q_learning(update="add"), "keeps growing: is alpha \\* target added"),
    (checks.check_q_learning_bootstraps, make_q_learning(update="replace"), "should settle at the reward, 1, but it"),
    (checks.check_q_learning_bootstraps, make_q_learning(discount_power=2), "settle at 1 / \\(1 - gamma\\) = 2"),
    pytest.param(  # learns on CliffWalking until it gives up: about 8 s
        checks.check_q_learning_finds_the_safe_shortest_path,
        make_q_learning(step_sign=-0.1),
        "13-step path",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize(
    ("check", "answer", "message"), MISTAKES, ids=[(m.values if hasattr(m, "values") else m)[2][:30] for m in MISTAKES]
)
def test_each_mistake_is_named(check, answer, message):
    """Check that each classic mistake fails its check with a message that names it."""
    with pytest.raises(AssertionError, match=message):
        check(answer)


def test_only_a_truncation_mistake_is_blamed_on_truncation():
    """Check that update mistakes whose values settle too low are not blamed on `truncated`."""
    for answer in (make_q_learning(update="replace"), make_q_learning(discount_power=2)):
        with pytest.raises(AssertionError) as failure:
            checks.check_q_learning_bootstraps(answer)
        assert "truncation" not in str(failure.value)


@pytest.mark.parametrize("wrong", [td_ignores_terminated, td_inverted_mask, td_max_over_batch])
def test_a_td_targets_mistake_costs_td_targets_only(wrong):
    """Check that q_learning's checks run it with the package's td_targets, and put the student's back."""
    q_learning = make_q_learning()
    student = types.FunctionType(
        q_learning.__code__, {**globals(), "td_targets": wrong}, closure=q_learning.__closure__
    )

    checks.check_q_learning_bootstraps(student)

    assert student.__globals__["td_targets"] is wrong


def test_an_epsilon_greedy_mistake_costs_epsilon_greedy_only():
    """Check that the CliffWalking check runs q_learning with the package's epsilon_greedy."""
    q_learning = make_q_learning()
    namespace = {**globals(), "epsilon_greedy": eg_argmin}
    student = types.FunctionType(q_learning.__code__, namespace, closure=q_learning.__closure__)

    checks.check_q_learning_finds_the_safe_shortest_path(student)

    assert namespace["epsilon_greedy"] is eg_argmin


def test_an_answer_that_raises_is_reported_with_its_error():
    """Check that an exception inside the student's code becomes a failure that quotes it."""

    def broken(rewards, terminated, next_q_values, gamma):
        raise KeyError("oops")

    with pytest.raises(AssertionError, match="td_targets raised KeyError: 'oops'"):
        checks.check_td_targets_values(broken)


def test_an_earlier_answer_whose_cell_failed_is_lent_for_the_check_only():
    """Check that q_learning is judged even when epsilon_greedy was never defined (its cell failed), and stays so."""
    q_learning = make_q_learning()
    namespace = {name: value for name, value in globals().items() if name != "epsilon_greedy"}
    student = types.FunctionType(q_learning.__code__, namespace, closure=q_learning.__closure__)

    checks.check_q_learning_bootstraps(student)

    assert "epsilon_greedy" not in namespace
