"""What a student sees: JupyterLab and the inline gameplay video, in a real headless browser.

JupyterLab is started as ``make lab`` starts it (root folder ``notebooks/``), on a free
port of 127.0.0.1 and without a token, and Debian's Chromium, driven by Playwright,
opens the release notebooks in it:

- notebook 01 renders: its title, its exercise cells with ``___`` blanks, an idle
  kernel, and no error dialog or error notification;
- notebook 06's video cell, run in JupyterLab on the reference agent, shows a
  ``<video>`` that Chromium decodes and plays.

Screenshots and JupyterLab's log go to ``tests/artifacts/browser/``. Needs
``/usr/bin/chromium`` (``make test`` installs Debian's ``chromium`` with apt-get when it
can) and the ``playwright`` package (dev extras); without them the tests are skipped
and the skip message says why. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError:  # the dev extras are not installed
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
RENDERED_NOTEBOOK = Path("01_q_learning/01_q_learning.ipynb")  # relative to notebooks/
VIDEO_NOTEBOOK = Path("06_evaluation/06_evaluation.ipynb")
HAVE_ENOUGH_DATA = 4  # HTMLMediaElement.readyState: enough data to play through
NETWORK_NO_SOURCE = 3  # HTMLMediaElement.networkState: no <source> it could play (the error is on the <source>)
MEDIA_ERRORS = {1: "MEDIA_ERR_ABORTED", 2: "MEDIA_ERR_NETWORK", 3: "MEDIA_ERR_DECODE", 4: "MEDIA_ERR_SRC_NOT_SUPPORTED"}

SERVER_START_S = 60  # JupyterLab answers after about 5 s here
NOTEBOOK_OPEN_MS = 60_000  # page load, the notebook's widgets and a kernel start
VIDEO_CELL_MS = 120_000  # notebook 06's video cell: about 500 agent steps of the reference agent, then the MP4
VIDEO_LOAD_MS = 20_000
PLAYED_S = 0.5  # of video time, to call it playing


def _why_chromium_is_missing() -> str:
    """The skip message when /usr/bin/chromium is absent: why `make test` could not install it."""
    if shutil.which("apt-get") is None:
        why = "apt-get is not available here (not a Debian or Ubuntu system)"
    elif os.geteuid() != 0 and (
        shutil.which("sudo") is None or subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode != 0
    ):
        why = "apt-get needs root, and this user is neither root nor allowed sudo without a password"
    else:
        why = "apt-get failed (run `make browser` to see its error)"
    return (
        f"no Chromium at {CHROMIUM}, which `make test` installs with apt-get, but {why}; "
        "install Debian's chromium package to run these tests"
    )


def _why_skip() -> str | None:
    """Why the browser tests cannot run on this machine, or None if they can."""
    if sync_playwright is None:
        return "the playwright package is not installed: install the dev extras with `pip install -e '.[dev]'`"
    if not os.access(CHROMIUM, os.X_OK):
        return _why_chromium_is_missing()
    return None


SKIP_REASON = _why_skip()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]


# --- JupyterLab -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab server."""

    url: str
    runtime_dir: Path  # holds the kernels' connection files
    log: Path


def _free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lab_command(port: int) -> list[str]:
    """`make lab`'s command and options, plus what a test needs: a fixed port, no browser, no token."""
    make_lab_options = ["--ServerApp.root_dir=notebooks", *(["--allow-root"] if os.geteuid() == 0 else [])]
    return [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        *make_lab_options,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--PasswordIdentityProvider.hashed_password=",
    ]


def _test_only_options(home: Path) -> list[str]:
    """Options `make lab` has not: the backup copies of opened notebooks go to ``home``, not into notebooks/."""
    return [f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}"]


