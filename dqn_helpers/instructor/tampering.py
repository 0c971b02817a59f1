"""Tamper-evident autograding: a test cell counts only if it really ran, unmodified, and passed.

A student's code shares the kernel with the tests that grade it, so it could turn
tests off instead of passing them: rewrite IPython's input (every test cell becomes
``pass``), swallow every exception, replace the checks or NumPy's comparisons with
functions that always agree. nbgrader itself does not guard against that.
:class:`GuardedExecute` runs in nbgrader's (trusted) process in place of its
``Execute`` step and defends in depth; a student can read this file, so nothing
relies on the method being secret.

1. **The sandbox** (:mod:`dqn_helpers.instructor.sandbox`): the kernel sees no solutions, no
   gradebook, no other student and no network, and writes only into its own folder.
2. **A static screen** of every cell the course did not write (answer cells, cells a
   student added or changed), read as IPython would run it: reaching into IPython,
   ``sys``, ``builtins``, the import machinery, frames, or dunder attributes; calling
   ``exec``/``eval``/``setattr``; assigning to another module's attributes; rebinding a
   name the notebook's own code imported; shell escapes and magics other than timing
   and plotting. Ordinary Python (functions, classes, NumPy, printing, plotting) passes.
3. **A runtime probe** after every cell (:mod:`dqn_helpers.instructor._kernel_probe`, sent as
   text and evaluated outside IPython's input transformers): the identities of
   IPython's transformers and exception handlers, the shell's, kernel's and session's
   methods, the interpreter's hooks, the builtins, the functions of the checks,
   NumPy and the libraries, and what the notebook's own cells imported. A change
   under a cell the course did not write, or under a test cell (which runs the
   student's functions), is tampering; changes made by the course's own cells are not.

From the first finding on, every test cell of that notebook is failed with a
``TamperingSuspected`` error that says what was seen (nbgrader gives a test cell
with an error 0 points), and the findings go to the report file that
:mod:`dqn_helpers.instructor.grading` turns into the note ``tampering suspected: ...`` in
``grades.csv`` and the gradebook's comments.
"""

from __future__ import annotations

import ast
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from nbformat import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, List, Unicode

from dqn_helpers.instructor.sandbox import SandboxedKernelManager, sandbox_problem

__all__ = ["Finding", "GuardedExecute", "screen_cell"]

TAMPERING_ERROR = "TamperingSuspected"
_PROBE_SOURCE = (Path(__file__).parent / "_kernel_probe.py").read_text()
_PROBE_EXPRESSION = f"(lambda ns: (exec({_PROBE_SOURCE!r}, ns), ns['fingerprint']())[1])({{}})"

# Modules that reach into the interpreter, the kernel or other processes.
_MODULES = {
    "sys",
    "builtins",
    "importlib",
    "ctypes",
    "cffi",
    "gc",
    "inspect",
    "IPython",
    "ipykernel",
    "jupyter_client",
    "zmq",
    "traitlets",
    "types",
    "unittest",
    "code",
    "codeop",
    "dis",
    "marshal",
    "threading",
    "_thread",
    "multiprocessing",
    "subprocess",
    "signal",
    "atexit",
    "site",
    "socket",
    "pty",
    "tracemalloc",
    "faulthandler",
    "nbformat",
    "nbclient",
    "nbgrader",
    "runpy",
    "pickle",
    "copyreg",
    "weakref",
    "operator",
}
_NAMES = {
    "get_ipython",
    "__builtins__",
    "__import__",
    "exec",
    "eval",
    "compile",
    "globals",
    "vars",
    "setattr",
    "delattr",
    "breakpoint",
    "__loader__",
    "__spec__",
    "__builtin__",
}
_DUNDERS_ALLOWED = {
    "__init__",
    "__name__",
    "__qualname__",
    "__doc__",
    "__len__",
    "__getitem__",
    "__setitem__",
    "__contains__",
    "__iter__",
    "__next__",
    "__call__",
    "__repr__",
    "__str__",
    "__eq__",
    "__hash__",
    "__enter__",
    "__exit__",
    "__post_init__",
    "__array__",
    "__class__",
    "__add__",
    "__mul__",
    "__lt__",
}
_FRAME_ATTRIBUTES = {
    "f_globals",
    "f_locals",
    "f_back",
    "f_builtins",
    "gi_frame",
    "cr_frame",
    "ag_frame",
    "tb_frame",
    "tb_next",
}
_OS_CALLS = {
    "system",
    "popen",
    "fork",
    "forkpty",
    "kill",
    "killpg",
    "_exit",
    "putenv",
    "unsetenv",
    "execv",
    "execve",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execvp",
    "execvpe",
    "spawnl",
    "spawnle",
    "spawnv",
    "spawnve",
    "posix_spawn",
}
# Magics that time or plot a cell; their code argument is screened too.
_MAGICS_ALLOWED = {"matplotlib", "time", "timeit", "pinfo", "pinfo2", "who", "whos"}


