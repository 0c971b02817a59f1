"""Tests of dqn_helpers.video: MP4/GIF writing, recording an episode, inline display."""

from __future__ import annotations

import base64
import re
import subprocess

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest
from IPython.display import Image, Video

from dqn_helpers.envs import make_env
from dqn_helpers.evaluation import play_episode
from dqn_helpers.policies import RandomPolicy
from dqn_helpers.video import RecordedEpisode, record_episode, show_video, write_video

HEIGHT, WIDTH = 210, 160  # the Atari screen


def screens(count: int) -> list[np.ndarray]:
    """Distinct solid-grey frames of the Atari screen's size (lossy codecs keep their level)."""
    return [np.full((HEIGHT, WIDTH, 3), 20 + 20 * i, np.uint8) for i in range(count)]


def probe(path) -> str:
    """Ffmpeg's description of a media file (it prints it to stderr, with no output file)."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=60
    )
    return result.stderr


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    """An MP4 of 10 frames written once, and write_video's return value."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    return path, write_video(screens(10), path)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One short game of the random agent, recorded to MP4."""
    path = tmp_path_factory.mktemp("record") / "game.mp4"
    return record_episode(RandomPolicy(4), path, max_episode_frames=200, seed=1)


# --- write_video -----------------------------------------------------------------------------


def test_mp4_has_every_frame_at_double_size(mp4):
    """Imageio reads back 10 frames of 420x320 (210x160 doubled), 15 fps, with the grey levels kept."""
    path, count = mp4
    assert count == 10
    with imageio.get_reader(path) as reader:
        assert reader.get_meta_data()["fps"] == 15
        frames = list(reader.iter_data())
    assert len(frames) == 10
    assert all(frame.shape == (2 * HEIGHT, 2 * WIDTH, 3) for frame in frames)
    np.testing.assert_allclose([frame.mean() for frame in frames], [20 + 20 * i for i in range(10)], atol=3)


def test_mp4_is_browser_playable_h264(mp4):
    """H.264 baseline in yuv420p, 320x420: what browsers and exported notebooks play."""
    info = probe(mp4[0])
    assert re.search(r"Video: h264 \((Constrained )?Baseline\)", info), info
    assert "yuv420p" in info
    assert "320x420" in info


def test_mp4_index_is_at_the_front(mp4):
    """+faststart puts the moov atom before the media data, so playback can start at once."""
    data = mp4[0].read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


@pytest.mark.parametrize(("scale", "size"), [(1, (210, 160)), (3, (630, 480))])
def test_scale_multiplies_the_frame_size(tmp_path, scale, size):
    """Each pixel becomes a scale x scale block."""
    path = tmp_path / "scaled.mp4"
    write_video(screens(3), path, scale=scale)
    with imageio.get_reader(path) as reader:
        assert next(iter(reader)).shape == (*size, 3)


@pytest.mark.parametrize(
    ("shape", "written"), [((45, 31, 3), (46, 32, 3)), ((44, 31, 3), (44, 32, 3)), ((45, 30, 3), (46, 30, 3))]
)
def test_odd_sized_frames_get_one_edge_row_or_column(tmp_path, shape, written, capfd):
    """H.264 in yuv420p needs even sizes: an odd frame is padded by one copied row or column, nothing on stderr."""
    frame = np.full(shape, 128, np.uint8)
    frame[-1, :] = 250  # the last row and column are bright: the padding copies them
    frame[:, -1] = 250
    path = tmp_path / "odd.mp4"
    assert write_video([frame] * 3, path, scale=1) == 3
    with imageio.get_reader(path) as reader:
        decoded = next(iter(reader))
    assert decoded.shape == written
    assert decoded[-1].mean() > 200 and decoded[:, -1].mean() > 200
    assert capfd.readouterr().err == ""


def test_fps_is_written_to_the_file(tmp_path):
    """A 30 fps video plays its 6 frames in 0.2 s."""
    path = tmp_path / "fast.mp4"
    write_video(screens(6), path, fps=30)
    with imageio.get_reader(path) as reader:
        assert reader.get_meta_data()["fps"] == 30


def test_gif_round_trip(tmp_path):
    """A GIF holds every frame at double size, with the exact grey levels."""
    path = tmp_path / "clip.gif"
    assert write_video(screens(5), path) == 5
    frames = imageio.mimread(path)
    assert len(frames) == 5
    assert all(frame.shape[:2] == (2 * HEIGHT, 2 * WIDTH) for frame in frames)
    assert [int(frame[..., 0].mean()) for frame in frames] == [20, 40, 60, 80, 100]


def test_frames_can_be_a_generator(tmp_path):
    """Frames are streamed: a generator works and its length is counted."""
    path = tmp_path / "streamed.mp4"
    assert write_video((frame for frame in screens(4)), path) == 4