def _lab_environment(home: Path) -> dict[str, str]:
    """The environment of the server and its kernels: fast mode, and JupyterLab's state kept in ``home``.

    A private settings folder turns autosave off, so running a cell never writes the
    release notebook; private config, runtime, workspace and IPython folders keep the
    user's own out of the test and the test's out of theirs.
    """
    settings = home / "settings"
    (settings / "@jupyterlab" / "docmanager-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings").write_text('{"autosave": false}')
    return {
        **os.environ,
        "DQN_FAST": "1",
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
    }


def _log_tail(log: Path, lines: int = 30) -> str:
    """The last lines of JupyterLab's log, to put in a failure message."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def _wait_until_answering(url: str, process: subprocess.Popen, log: Path) -> None:
    """Wait until the server answers its status API; fail with its log if it exits or stays silent."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {process.returncode} before answering:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass  # not listening yet
        time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer {url} within {SERVER_START_S} s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server, its process group and its kernels (which run in sessions of their own)."""
    try:
        kernels = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kernels = []
    try:
        os.killpg(process.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for kernel in kernels:
        try:
            kernel.kill()
        except psutil.NoSuchProcess:
            pass  # already shut down, as it should be


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on notebooks/, as `make lab` runs it, on a free port and without a token."""
    home = tmp_path_factory.mktemp("jupyter")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # no screenshot of an earlier run left to mislead
    ARTIFACTS.mkdir(parents=True)
    port, log = _free_port(), ARTIFACTS / "jupyterlab.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [*_lab_command(port), *_test_only_options(home)],
            cwd=REPO,
            env=_lab_environment(home),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_answering(url, process, log)
        yield Lab(url, home / "runtime", log)
    finally:
        _stop(process)


