"""The sandbox of graded kernels: a real ipykernel under bubblewrap, in a course-like folder."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dqn_helpers.instructor.sandbox import SandboxedKernelManager, sandbox_command
from tests.conftest import SANDBOX_PROBLEM

needs_sandbox = pytest.mark.skipif(bool(SANDBOX_PROBLEM), reason=f"the sandbox cannot run here: {SANDBOX_PROBLEM}")


def test_bad_settings_are_refused(tmp_path):
    """Check that a missing writable folder and an empty /tmp are refused, naming what was given."""
    with pytest.raises(ValueError, match="missing: .*nowhere"):
        sandbox_command(["true"], writable=[tmp_path / "nowhere"], workdir=tmp_path)
    with pytest.raises(ValueError, match="tmp_size_mb must be at least 1, got 0"):
        sandbox_command(["true"], writable=[tmp_path], workdir=tmp_path, tmp_size_mb=0)


def _course(tmp_path: Path) -> tuple[Path, Path]:
    """A course folder with a secret solution and another student's work; one student's own folder."""
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    (course / "solutions" / "secret.txt").write_text("the answer")
    (course / "autograded" / "other" / "a1").mkdir(parents=True)
    (course / "autograded" / "other" / "a1" / "work.txt").write_text("theirs")
    own = course / "autograded" / "me" / "a1"
    own.mkdir(parents=True)
    return course, own


async def _run(manager: SandboxedKernelManager, code: str, interrupt_when: Path | None = None) -> tuple[str, dict]:
    """Run ``code`` in the manager's kernel; its printed text and its reply (interrupting once ``interrupt_when`` exists)."""
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=120)
        msg_id = client.execute(code)
        if interrupt_when is not None:
            deadline = time.monotonic() + 120  # a bound on a hang: the file comes first
            while not interrupt_when.exists() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await manager.interrupt_kernel()
        text = ""
        while True:
            message = await client.get_iopub_msg(timeout=120)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                text += message["content"]["text"]
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                break
        while (reply := await client.get_shell_msg(timeout=120))["parent_header"].get("msg_id") != msg_id:
            pass
        return text, reply["content"]
    finally:
        client.stop_channels()


def _in_sandbox(tmp_path: Path, own: Path, code: str, interrupt_when: Path | None = None) -> tuple[str, dict]:
    runtime = tmp_path / "runtime"
    runtime.mkdir(exist_ok=True)

    async def main():
        manager = SandboxedKernelManager(kernel_name="python3", writable=[str(own)], runtime_folder=str(runtime))
        await manager.start_kernel()
        try:
            return await _run(manager, code, interrupt_when)
        finally:
            await manager.shutdown_kernel(now=True)

    return asyncio.run(main())


@pytest.mark.notebooks
@needs_sandbox
def test_a_kernel_sees_and_writes_only_its_own_folder(tmp_path):
    """Check that the kernel cannot read the solutions or another student's work, and writes only its folder and /tmp."""
    course, own = _course(tmp_path)
    secret, theirs = course / "solutions" / "secret.txt", course / "autograded" / "other" / "a1" / "work.txt"
    code = textwrap.dedent(f"""
        from pathlib import Path
        import numpy, dqn_helpers  # Python, its packages and the course's package are there
        for path in [{str(secret)!r}, {str(theirs)!r}]:
            print("read", path, "readable" if Path(path).exists() else "absent")
        for path in ["mine.txt", "/tmp/scratch.txt", "/planted.txt", {str(course / "planted.txt")!r}, {str(theirs)!r}]:
            try:
                Path(path).write_text("x")
                print("write", path, "written")
            except OSError as error:
                print("write", path, "refused", type(error).__name__)
        print("cwd", Path.cwd(), "")
    """)
    text, reply = _in_sandbox(tmp_path, own, code)
    assert reply["status"] == "ok", reply
    said = {tuple(line.split(" ")[:2]): line.split(" ")[2] for line in text.splitlines()}
    assert said["read", str(secret)] == "absent" and said["read", str(theirs)] == "absent"
    assert said["write", "mine.txt"] == "written" and said["write", "/tmp/scratch.txt"] == "written"
    assert said["write", "/planted.txt"] == "refused"  # outside the writable folders and /tmp, all is read-only
    assert said["write", str(theirs)] == "refused"  # the other student's folder is not there at all
    assert said["cwd", str(own)] == ""
    # This course lies in /tmp, so its planted.txt went to the kernel's private /tmp, not to the course:
    assert (own / "mine.txt").exists() and not (course / "planted.txt").exists()
    assert theirs.read_text() == "theirs" and not Path("/planted.txt").exists()
    assert not Path("/tmp/scratch.txt").exists(), "the kernel's /tmp is the machine's"


@pytest.mark.notebooks
@needs_sandbox
def test_a_kernel_has_no_network(tmp_path):
    """Check that a connection to an address on the internet fails at once: there is no route out."""
    _, own = _course(tmp_path)
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=10)\n    print('connected')\nexcept OSError as e:\n    print(e.errno)"
    text, _ = _in_sandbox(tmp_path, own, code)
    assert text.strip() == str(101)  # ENETUNREACH: only the sandbox's own loopback exists


@pytest.mark.notebooks
@needs_sandbox
def test_an_endless_cell_is_interrupted(tmp_path):
    """Check that the kernel in the sandbox stops a running cell on an interrupt (sent once the cell runs) and lives on."""
    _, own = _course(tmp_path)
    code = "import pathlib, time\npathlib.Path('running').touch()\nwhile True:\n    time.sleep(0.01)"
    _, reply = _in_sandbox(tmp_path, own, code, interrupt_when=own / "running")
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"


@pytest.mark.notebooks
@needs_sandbox
def test_a_kernel_dies_with_its_grader(tmp_path):
    """Check that killing the grading process (as a submission's time limit does) takes its sandboxed kernel along."""
    _, own = _course(tmp_path)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    grader = textwrap.dedent(f"""
        import asyncio, sys, time
        from dqn_helpers.instructor.sandbox import SandboxedKernelManager

        async def main():
            manager = SandboxedKernelManager(kernel_name="python3", writable=[{str(own)!r}], runtime_folder={str(runtime)!r})
            await manager.start_kernel()
            client = manager.client()
            client.start_channels()
            await client.wait_for_ready(timeout=120)
            print(manager.provisioner.process.pid, flush=True)
            time.sleep(600)

        asyncio.run(main())
    """)
    process = subprocess.Popen([sys.executable, "-c", grader], stdout=subprocess.PIPE, text=True)
    try:
        sandbox_pid = int(process.stdout.readline())
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 60  # a bound on a hang: the kernel goes as soon as the kernel sees its parent die
        while _alive(sandbox_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(sandbox_pid), "the sandbox outlived its grader"
    finally:
        process.kill()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