@dataclass(frozen=True)
class Finding:
    """One sign of tampering, seen in a notebook's cell."""

    notebook: str
    cell: str  # the cell's grade_id, or "cell <n>" for a cell without one
    what: str


def screen_cell(source: str, imported: dict[str, str] | None = None, modules: set[str] | None = None) -> list[str]:
    """What a cell's code does that ordinary answers never need, as it would run in IPython.

    Args:
        source: The cell's source, magics and all.
        imported: Names the notebook's own cells imported, to what (``{"np": "numpy"}``):
            rebinding one of them, or assigning to its attributes, is tampering.
        modules: Names earlier cells (the student's too) bound with ``import``: assigning
            to their attributes is tampering. This cell's own imports count as well.

    Returns:
        One plain sentence per thing seen; ``[]`` for an ordinary cell (and for one
        that does not parse: it fails on its own when it runs).
    """
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return []
    screen = _Screen(dict(imported or {}), set(modules or ()) | set(imported or {}))
    screen.visit(tree)
    return list(dict.fromkeys(screen.found))


class _Screen(ast.NodeVisitor):
    def __init__(self, imported: dict[str, str], modules: set[str]):
        self.imported = imported
        self.modules = modules
        self.found: list[str] = []
        self.depth = 0  # inside a function, lambda or class: names there are local

    def _imports(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            module = node.module if isinstance(node, ast.ImportFrom) else alias.name
            if module and module.split(".")[0] in _MODULES:
                self.found.append(f"imports {module}")
            bound = alias.asname or alias.name.split(".")[0]
            self.modules.add(bound)
            if isinstance(node, ast.ImportFrom):
                source = f"{node.module}.{alias.name}"
            else:  # `import a.b` binds a; `import a.b as c` binds a.b
                source = alias.name if alias.asname else alias.name.split(".")[0]
            if alias.name == "*":
                self.found.append(f"imports * from {module}")
            elif self.depth == 0 and bound in self.imported and self.imported[bound] != source:
                self.found.append(f"rebinds {bound}, which the notebook imported")

    visit_Import = visit_ImportFrom = _imports

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in _NAMES:
            self.found.append(f"uses {node.id}")
        elif isinstance(node.ctx, (ast.Store, ast.Del)) and self.depth == 0 and node.id in self.imported:
            self.found.append(f"rebinds {node.id}, which the notebook imported")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if name.startswith("__") and name.endswith("__") and name.strip("_") and name not in _DUNDERS_ALLOWED:
            self.found.append(f"uses the attribute {name}")
        elif name in _FRAME_ATTRIBUTES:
            self.found.append(f"reaches into frames ({name})")
        root = _root(node)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and root is not None and root in self.modules:
            self.found.append(f"changes {ast.unparse(node)}, an attribute of the imported {root}")
        if root == "os" and name in _OS_CALLS:
            self.found.append(f"uses os.{name}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        if isinstance(function, ast.Name) and function.id == "getattr":
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str) and not name.value.startswith("__")):
                self.found.append("uses getattr with a name that is not a plain constant")
        if (
            isinstance(function, ast.Attribute)
            and function.attr in ("system", "getoutput")
            and isinstance(function.value, ast.Call)
            and getattr(function.value.func, "id", "") == "get_ipython"
        ):
            self.found.append("runs a shell command (!)")
            return
        magic = _magic(node)
        if magic is not None:
            kind, name, code = magic
            if name not in _MAGICS_ALLOWED:
                self.found.append(
                    f"runs the magic %{name}" if kind == "run_line_magic" else f"runs the cell magic %%{name}"
                )
            elif code:
                from IPython.core.inputtransformer2 import TransformerManager

                try:
                    self.visit(ast.parse(TransformerManager().transform_cell(code)))
                except (SyntaxError, ValueError):
                    pass
            for argument in node.args[2:] + node.args[:0]:
                self.visit(argument)
            return
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            if name in self.imported:
                self.found.append(f"rebinds {name}, which the notebook imported (global)")

    def _scope(self, node: ast.AST) -> None:
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and self.depth == 0
            and node.name in self.imported
        ):
            self.found.append(f"rebinds {node.name}, which the notebook imported")
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        self.depth += 1
        try:
            for child in ast.iter_child_nodes(node):
                if child not in getattr(node, "decorator_list", []):
                    self.visit(child)
        finally:
            self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _scope


