"""The visible checks of notebook 06 pass the solutions and the package's references, and name each mistake.

The correct answers are the three exercises taken from the solution notebook itself
(and, where the contract is the same, the package's ``QPolicy``); each buggy variant
below changes one piece of them and is named after its mistake.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from dqn_helpers import tf
from dqn_helpers.checks import evaluation as checks
from dqn_helpers.policies import QPolicy
from tests import cells
from tests.conftest import REPO

SOLUTION = REPO / "solutions" / "06_evaluation" / "06_evaluation.ipynb"


def _solutions() -> dict:
    """Run the notebook's three exercise cells (solutions filled in), as the notebook would."""
    namespace = {"__name__": "__main__", "np": np, "tf": tf, "imageio": imageio, "Path": Path}
    return cells.run_cells(SOLUTION, ["EpsilonGreedyPolicy", "evaluate_agent", "write_video"], namespace)


_NOTEBOOK = _solutions()
Policy, evaluate_agent, write_video = (
    _NOTEBOOK["EpsilonGreedyPolicy"],
    _NOTEBOOK["evaluate_agent"],
    _NOTEBOOK["write_video"],
)


# --- buggy policies (exercise 1) --------------------------------------------------------------------


class StateNotBatched(Policy):
    def q_values(self, state):
        return self._forward(state).numpy()


class KeepsTheBatchAxis(Policy):
    def q_values(self, state):
        return self._forward(state[None]).numpy()


class ScalesTheState(Policy):
    def q_values(self, state):
        return self._forward(state[None] / 255.0).numpy()[0]