# --- Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab, in a context of its own."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def javascript_errors(page: Page) -> list[str]:
    """The uncaught JavaScript errors that the page raises during the test."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


# --- Notebooks in JupyterLab ------------------------------------------------------------------


def _cells(notebook: Path) -> list[dict]:
    """The cells of a release notebook, each with its source as one string."""
    cells = json.loads((REPO / "notebooks" / notebook).read_text())["cells"]
    return [{**cell, "source": "".join(cell["source"])} for cell in cells]


def _open_notebook(page: Page, lab: Lab, notebook: Path) -> Locator:
    """Open a notebook of notebooks/ in JupyterLab; wait for all its cells and an idle kernel.

    Returns:
        The notebook's cells in the page, in notebook order.
    """
    cells = _cells(notebook)
    kernel = json.loads((REPO / "notebooks" / notebook).read_text())["metadata"]["kernelspec"]["display_name"]
    # ?reset: a fresh workspace, without the tabs an earlier test left open in the saved one.
    page.goto(f"{lab.url}/lab/tree/{notebook.as_posix()}?reset")
    panel = page.locator(".jp-NotebookPanel")
    shown = panel.locator(".jp-Cell")
    # The status bar says "Python 3 (ipykernel) | Idle" once the kernel has started and answered.
    kernel_status = page.locator(".jp-StatusBar-TextItem", has_text=f"{kernel} | ")
    try:
        expect(shown).to_have_count(len(cells), timeout=NOTEBOOK_OPEN_MS)  # cells are attached in batches
        expect(kernel_status).to_have_text(f"{kernel} | Idle", timeout=NOTEBOOK_OPEN_MS)
    except AssertionError as error:
        _screenshot(page, f"{notebook.stem}_not_ready")
        status = kernel_status.all_inner_texts() or ["no kernel status"]
        pytest.fail(
            f"{notebook} did not open with its {len(cells)} cells and an idle {kernel} kernel within "
            f"{NOTEBOOK_OPEN_MS} ms: JupyterLab shows {shown.count()} cells, kernel status {status}\n{error}\n"
            f"JupyterLab's log ends with:\n{_log_tail(lab.log)}"
        )
    return shown


def _assert_no_error_shown(page: Page, javascript_errors: list[str], what: str) -> None:
    """No dialog, no error notification and no uncaught JavaScript error in the page."""
    dialogs = page.locator(".jp-Dialog").all_inner_texts()
    assert not dialogs, f"{what}: JupyterLab shows a dialog, expected none: {dialogs}"
    toasts = page.locator(".Toastify__toast--error").all_inner_texts()
    assert not toasts, f"{what}: JupyterLab shows error notifications, expected none: {toasts}"
    assert not javascript_errors, f"{what}: the page raised JavaScript errors, expected none: {javascript_errors}"


def _screenshot(target: Page | Locator, name: str) -> Path:
    """Save a screenshot in the test artefacts; returns its path."""
    path = ARTIFACTS / f"{name}.png"
    target.screenshot(path=str(path))
    return path


def test_release_notebook_renders_in_jupyterlab(lab, page, javascript_errors):
    """Notebook 01 opens in JupyterLab with its title, its exercise cells and an idle kernel, and no error."""
    cells = _cells(RENDERED_NOTEBOOK)
    title = cells[0]["source"].splitlines()[0].removeprefix("# ")
    exercises = [i for i, cell in enumerate(cells) if cell["cell_type"] == "code" and "___" in cell["source"]]
    assert exercises, f"{RENDERED_NOTEBOOK} has no cell with a ___ blank to check"

    shown = _open_notebook(page, lab, RENDERED_NOTEBOOK)
    _screenshot(page, RENDERED_NOTEBOOK.stem)
    heading = shown.first.locator("h1")
    assert title in heading.inner_text(), f"expected the title {title!r}, the first cell shows {heading.inner_text()!r}"
    for index in exercises:
        exercise = shown.nth(index)
        exercise.scroll_into_view_if_needed()  # CodeMirror draws only the lines near the visible part of the page
        code = "\n".join(exercise.locator(".jp-InputArea-editor .cm-line").all_text_contents())
        assert "___" in code, f"exercise cell {index} shows no ___ blank in JupyterLab; it shows:\n{code}"
    _screenshot(shown.nth(exercises[0]), f"{RENDERED_NOTEBOOK.stem}_exercise")
    _assert_no_error_shown(page, javascript_errors, f"{RENDERED_NOTEBOOK} just opened")


# --- The gameplay video -----------------------------------------------------------------------

# What the cells before notebook 06's video cell leave in the kernel of a student who did the
# exercises: the notebook's own setup cell, then the package's versions of its exercises.
PREPARE_VIDEO_CELL = """\
import os
os.chdir({workdir!r})  # the cell writes videos/reference_agent.mp4 here, not next to the release notebook
{setup}
from dqn_helpers import reference
from dqn_helpers.policies import QPolicy
from dqn_helpers.video import write_video
policy = QPolicy(reference.load_network())
"""

_VIDEO_STATE_JS = """async (video, timeoutMs) => {
    // Poll: no one event covers loading, failing, and a <source> failing (its error event may be over).
    const deadline = performance.now() + timeoutMs;
    let noSourceSince = null;  // the element passes through NETWORK_NO_SOURCE while it starts choosing a source
    while (video.readyState < HAVE_ENOUGH_DATA && !video.error && performance.now() < deadline) {
        const noSource = video.networkState === NETWORK_NO_SOURCE && video.readyState === 0;
        noSourceSince = noSource ? (noSourceSince ?? performance.now()) : null;
        if (noSource && performance.now() - noSourceSince > 1000) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return {readyState: video.readyState, networkState: video.networkState, error: video.error && video.error.code,
            message: video.error && video.error.message, width: video.videoWidth, height: video.videoHeight,
            duration: video.duration, source: video.currentSrc.slice(0, 30)};
}""".replace("HAVE_ENOUGH_DATA", str(HAVE_ENOUGH_DATA)).replace("NETWORK_NO_SOURCE", str(NETWORK_NO_SOURCE))

_PLAY_JS = """async (video, [playedSeconds, timeoutMs]) => {
    video.muted = true;  // browsers play muted media without a click
    const start = video.currentTime;
    let refused = null;
    try { await video.play(); } catch (error) { refused = `${error.name}: ${error.message}`; }
    const deadline = performance.now() + timeoutMs;
    while (!refused && video.currentTime < start + playedSeconds && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    video.pause();
    return {start, now: video.currentTime, refused, decodedFrames: video.getVideoPlaybackQuality().totalVideoFrames};
}"""


def _why_video_does_not_play(video: Locator, *, load_ms: int = VIDEO_LOAD_MS, play_ms: int = 10_000) -> str | None:
    """Load and play a ``<video>`` (muted) and say what went wrong, or None if it plays.

    Args:
        video: The ``<video>`` element.
        load_ms: How long it may take to reach HAVE_ENOUGH_DATA.
        play_ms: How long its ``currentTime`` may take to advance by ``PLAYED_S`` seconds.

    Returns:
        None if it loaded, has a picture, and played; else what was expected and what was seen.
    """
    state = video.evaluate(_VIDEO_STATE_JS, load_ms)
    if state["error"] is not None:
        code = MEDIA_ERRORS.get(state["error"], state["error"])
        return f"the <video> failed to load: {code} ({state['message'] or 'no message'}); state {state}"
    if state["networkState"] == NETWORK_NO_SOURCE and state["readyState"] == 0:
        return (
            "the <video> has no source Chromium can play (networkState NETWORK_NO_SOURCE, readyState 0): "
            f"is the MP4 H.264 with yuv420p pixels? state {state}"
        )
    if state["readyState"] < HAVE_ENOUGH_DATA:
        return (
            f"the <video> never reached HAVE_ENOUGH_DATA (readyState {state['readyState']} after {load_ms / 1000:g} s, "
            f"expected {HAVE_ENOUGH_DATA}); state {state}"
        )
    if state["width"] == 0 or state["height"] == 0:
        return f"the <video> loaded but has no picture (videoWidth x videoHeight {state['width']} x {state['height']})"
    played = video.evaluate(_PLAY_JS, [PLAYED_S, play_ms])
    if played["refused"]:
        return f"the browser refused to play the <video>: {played['refused']}"
    if played["now"] < played["start"] + PLAYED_S:
        return (
            f"the <video> did not play: currentTime went from {played['start']:.2f} s to {played['now']:.2f} s in "
            f"{play_ms / 1000:g} s, expected at least {PLAYED_S} s more ({played['decodedFrames']} frames decoded)"
        )
    if played["decodedFrames"] == 0:
        return f"the <video>'s time advanced but Chromium decoded no frame of it: {played}"
    return None


def _run_in_kernel(lab: Lab, notebook: Path, code: str, timeout: float) -> None:
    """Run code in the kernel of a notebook open in JupyterLab, as if its earlier cells had run.

    The code goes to the kernel directly, so nothing of it shows in the notebook.

    Raises:
        pytest.fail.Exception: If the notebook has no kernel or the code raises.
    """
    from jupyter_client import BlockingKernelClient

    with urllib.request.urlopen(f"{lab.url}/api/sessions", timeout=10) as response:
        sessions = {session["path"]: session["kernel"]["id"] for session in json.load(response)}
    if notebook.as_posix() not in sessions:
        pytest.fail(f"JupyterLab has no kernel for {notebook}; its sessions: {sorted(sessions)}")
    client = BlockingKernelClient()
    client.load_connection_file(lab.runtime_dir / f"kernel-{sessions[notebook.as_posix()]}.json")
    client.start_channels()
    printed: list[str] = []
    try:
        reply = client.execute_interactive(
            code,
            timeout=timeout,
            allow_stdin=False,
            output_hook=lambda message: printed.append(message["content"].get("text", "")),
        )
    finally:
        client.stop_channels()
    if reply["content"]["status"] != "ok":
        content = reply["content"]
        pytest.fail(
            f"preparing {notebook}'s kernel raised {content.get('ename')}: {content.get('evalue')}\n{''.join(printed)}"
        )


def test_video_cell_of_notebook_06_plays_in_chromium(lab, page, javascript_errors, tmp_path):
    """Notebook 06's video cell, run in JupyterLab, shows an embedded MP4 that Chromium decodes and plays."""
    cells = _cells(VIDEO_NOTEBOOK)
    code_cells = [i for i, cell in enumerate(cells) if cell["cell_type"] == "code"]
    # The reference agent's game: the cell after it films the student's own agent of notebook 05, if there is one.
    video_cells = [i for i in code_cells if 'show_video("videos/reference_agent.mp4")' in cells[i]["source"]]
    assert len(video_cells) == 1, (
        f"expected one cell of {VIDEO_NOTEBOOK} to show the reference agent, found {video_cells}"
    )
    video_cell = video_cells[0]

    shown = _open_notebook(page, lab, VIDEO_NOTEBOOK)
    setup = cells[code_cells[0]]["source"]
    _run_in_kernel(lab, VIDEO_NOTEBOOK, PREPARE_VIDEO_CELL.format(workdir=str(tmp_path), setup=setup), timeout=120)

    # Run the cell as a student does: click into it and press Shift+Enter.
    cell = shown.nth(video_cell)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    # The prompt turns from [*]: to [2]: when the cell has finished, whether it worked or raised.
    expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=VIDEO_CELL_MS)
    _screenshot(page, VIDEO_NOTEBOOK.stem)
    # JupyterLab shows tracebacks and warnings as stderr text.
    errors = cell.locator('.jp-OutputArea [data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
    assert not errors, f"the video cell (cell {video_cell}) showed errors or warnings, expected none:\n{errors}"
    printed = cell.locator('.jp-OutputArea [data-mime-type="application/vnd.jupyter.stdout"]').all_inner_texts()
    assert "frames written to" in "".join(printed), f"expected the video cell to report the frames written: {printed}"
    video = cell.locator(".jp-OutputArea-output video")
    assert video.count() == 1, f"expected one <video> below the video cell, found {video.count()}"

    video.scroll_into_view_if_needed()
    problem = _why_video_does_not_play(video)
    if problem is None:  # a frame from the middle of the game says more than the first one
        video.evaluate("v => new Promise((seeked) => { v.onseeked = seeked; v.currentTime = v.duration / 2; })")
    _screenshot(page, VIDEO_NOTEBOOK.stem)
    _screenshot(video, f"{VIDEO_NOTEBOOK.stem}_video")
    assert problem is None, problem
    source = video.evaluate("video => video.currentSrc.slice(0, 22)")
    assert source == "data:video/mp4;base64,", (
        f"expected the MP4 embedded in the notebook, so that exported HTML plays it too; its src starts {source!r}"
    )
    _assert_no_error_shown(page, javascript_errors, f"{VIDEO_NOTEBOOK} after its video cell")


@pytest.mark.parametrize(
    ("markup", "named"),
    [
        pytest.param("source", "NETWORK_NO_SOURCE", id="as-show_video-embeds-it"),  # <video><source src=...></video>
        pytest.param("src", "MEDIA_ERR_SRC_NOT_SUPPORTED", id="as-src-attribute"),
    ],
)
def test_the_video_check_fails_on_a_video_chromium_cannot_decode(page, markup, named):
    """The playback check is not vacuous: bytes that are no MP4 fail it, and the message names why."""
    from IPython.display import Video

    not_an_mp4 = b"these bytes are not an MP4 " * 40
    if markup == "source":  # the HTML that show_video's IPython Video(embed=True) gives the notebook
        html = Video(not_an_mp4, embed=True, mimetype="video/mp4", html_attributes="controls muted")._repr_html_()
    else:
        html = f'<video muted src="data:video/mp4;base64,{base64.b64encode(not_an_mp4).decode()}"></video>'
    page.set_content(html)
    problem = _why_video_does_not_play(page.locator("video"), load_ms=5_000, play_ms=2_000)
    assert problem is not None and named in problem, f"expected a problem naming {named}, got {problem!r}"