def _root(node: ast.AST) -> str | None:
    """The name an attribute chain starts from (``np`` for ``np.testing.x``), or None."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _magic(node: ast.Call) -> tuple[str, str, str] | None:
    """``(kind, magic, code)`` for ``get_ipython().run_line_magic("name", "code")`` as IPython writes magics."""
    function = node.func
    if not (
        isinstance(function, ast.Attribute)
        and function.attr in ("run_line_magic", "run_cell_magic")
        and isinstance(function.value, ast.Call)
        and isinstance(function.value.func, ast.Name)
        and function.value.func.id == "get_ipython"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return None
    code = (
        node.args[-1].value if isinstance(node.args[-1], ast.Constant) and isinstance(node.args[-1].value, str) else ""
    )
    if function.attr == "run_line_magic" and node.args[0].value not in ("time", "timeit"):
        code = ""  # the argument of %matplotlib or %who is not code
    return function.attr, str(node.args[0].value), code


def imported_names(source: str) -> dict[str, str]:
    """The names a cell binds with ``import`` at its top level, to what they import."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return {}
    names = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if alias.name != "*":
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def changes(before: dict, after: dict, owned: dict[str, int], machinery: bool = True) -> list[str]:
    """What changed between two fingerprints that a test relies on (see :mod:`dqn_helpers.instructor._kernel_probe`).

    Args:
        before: The fingerprint before a cell.
        after: The fingerprint after it.
        owned: Names of the notebook's namespace that the course's own cells bound, to
            their identity; a name a student's cell defined is the student's to change.
        machinery: Compare IPython's, the kernel's and the interpreter's hooks too. The
            course's own cells change them (loading an extension), so for those cells
            only the modules' functions are compared.

    Returns:
        One sentence per change.
    """
    seen, replaced = [], set()
    for key, value in before.items():
        if key.startswith("user_ns.") or key == "foreign":
            continue
        if not machinery and key.startswith(("shell", "kernel", "sys.")):
            continue
        if ":" in key and before.get(key.split(":")[0]) != after.get(key.split(":")[0]):
            continue  # the function itself was replaced: said once
        if key not in after:
            seen.append(f"{_describe(key)} was removed")
        elif after[key] != value:
            seen.append(f"{_describe(key)} was replaced")
            replaced.add(key.split(":")[0])
    seen += [
        f"{name} is not the library's own (a function the notebook defined, or not a check)"
        for name in after.get("foreign", [])
        if name not in before.get("foreign", []) and name not in replaced
    ]
    for key, value in owned.items():
        if f"user_ns.{key}" in after and after[f"user_ns.{key}"] != value:
            seen.append(f"{key}, which the notebook's own code defined, was replaced")
        elif f"user_ns.{key}" not in after:
            seen.append(f"{key}, which the notebook's own code defined, was deleted")
    return seen


def _describe(key: str) -> str:
    name, _, part = key.partition(":")
    labels = {"code": "the code of ", "defaults": "the default arguments of "}
    if name.startswith("shell.input_transformer") or name in ("shell.ast_transformers",):
        return f"IPython's input transformers ({name})"
    if name in ("shell.custom_exceptions", "shell.CustomTB"):
        return "IPython's exception handler (set_custom_exc)"
    return f"{labels.get(part, '')}{name}"