class ArgmaxOverTheBatchAxis(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if rng.random() < epsilon:
            return int(rng.integers(self.num_actions))
        return int(np.argmax(self._forward(state[None]).numpy(), axis=0))


class ArgmaxOverTheBatchAxisNoInt(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if rng.random() < epsilon:
            return int(rng.integers(self.num_actions))
        return np.argmax(self._forward(state[None]).numpy(), axis=0)


class ArgmaxOverTheBatchAxisFirstEntry(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if rng.random() < epsilon:
            return int(rng.integers(self.num_actions))
        return int(np.argmax(self._forward(state[None]).numpy(), axis=0)[0])


class ArgmaxOverAxisOne(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if rng.random() < epsilon:
            return int(rng.integers(self.num_actions))
        return int(np.argmax(self.q_values(state), axis=1))


class Argmin(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if rng.random() < epsilon:
            return int(rng.integers(self.num_actions))
        return int(np.argmin(self.q_values(state)))


class IgnoresEpsilon(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        return int(np.argmax(self.q_values(state)))


class GreedyWithProbabilityEpsilon(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if rng.random() < epsilon:
            return int(np.argmax(self.q_values(state)))
        return int(rng.integers(self.num_actions))


class InvertedComparison(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if rng.random() > epsilon:
            return int(rng.integers(self.num_actions))
        return int(np.argmax(self.q_values(state)))


class ExploresWithoutTheGreedyAction(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        best = int(np.argmax(self.q_values(state)))
        if rng.random() < epsilon:
            return int(rng.choice([a for a in range(self.num_actions) if a != best]))
        return best


class ExploresOneActionShort(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if rng.random() < epsilon:
            return int(rng.integers(self.num_actions - 1))
        return int(np.argmax(self.q_values(state)))


class GlobalRandom(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if np.random.random() < epsilon:
            return int(np.random.randint(self.num_actions))
        return int(np.argmax(self.q_values(state)))


class ExploresWithTheGlobalGenerator(Policy):
    def __call__(self, state, rng, epsilon=0.0):
        if np.random.random() < epsilon:  # the choice with np.random, the action with rng
            return int(rng.integers(self.num_actions))
        return int(np.argmax(self.q_values(state)))


class FourActionsHardCoded(Policy):
    def __init__(self, q_network):
        super().__init__(q_network)
        self.num_actions = 4


# --- buggy evaluation loops (exercise 2) --------------------------------------------------------------


def _loop(
    env,
    policy,
    episodes,
    *,
    epsilon=0.05,
    seed=0,
    clip=False,
    stop_at_lost_life=False,
    reset_seed="seed + i",
    carry_state=True,
    ends_on=("terminated", "truncated"),
    pass_epsilon=True,
    reset_score=True,
    rng_per_game=False,
    as_list=False,
):
    """evaluate_agent with switches for its classic mistakes."""
    rng = np.random.default_rng(seed)
    scores, score = [], 0.0
    for episode in range(episodes):
        if rng_per_game:
            rng = np.random.default_rng(seed + episode)
        reset = {"seed + i": seed + episode, "seed": seed, "none": None}[reset_seed]
        state, info = env.reset(seed=reset)
        first, lives = state, info.get("lives")
        if reset_score:
            score = 0.0
        while True:
            action = policy(state if carry_state else first, rng, epsilon) if pass_epsilon else policy(state, rng)
            state, reward, terminated, truncated, info = env.step(action)
            score += np.sign(reward) if clip else reward
            if stop_at_lost_life and info["lives"] < lives:
                break
            if ("terminated" in ends_on and terminated) or ("truncated" in ends_on and truncated):
                break
        scores.append(score)
    return scores if as_list else np.array(scores, dtype=np.float64)


def _variant(name: str, **mistake):
    def evaluate(env, policy, episodes, *, epsilon=0.05, seed=0):
        return _loop(env, policy, episodes, epsilon=epsilon, seed=seed, **mistake)

    evaluate.__name__ = name
    return evaluate


StopsAtTheFirstLostLife = _variant("StopsAtTheFirstLostLife", stop_at_lost_life=True)
ClipsRewards = _variant("ClipsRewards", clip=True)
SameSeedEveryGame = _variant("SameSeedEveryGame", reset_seed="seed")
NoSeed = _variant("NoSeed", reset_seed="none")
StateNotCarriedForward = _variant("StateNotCarriedForward", carry_state=False)
IgnoresTruncated = _variant("IgnoresTruncated", ends_on=("terminated",))
IgnoresTerminated = _variant("IgnoresTerminated", ends_on=("truncated",))
EpsilonNotPassedOn = _variant("EpsilonNotPassedOn", pass_epsilon=False)
ScoresAddUpAcrossGames = _variant("ScoresAddUpAcrossGames", reset_score=False)
NewGeneratorEveryGame = _variant("NewGeneratorEveryGame", rng_per_game=True)
ReturnsAList = _variant("ReturnsAList", as_list=True)


def EpsilonZero(env, policy, episodes, *, epsilon=0.05, seed=0):
    return evaluate_agent(env, policy, episodes, epsilon=0.0, seed=seed)


def UnseededGenerator(env, policy, episodes, *, epsilon=0.05, seed=0):
    rng = np.random.default_rng()
    scores = np.zeros(episodes)
    for episode in range(episodes):
        state, _ = env.reset(seed=seed + episode)
        while True:
            state, reward, terminated, truncated, _ = env.step(policy(state, rng, epsilon))
            scores[episode] += reward
            if terminated or truncated:
                break
    return scores


# --- buggy video writers (exercise 3) -----------------------------------------------------------------


def _writer(name: str, *, prepare=lambda frame, scale: frame, pad=True, mkdir=True, fps=None, returns=True, **settings):
    """write_video with switches for its classic mistakes: ``prepare(frame, scale)`` enlarges each frame."""

    def write(frames, path, fps_asked=15, scale=2, **kwargs):
        fps_asked = kwargs.get("fps", fps_asked)
        path = Path(path)
        if mkdir:
            path.parent.mkdir(parents=True, exist_ok=True)
        options = {
            "format": "FFMPEG",
            "fps": fps or fps_asked,
            "macro_block_size": 1,
            "ffmpeg_log_level": "error",
            "codec": "libx264",
            "pixelformat": "yuv420p",
        }
        options.update(settings)
        count = 0
        with imageio.get_writer(path, **options) as writer:
            for frame in frames:
                frame = prepare(frame, scale)
                if pad:
                    height, width = frame.shape[:2]
                    frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
                writer.append_data(frame)
                count += 1
        return count if returns else None

    def write_video(frames, path, fps=15, scale=2):
        return write(frames, path, fps, scale)

    write_video.__name__ = name
    return write_video


def _enlarge(frame, scale):
    return np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)


FloatFrames = _writer("FloatFrames", prepare=lambda f, s: _enlarge(f, s).astype(np.float32))
FramesScaledToOne = _writer("FramesScaledToOne", prepare=lambda f, s: _enlarge(f, s) / 255.0)
NoPadding = _writer("NoPadding", prepare=_enlarge, pad=False)
DefaultMacroBlockSize = _writer("DefaultMacroBlockSize", prepare=_enlarge, pad=False, macro_block_size=16)
Mpeg4Codec = _writer("Mpeg4Codec", prepare=_enlarge, codec="mpeg4")
Yuv444 = _writer("Yuv444", prepare=_enlarge, pixelformat="yuv444p")
BASELINE = {"ffmpeg_params": ["-profile:v", "baseline"]}  # as the notebook asks: then ffmpeg refuses other formats
Mpeg4CodecInBaseline = _writer("Mpeg4CodecInBaseline", prepare=_enlarge, codec="mpeg4", **BASELINE)
Yuv444InBaseline = _writer("Yuv444InBaseline", prepare=_enlarge, pixelformat="yuv444p", **BASELINE)
Tiled = _writer("Tiled", prepare=lambda f, s: np.tile(f, (s, s, 1)))
SwapsRedAndBlue = _writer("SwapsRedAndBlue", prepare=lambda f, s: _enlarge(f, s)[..., ::-1])
RepeatsTheChannelAxis = _writer(
    "RepeatsTheChannelAxis", prepare=lambda f, s: np.repeat(np.repeat(f, s, axis=0), s, axis=2)
)
IgnoresScale = _writer("IgnoresScale", prepare=lambda f, s: f)
WidthAndHeightSwapped = _writer("WidthAndHeightSwapped", prepare=lambda f, s: _enlarge(f, s).transpose(1, 0, 2))
FpsHardCoded = _writer("FpsHardCoded", prepare=_enlarge, fps=30)
NoFolderMade = _writer("NoFolderMade", prepare=_enlarge, mkdir=False)
ReturnsNothing = _writer("ReturnsNothing", prepare=_enlarge, returns=False)


def DropsTheLastFrame(frames, path, fps=15, scale=2):
    return write_video(list(frames)[:-1], path, fps=fps, scale=scale)


# --- the tables ---------------------------------------------------------------------------------------

POLICY_CHECKS = [checks.check_policy_q_values, checks.check_policy_is_greedy, checks.check_policy_explores]
EVALUATE_CHECKS = [
    checks.check_evaluate_agent_full_games,
    checks.check_evaluate_agent_no_op_starts,
    checks.check_evaluate_agent_matches_the_protocol_on_breakout,
]
VIDEO_CHECKS = [checks.check_video_format, checks.check_video_pixels, checks.check_video_odd_sizes]

# (buggy answer, the check that must catch it, key words of its message)
BUGGY = [
    # the policy: batch axis, scaling twice, argmax over the wrong axis, argmin
    (StateNotBatched, checks.check_policy_q_values, "give it a batch of one, state\\[None\\]"),
    (KeepsTheBatchAxis, checks.check_policy_q_values, "got \\(1, 4\\).*take row 0"),
    (ScalesTheState, checks.check_policy_q_values, "scaled to \\[0, 1\\]"),
    (ArgmaxOverTheBatchAxis, checks.check_policy_is_greedy, "argmax over the batch axis"),
    (
        ArgmaxOverTheBatchAxisNoInt,
        checks.check_policy_is_greedy,
        "got an array of shape \\(4,\\).*argmax over the batch axis",
    ),
    (ArgmaxOverTheBatchAxisFirstEntry, checks.check_policy_is_greedy, "always picks action 0.*batch axis"),
    (ArgmaxOverAxisOne, checks.check_policy_is_greedy, "no axis 1"),
    (Argmin, checks.check_policy_is_greedy, "lowest Q-value.*argmin"),
    # epsilon ignored, or inverted: greedy only with probability epsilon
    (IgnoresEpsilon, checks.check_policy_explores, "stays greedy: is epsilon ignored"),
    (GreedyWithProbabilityEpsilon, checks.check_policy_is_greedy, "acting greedily only with probability epsilon"),
    (GreedyWithProbabilityEpsilon, checks.check_policy_explores, "stays greedy.*inverted"),
    (InvertedComparison, checks.check_policy_is_greedy, "test inverted"),
    (ExploresWithoutTheGreedyAction, checks.check_policy_explores, "never picks the greedy action"),
    (ExploresOneActionShort, checks.check_policy_explores, "never picks action 3.*upper end is excluded"),
    (GlobalRandom, checks.check_policy_explores, "with the `rng` passed to the policy"),
    (ExploresWithTheGlobalGenerator, checks.check_policy_explores, "with epsilon = 0.5.*the choice to explore is"),
    # the loop: a lost life is not the end of a game; true points; every game to its end
    (
        StopsAtTheFirstLostLife,
        checks.check_evaluate_agent_full_games,
        "ended game 0 when a life was lost.*all its lives",
    ),
    (StopsAtTheFirstLostLife, checks.check_evaluate_agent_matches_the_protocol_on_breakout, "stopped game 0 after"),
    (ClipsRewards, checks.check_evaluate_agent_full_games, "clipped to \\+1.*the game's own score"),
    (IgnoresTruncated, checks.check_evaluate_agent_full_games, "after game 0 was over \\(truncated=True\\)"),
    (IgnoresTerminated, checks.check_evaluate_agent_full_games, "after game 0 was over \\(terminated=True\\)"),
    (
        IgnoresTerminated,
        checks.check_evaluate_agent_matches_the_protocol_on_breakout,
        "times in one episode without stopping",
    ),
    (ScoresAddUpAcrossGames, checks.check_evaluate_agent_full_games, "add up across games"),
    (ReturnsAList, checks.check_evaluate_agent_full_games, "must return a NumPy array of shape \\(3,\\)"),
    # the loop: the same no-op start for every game, epsilon and the state not passed on
    (
        SameSeedEveryGame,
        checks.check_evaluate_agent_no_op_starts,
        "every game was reset with seed=3.*same random no-op start",
    ),
    (NoSeed, checks.check_evaluate_agent_no_op_starts, "without a seed the no-op starts are not reproducible"),
    (
        SameSeedEveryGame,
        checks.check_evaluate_agent_matches_the_protocol_on_breakout,
        "game 1 was reset with seed=0, not seed \\+ 1 = 1",
    ),
    (NoSeed, checks.check_evaluate_agent_matches_the_protocol_on_breakout, "game 0 was reset with seed=None"),
    (EpsilonNotPassedOn, checks.check_evaluate_agent_no_op_starts, "called with epsilon 'not given': pass it on"),
    (EpsilonZero, checks.check_evaluate_agent_no_op_starts, "called with epsilon 0.0: pass it on"),
    (
        StateNotCarriedForward,
        checks.check_evaluate_agent_no_op_starts,
        "not given the newest state.*state = next_state",
    ),
    (UnseededGenerator, checks.check_evaluate_agent_no_op_starts, "chose different actions.*default_rng\\(seed\\)"),
    (NewGeneratorEveryGame, checks.check_evaluate_agent_no_op_starts, "a new generator for each game"),
    (NewGeneratorEveryGame, checks.check_evaluate_agent_matches_the_protocol_on_breakout, "first differs in game 1"),
    # the video: float frames, odd sizes, codec and pixel format, frame shapes
    (FloatFrames, checks.check_video_format, "Lossy conversion from float32 to uint8.*turned into floats"),
    (FramesScaledToOne, checks.check_video_pixels, "Lossy conversion from float64"),
    (NoPadding, checks.check_video_odd_sizes, "must both be even"),
    (DefaultMacroBlockSize, checks.check_video_format, "imageio resized your frames.*macro_block_size=1"),
    (DefaultMacroBlockSize, checks.check_video_odd_sizes, "imageio resized your frames"),
    (Mpeg4Codec, checks.check_video_format, "codec is 'mpeg4'.*libx264"),
    (Yuv444, checks.check_video_format, "pixel format is 'yuv444p.*pixelformat='yuv420p'"),
    (Mpeg4CodecInBaseline, checks.check_video_format, "ffmpeg refused.*codec 'mpeg4'.*codec='libx264'"),
    (Mpeg4CodecInBaseline, checks.check_video_odd_sizes, "no video even from frames of an even size"),
    (Yuv444InBaseline, checks.check_video_pixels, "no video at the path.*Likely causes"),
    (NoFolderMade, checks.check_video_odd_sizes, "no video even from frames of an even size.*mkdir"),
    (Tiled, checks.check_video_pixels, "np.tile repeats the whole picture"),
    (SwapsRedAndBlue, checks.check_video_pixels, "red and blue swapped"),
    (RepeatsTheChannelAxis, checks.check_video_format, "channel axis"),
    (IgnoresScale, checks.check_video_format, "must give a 420 x 320 video.*got 210 x 160"),
    (WidthAndHeightSwapped, checks.check_video_format, "got 320 x 420"),
    (FpsHardCoded, checks.check_video_format, "plays at 30.0 frames per second, asked for 15"),
    (NoFolderMade, checks.check_video_format, "path.parent.mkdir"),
    (ReturnsNothing, checks.check_video_format, "must return the number of frames it wrote, 12, got None"),
    (DropsTheLastFrame, checks.check_video_format, "12 frames were given, the video holds 11"),
]


@pytest.mark.parametrize("policy_class", [Policy, QPolicy], ids=["notebook", "QPolicy"])
@pytest.mark.parametrize("check", POLICY_CHECKS, ids=lambda f: f.__name__)
def test_correct_policies_pass(check, policy_class):
    """Check that the solution and the package's QPolicy pass the policy checks, at the hidden tests' sizes too."""
    check(policy_class)
    check(policy_class, num_actions=6, seed=5)


HIDDEN_EVALUATE_ARGUMENTS = {  # as the solution notebook's hidden tests call them
    checks.check_evaluate_agent_full_games: {"episodes": 5, "seed": 11},
    checks.check_evaluate_agent_no_op_starts: {"episodes": 3, "seed": 20},
    checks.check_evaluate_agent_matches_the_protocol_on_breakout: {"episodes": 1, "seed": 4},
}


@pytest.mark.parametrize("check", EVALUATE_CHECKS, ids=lambda f: f.__name__)
def test_the_correct_evaluation_loop_passes(check):
    """Check that the solution's loop passes, with the hidden tests' arguments too."""
    check(evaluate_agent)
    check(evaluate_agent, **HIDDEN_EVALUATE_ARGUMENTS[check])


@pytest.mark.parametrize("check", VIDEO_CHECKS, ids=lambda f: f.__name__)
def test_the_correct_video_writer_passes(check):
    """Check that the solution's writer passes, with the hidden tests' arguments too."""
    check(write_video)
    check(write_video, seed=4)


def test_the_hidden_video_format_passes():
    """Check the hidden test's other rate and scale."""
    checks.check_video_format(write_video, fps=30, scale=3, seed=4)
    checks.check_video_pixels(write_video, scale=3, seed=4)


def test_the_package_video_writer_passes_the_format_and_pixel_checks():
    """Check that dqn_helpers.video.write_video, the reference, passes the checks of the same contract."""
    from dqn_helpers.video import write_video as reference_write_video

    checks.check_video_format(reference_write_video)
    checks.check_video_pixels(reference_write_video)


@pytest.mark.parametrize(("answer", "check", "message"), BUGGY, ids=lambda v: getattr(v, "__name__", ""))
def test_buggy_answers_fail_with_a_message_that_names_the_mistake(answer, check, message):
    """Check that each buggy answer fails its check with a message naming its mistake."""
    with pytest.raises(AssertionError, match=message):
        check(answer)


@pytest.mark.parametrize("policy_class", [StateNotBatched, KeepsTheBatchAxis, ScalesTheState], ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "check", [checks.check_policy_is_greedy, checks.check_policy_explores], ids=lambda f: f.__name__
)
def test_a_q_values_mistake_costs_only_the_q_values_check(check, policy_class):
    """Check that the checks of choosing an action use the network's exact Q-values, not the policy's own q_values."""
    check(policy_class)


def test_hard_coded_action_count_is_named():
    """Check that a policy that assumes 4 actions fails the hidden tests' 6-action network."""
    with pytest.raises(AssertionError, match="policy.num_actions must be the number of the network's outputs, 6"):
        checks.check_policy_q_values(FourActionsHardCoded, num_actions=6)


def test_the_q_values_network_reads_its_values_from_the_state():
    """Check the checks' tiny network: Q(s, a) = 0.25 * s[-1, 0, a] - 20, on a batch."""
    network = checks.q_values_network(4)
    states = np.zeros((2, 4, 84, 84), np.uint8)
    states[1, -1, 0, :4] = [80, 0, 40, 4]
    np.testing.assert_allclose(network(states).numpy(), [[-20.0] * 4, [0.0, -20.0, -10.0, -19.0]])
