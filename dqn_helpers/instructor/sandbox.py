"""A sandbox for a graded kernel: bubblewrap around the student's code.

A submission's code runs with the grader's permissions unless something stops it:
it could read ``solutions/`` and ``gradebook.db``, write into other students'
folders, or reach the network. :class:`SandboxedKernelManager` starts the kernel
under `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``) with new
namespaces of every kind, so the kernel

- has no network (a loopback device of its own and nothing else);
- sees, read-only, only the system's programs and libraries (``/usr``, a few files
  of ``/etc``), Python and its packages, and the course's own package;
- writes only into the folders it is given (its own autograded folder) and a
  private ``/tmp`` of limited size, gone when it ends;
- sees only its own processes, holds no capabilities, and dies with the grader.

Everything else (the course folder with ``solutions/``, ``source/``,
``gradebook.db``, ``grading/``, ``submitted/`` and the other students'
``autograded/`` folders, home folders, the rest of the machine) does not exist in
its view. The kernel talks to the grader over Unix sockets in a private folder:
TCP cannot cross the network namespace.

Example:
    ``problem = sandbox_problem()`` is ``None`` where the sandbox can run, else the
    reason it cannot.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer, List, Unicode

__all__ = ["SandboxedKernelManager", "sandbox_command", "sandbox_problem"]

# What of /etc a Python kernel needs: the dynamic linker's cache, user and group names,
# time zone, fonts for matplotlib, and the targets of /usr/bin's alternatives links.
# Not the rest: /etc holds the machine's secrets (shadow, keys) readable by root.
_ETC = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "passwd",
    "group",
    "nsswitch.conf",
    "localtime",
    "timezone",
    "fonts",
    "alternatives",
    "mime.types",
    "ssl/certs",
]


@functools.cache
def sandbox_problem() -> str | None:
    """Why the sandbox cannot run on this machine, or ``None`` when it can.

    Returns:
        ``None`` if ``bwrap`` is installed and can create every namespace the
        sandbox uses (it needs user namespaces, or root); else a one-line reason.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian: apt-get install bubblewrap, or `make sandbox`)"
    result = subprocess.run(
        [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "true"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return f"bubblewrap cannot create its namespaces here: {result.stderr.strip() or f'exit status {result.returncode}'}"
    return None


def sandbox_command(
    command: list[str],
    *,
    writable: list[str | Path],
    readable: list[str | Path] = (),
    workdir: str | Path,
    tmp_size_mb: int = 1024,
    environment: dict[str, str] | None = None,
) -> list[str]:
    """``command``, run inside the sandbox.

    Args:
        command: The program and its arguments, as paths seen from inside (they are the same).
        writable: Folders the program may write into, each at its own path; they must exist.
        readable: Extra files or folders it may read (Python, its packages and this
            package are always readable).
        workdir: The folder it starts in (one of ``writable``, usually).
        tmp_size_mb: Size of its private ``/tmp`` and of its private, empty home folder, in MB each.
        environment: Variables to set inside, on top of those inherited.

    Returns:
        The command line: ``setpriv`` (so the sandbox dies with its parent, the
        grader), ``bwrap`` and its arguments, then ``command``.

    Raises:
        ValueError: If a writable folder does not exist, or ``tmp_size_mb`` is not positive.
    """
    if tmp_size_mb < 1:
        raise ValueError(f"tmp_size_mb must be at least 1, got {tmp_size_mb}")
    missing = [str(path) for path in writable if not Path(path).is_dir()]
    if missing:
        raise ValueError(f"the sandbox's writable folders must exist; missing: {', '.join(missing)}")
    args = [
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--ro-bind",
        "/sys",
        "/sys",
        "--size",
        str(tmp_size_mb * 2**20),
        "--tmpfs",
        "/tmp",
    ]
    # The home folder is empty and private too. It must be the one /etc/passwd names, not only
    # $HOME: some libraries ask the passwd database (XLA caches its kernels in ~/.cache).
    home = _home()
    if home != Path("/tmp"):
        args += ["--size", str(tmp_size_mb * 2**20), "--tmpfs", str(home)]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in _ETC:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    writable = [Path(path).resolve() for path in writable]
    for path in _python_paths(around=writable) + [Path(p) for p in readable]:
        args += ["--ro-bind", str(path), str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    inside = {
        "HOME": str(home),
        "TMPDIR": "/tmp",
        "IPYTHONDIR": str(home / ".ipython"),
        "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
        # ipykernel exits when its parent pid changes, and in the new pid namespace its parent
        # is 1 from the start. 1 means "no parent to watch" to it; --die-with-parent does that job.
        "JPY_PARENT_PID": "1",
        **(environment or {}),
    }
    for name, value in inside.items():
        args += ["--setenv", name, value]
    # Last: the sandbox's own root (the folders made to hold the mounts) turns read-only, so
    # nothing is written outside the writable folders and /tmp, not even into memory.
    args += ["--remount-ro", "/", "--chdir", str(Path(workdir).resolve())]
    bwrap = shutil.which("bwrap") or "bwrap"
    # bwrap's --die-with-parent ties the kernel to bwrap; setpriv ties bwrap to the grader, so a
    # grader killed at its time limit takes its kernel along.
    prefix = ["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else []
    return [*prefix, bwrap, *args, "--", *command]


def _home() -> Path:
    """The home folder /etc/passwd gives this user (a private, empty one in the sandbox)."""
    import pwd

    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        return Path("/tmp")


def _python_paths(around: list[Path]) -> list[Path]:
    """Python, its packages and this package: the folders a kernel imports from, deduplicated.

    Never a folder that holds one of ``around`` (the kernel's writable folders): that
    would be the course folder, with everything the kernel must not see.
    """
    import dqn_helpers

    candidates = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent]
    candidates += [Path(entry) for entry in sys.path if entry and Path(entry).is_dir()]
    candidates.append(Path(dqn_helpers.__file__).resolve().parent)
    folders: list[Path] = []
    for path in sorted({path.resolve() for path in candidates if path.exists()}, key=lambda p: len(p.parts)):
        if path == Path("/") or any(parent in folders for parent in path.parents) or path in folders:
            continue
        if any(path == inner or path in inner.parents for inner in around):
            continue
        if path.parts[1:2] in (("usr",), ("proc",), ("dev",), ("sys",)) or path == Path("/tmp"):
            continue  # already there (/usr), or the sandbox's own (a venv inside /tmp is bound, /tmp is not)
        folders.append(path)
    return folders


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager that starts its kernel inside :func:`sandbox_command`'s sandbox.

    The kernel listens on Unix sockets in ``runtime_folder`` (made writable inside),
    and is interrupted by a message rather than a signal: SIGINT to the process group
    would stop bwrap itself, and the kernel with it.
    """

    writable = List(Unicode(), help="Folders the kernel may write into.").tag(config=True)
    readable = List(Unicode(), help="Extra paths the kernel may read.").tag(config=True)
    workdir = Unicode(help="The folder the kernel starts in.").tag(config=True)
    runtime_folder = Unicode(help="A private folder for the connection file and the sockets.").tag(config=True)
    tmp_size_mb = Integer(1024, help="Size of the kernel's private /tmp, in MB.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.runtime_folder:
            raise ValueError("SandboxedKernelManager needs a runtime_folder for its sockets")
        self.transport = "ipc"
        self.connection_file = str(Path(self.runtime_folder) / "kernel.json")
        self.ip = str(Path(self.runtime_folder) / "kernel-ipc")

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        """The kernel's command line, wrapped in bubblewrap."""
        command = super().format_kernel_cmd(extra_arguments)
        assert self.kernel_spec is not None
        self.kernel_spec.interrupt_mode = "message"
        return sandbox_command(
            command,
            writable=[*self.writable, self.runtime_folder],
            readable=self.readable,
            workdir=self.workdir or self.writable[0],
            tmp_size_mb=self.tmp_size_mb,
        )