class GuardedExecute(Execute):
    """nbgrader's ``Execute``, with the kernel in the sandbox and every test cell guarded against tampering.

    Set in ``nbgrader_config.py`` in place of ``nbgrader.preprocessors.Execute``; takes
    the same settings (``c.Execute.timeout`` and the rest).
    """

    sandbox = Bool(True, help="Run the kernel in dqn_helpers.instructor.sandbox (bubblewrap).").tag(config=True)
    writable_beside = List(
        Unicode(), help="Folders the kernel may write into besides its own, relative to the notebook's folder."
    ).tag(config=True)
    tmp_size_mb = Integer(1024, help="Size of the kernel's private /tmp, in MB.").tag(config=True)
    report = Unicode("", help="JSON file to append the findings to (one list per submission).").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict, km=None):
        """Execute the notebook, screening and fingerprinting as it goes; write the findings to ``report``."""
        folder = Path(resources.get("metadata", {}).get("path") or ".").resolve()
        info = resources.get("nbgrader", {})
        self._notebook = info.get("notebook", "")
        self._trusted = _course_cells(info)
        self._findings: list[Finding] = []
        self._imported: dict[str, str] = {}  # what the course's cells imported
        self._modules: set[str] = set()  # names any cell bound with import
        self._owned: dict[str, int] = {}
        self._fingerprint: dict | None = None
        self._student_ran = False  # from the first student's cell on, the course's cells call students' code
        self._runtime = tempfile.mkdtemp(prefix="dqn-kernel-")
        self._writable = [str(folder)]
        for relative in self.writable_beside:
            extra = (folder / relative).resolve()
            extra.mkdir(parents=True, exist_ok=True)
            self._writable.append(str(extra))
        try:
            return super().preprocess(nb, resources, km=km)
        finally:
            shutil.rmtree(self._runtime, ignore_errors=True)
            self._write_report()

    def create_kernel_manager(self):
        """A kernel manager that starts the kernel in the sandbox (unless ``sandbox`` is off)."""
        if not self.sandbox:
            return super().create_kernel_manager()
        if (problem := sandbox_problem()) is not None:
            raise RuntimeError(
                f"cannot sandbox the kernel: {problem}; c.GuardedExecute.sandbox = False runs it unsandboxed"
            )
        self.km = SandboxedKernelManager(
            kernel_name=self.kernel_name or self.nb.metadata.get("kernelspec", {}).get("name", "python3"),
            config=self.config,
            writable=self._writable,
            workdir=self._writable[0],
            runtime_folder=self._runtime,
            tmp_size_mb=self.tmp_size_mb,
        )
        return self.km

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int):
        """Screen a cell that is not the course's, run it, fingerprint the kernel, and fail a test cell after a finding."""
        if cell.cell_type != "code":
            return super().preprocess_cell(cell, resources, index)
        meta = cell.metadata.get("nbgrader", {})
        label = meta.get("grade_id") or f"cell {index + 1}"
        course_cell = self._trusted.get(meta.get("grade_id", ""))
        trusted = course_cell is not None and course_cell == cell.source
        test = trusted and bool(meta.get("grade"))
        if self._fingerprint is None:
            self._fingerprint = self._probe()
        if not trusted:
            for what in screen_cell(cell.source, self._imported, self._modules):
                self._findings.append(Finding(self._notebook, label, what))
        self._modules.update(imported_names(cell.source))
        cell, resources = super().preprocess_cell(cell, resources, index)
        after = self._probe()
        if after is not None and self._fingerprint is not None:
            # The course's set-up cells may change what they like (load an extension, import). From the
            # first student's cell on, any cell may run a student's function: nothing a test relies on may change.
            if not trusted or self._student_ran:
                # The course's cells may rebind their own names; its set-up cells load extensions.
                seen = changes(self._fingerprint, after, {} if trusted else self._owned, machinery=test or not trusted)
                self._findings += [Finding(self._notebook, label, what) for what in seen]
            if trusted:
                self._own(after, cell.source)
        self._student_ran = self._student_ran or not trusted
        if after is not None:
            self._fingerprint = after
        if test and self._findings:
            cell.outputs.insert(
                0,
                NotebookNode(
                    output_type="error",
                    ename=TAMPERING_ERROR,
                    evalue="; ".join(f"{finding.cell}: {finding.what}" for finding in self._findings),
                    traceback=[
                        f"{TAMPERING_ERROR}: this test cannot count: "
                        + "; ".join(f"{finding.cell} {finding.what}" for finding in self._findings)
                    ],
                ),
            )
        return cell, resources

    def _own(self, fingerprint: dict, source: str) -> None:
        """After a course cell: what it bound in the namespace is the course's; its imports too."""
        before = self._fingerprint or {}
        for key, value in fingerprint.items():
            if key.startswith("user_ns.") and before.get(key) != value:
                self._owned[key.removeprefix("user_ns.")] = value
        self._imported.update(imported_names(source))

    def _probe(self) -> dict | None:
        """The kernel's fingerprint now, or None if it did not answer."""
        try:
            msg_id = self.kc.execute(
                "", silent=True, store_history=False, user_expressions={"fingerprint": _PROBE_EXPRESSION}
            )
            reply = self.wait_for_reply(msg_id)
        except Exception:  # a dead or hung kernel: its cells fail on their own
            return None
        result = (reply or {}).get("content", {}).get("user_expressions", {}).get("fingerprint", {})
        if result.get("status") != "ok":
            self._findings.append(
                Finding(
                    self._notebook,
                    "probe",
                    f"the kernel's fingerprint could not be taken ({result.get('ename', 'no answer')})",
                )
            )
            return None
        try:
            return json.loads(ast.literal_eval(result["data"]["text/plain"]))
        except (KeyError, ValueError, SyntaxError):
            self._findings.append(Finding(self._notebook, "probe", "the kernel answered the probe with something else"))
            return None

    def _write_report(self) -> None:
        if not self.report or not self._findings:
            return
        path = Path(self.report)
        findings = json.loads(path.read_text()) if path.is_file() else []
        findings += [asdict(finding) for finding in self._findings]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(findings, indent=1))


def _course_cells(info: dict) -> dict[str, str]:
    """The source of every locked cell of the course's notebook (set-up, demos, tests), by grade_id."""
    if not info.get("db_url"):
        return {}
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(info["db_url"]) as gradebook:
        try:
            notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
        except MissingEntry:
            return {}
        return {cell.name: cell.source for cell in notebook.source_cells if cell.locked and cell.cell_type == "code"}