def test_missing_folders_are_created(tmp_path):
    """Parent folders of the output are made as needed."""
    path = tmp_path / "a" / "b" / "clip.gif"
    write_video(screens(2), path)
    assert path.is_file()


@pytest.mark.parametrize("name", ["clip.avi", "clip.webm", "clip"])
def test_other_suffixes_raise(tmp_path, name):
    """Only .mp4 and .gif are written."""
    with pytest.raises(ValueError, match="video path must end in .mp4 or .gif"):
        write_video(screens(2), tmp_path / name)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_no_frames_raises_and_leaves_no_file(tmp_path, suffix):
    """An empty frame sequence is an error, and no empty video is left behind."""
    path = tmp_path / f"empty{suffix}"
    with pytest.raises(ValueError, match="no frames to write"):
        write_video([], path)
    assert not path.exists()


@pytest.mark.parametrize(("fps", "scale"), [(0, 2), (15, 0), (-1, 1)])
def test_bad_fps_or_scale_raise(tmp_path, fps, scale):
    """Fps and scale must be positive."""
    with pytest.raises(ValueError, match="fps and scale must be positive"):
        write_video(screens(2), tmp_path / "clip.mp4", fps=fps, scale=scale)


# --- record_episode ----------------------------------------------------------------------------


def test_record_episode_writes_a_playable_game(recorded):
    """The file plays back with one 420x320 frame per agent step."""
    assert isinstance(recorded, RecordedEpisode)
    assert recorded.path.is_file()
    with imageio.get_reader(recorded.path) as reader:
        frames = list(reader.iter_data())
    assert len(frames) == recorded.frames
    assert frames[0].shape == (420, 320, 3)
    # 200 frames: at most 200 / 4 = 50 agent steps, at least (200 - 4 - 30) / 4 = 41.5.
    assert 41 <= recorded.frames <= 50


def test_record_episode_matches_playing_the_same_game(recorded):
    """Score and frame count are those of play_episode with the same seed and epsilon 0.05."""
    env = make_env("Breakout", training=False, max_episode_frames=200)
    records = list(play_episode(env, RandomPolicy(4), np.random.default_rng(1), epsilon=0.05, seed=1))
    env.close()
    assert recorded.frames == len(records)
    assert recorded.score == sum(record.reward for record in records)
    assert isinstance(recorded.score, float)


def test_record_episode_shows_the_colour_screen(recorded):
    """Frames are the full-colour screen, not the 84x84 grayscale observation."""
    with imageio.get_reader(recorded.path) as reader:
        frame = next(iter(reader))
    channels = frame.reshape(-1, 3).astype(int)
    assert np.abs(channels[:, 0] - channels[:, 2]).max() > 50  # Breakout's bricks are coloured


def test_record_episode_gif(tmp_path):
    """Recording to .gif works too (the GIF encoder merges identical consecutive screens)."""
    result = record_episode(RandomPolicy(4), tmp_path / "game.gif", max_episode_frames=100, seed=0)
    frames = imageio.mimread(result.path)
    # 100 frames: at most 100 / 4 = 25 agent steps, at least (100 - 4 - 30) / 4 = 16.5.
    assert 16 <= result.frames <= 25
    assert result.frames // 2 < len(frames) <= result.frames
    assert frames[0].shape[:2] == (420, 320)


# --- show_video ----------------------------------------------------------------------------------


def test_show_video_embeds_mp4(mp4):
    """An MP4 becomes a Video whose HTML carries the file itself as base64."""
    path = mp4[0]
    video = show_video(path)
    assert isinstance(video, Video)
    html = video._repr_html_()
    assert "<video" in html and "base64" in html
    encoded = re.search(r"data:video/mp4;base64,([A-Za-z0-9+/=\s]+)", html).group(1)
    assert base64.b64decode("".join(encoded.split())) == path.read_bytes()
    assert 'width="320"' in html


def test_show_video_width(mp4):
    """The display width can be chosen."""
    assert 'width="500"' in show_video(mp4[0], width=500)._repr_html_()


def test_show_video_gif_is_an_image(tmp_path):
    """A GIF is shown as an Image with its bytes."""
    path = tmp_path / "clip.gif"
    write_video(screens(2), path)
    image = show_video(path)
    assert isinstance(image, Image)
    assert image.data == path.read_bytes()
    assert image.width == 320


def test_show_video_missing_file_raises(tmp_path):
    """A missing file raises FileNotFoundError with a hint to record one."""
    with pytest.raises(FileNotFoundError, match="no video at .*record_episode"):
        show_video(tmp_path / "nothing.mp4")
