"""The tampering guard: the static screen of students' cells, the kernel's fingerprint, and a guarded notebook run.

Grading whole classes of tamperers is in tests/test_grading.py; here each layer is
tried on its own, with a real IPython transform and a real kernel.
"""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dqn_helpers.instructor import _kernel_probe, tampering
from dqn_helpers.instructor.tampering import TAMPERING_ERROR, GuardedExecute, changes, imported_names, screen_cell
from tests.conftest import SANDBOX_PROBLEM

COURSE_IMPORTS = imported_names(
    "%load_ext dqn_helpers.blanks\nimport numpy as np\nimport matplotlib.pyplot as plt\nimport dqn_helpers\n"
    "from dqn_helpers import checks\nfrom dqn_helpers.checks.q_learning import check_td_targets_values\n"
)


@pytest.mark.parametrize(
    ("source", "seen"),
    [
        ("get_ipython().input_transformers_cleanup.append(lambda lines: ['pass'])", "uses get_ipython"),
        ("ip = get_ipython()\nip.set_custom_exc((Exception,), lambda *a, **k: None)", "uses get_ipython"),
        ("np.allclose = lambda *args, **kwargs: True", "changes np.allclose, an attribute of the imported np"),
        ("import numpy.testing as t\nt.assert_allclose = print", "changes t.assert_allclose"),
        ("checks.assert_own_code = lambda *args: None", "changes checks.assert_own_code"),
        ("del checks.q_learning.check_td_targets_values", "changes checks.q_learning.check_td_targets_values"),
        (
            "def check_td_targets_values(answer):\n    pass",
            "rebinds check_td_targets_values, which the notebook imported",
        ),
        ("np = None", "rebinds np, which the notebook imported"),
        ("from fake import np", "rebinds np, which the notebook imported"),
        ("def f():\n    global checks\n    checks = None", "rebinds checks, which the notebook imported (global)"),
        ("import sys\nsys.modules['numpy'] = None", "imports sys"),
        ("from builtins import print", "imports builtins"),
        ("import importlib", "imports importlib"),
        ("__builtins__.print = None", "uses __builtins__"),
        ("exec('x = 1')", "uses exec"),
        ("eval('1')", "uses eval"),
        ("setattr(np, 'allclose', None)", "uses setattr"),
        ("getattr(np, 'all' + 'close')", "uses getattr with a name that is not a plain constant"),
        ("getattr(np, '__dict__')", "uses getattr with a name that is not a plain constant"),
        ("np.__dict__['allclose'] = None", "uses the attribute __dict__"),
        ("().__class__.__base__.__subclasses__()", "uses the attribute __subclasses__"),
        ("def f():\n    pass\nf.__code__ = None", "uses the attribute __code__"),
        ("try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__.tb_frame.f_globals", "reaches into frames"),
        ("import os\nos.system('ls')", "uses os.system"),
        ("!cat /etc/passwd", "runs a shell command (!)"),
        ("%env X=1", "runs the magic %env"),
        ("%%bash\nls", "runs the cell magic %%bash"),
        ("%%time\nnp.allclose = print", "changes np.allclose"),  # the code a timing magic runs is screened too
        ("%time import sys", "imports sys"),
        ("from numpy import *", "imports * from numpy"),
    ],
)
def test_the_screen_names_what_a_cell_reaches_into(source, seen):
    """Check that each way of reaching into the kernel, the checks or other modules is seen, and named."""
    found = screen_cell(source, COURSE_IMPORTS)
    assert any(seen in what for what in found), f"{source!r}: saw {found}"


@pytest.mark.parametrize(
    "source",
    [
        "def td_targets(rewards, terminated, next_q, gamma):\n    return rewards + gamma * (1 - terminated) * np.max(next_q, axis=1)",
        "import numpy as np\nimport matplotlib.pyplot as plt\nimport dqn_helpers\nimport dqn_helpers.checks\nfrom dqn_helpers import checks",
        "import math, random, itertools, functools, collections, dataclasses, time, pathlib, json, csv\nfrom tqdm.auto import tqdm",
        "class Buffer:\n    def __init__(self, size):\n        self.size = size\n        self.items = [None] * size\n\n"
        "    def __len__(self):\n        return len(self.items)\n\n    def __getitem__(self, index):\n        return self.items[index]",
        "model.layers[0].trainable = False\nconfig = replace(config, seed=3)\nprint(type(model).__name__)",
        "%matplotlib inline\nfig, ax = plt.subplots()\nax.plot([1, 2, 3])\nplt.show()",
        "%%time\ntotal = sum(range(10))",
        "%timeit np.zeros(10)",
        "x = getattr(config, 'seed')\nnp.random.seed(0)\nrng = np.random.default_rng(0)",
        "import os\nos.makedirs('runs', exist_ok=True)\nprint(os.path.join('runs', 'x'))",
        "def check(values):\n    np = values  # a local name: the notebook's np is untouched\n    return np",
        "with open('notes.txt', 'w') as file:\n    file.write('hi')",
        "results = {}\nresults['a'] = 1\nobj = type('Obj', (), {})()\nobj.np = 1",
        "x = 1 +",  # a syntax error fails on its own when it runs
        "best = np.max(q, axis=___)\nstate = env.___(action)",  # the release's blanks, left unfilled
    ],
)
def test_ordinary_answers_pass_the_screen(source):
    """Check that helpers, classes, NumPy, printing, plotting, timing, files and re-imports are not taken for tampering."""
    assert screen_cell(source, COURSE_IMPORTS) == []


def test_a_fingerprint_changes_with_what_a_test_relies_on():
    """Check the kernel probe's fingerprint and `changes` on a real module change, in this process."""
    import numpy as np

    before = json.loads(_kernel_probe.fingerprint())
    assert before["numpy.allclose"] == id(np.allclose) and "builtins.print" in before
    original = np.allclose
    try:
        np.allclose = lambda *args, **kwargs: True
        after = json.loads(_kernel_probe.fingerprint())
    finally:
        np.allclose = original
    assert changes(before, after, {}) == ["numpy.allclose was replaced"]
    assert changes(before, before, {}) == []
    assert changes(before, {**before, "user_ns.check": 1}, {"check": 2}) == [
        "check, which the notebook's own code defined, was replaced"
    ]


def _run(cells: list[str], folder, sandbox: bool, monkeypatch) -> tuple[nbformat.NotebookNode, list[dict]]:
    """Run student cells, then a course test cell, through GuardedExecute; the notebook and the findings."""
    test = new_code_cell(
        '"""Check that add adds."""\nassert add(1, 2) == 3',
        metadata={"nbgrader": {"grade": True, "grade_id": "test", "points": 1}},
    )
    notebook = new_notebook(cells=[new_code_cell(source) for source in cells] + [test])
    # Without a gradebook, say which cell is the course's: the test cell.
    monkeypatch.setattr(tampering, "_course_cells", lambda info: {"test": test.source})
    report = folder / "report.json"
    report.unlink(missing_ok=True)  # the guard appends to it
    guard = GuardedExecute(sandbox=sandbox, report=str(report), timeout=60)
    notebook, _ = guard.preprocess(notebook, {"metadata": {"path": str(folder)}, "nbgrader": {"notebook": "nb"}})
    return notebook, json.loads(report.read_text()) if report.exists() else []


@pytest.mark.notebooks
@pytest.mark.parametrize("sandbox", [True, False])
def test_a_test_after_tampering_fails_and_an_honest_one_passes(tmp_path, monkeypatch, sandbox):
    """Check, with a real kernel, that a patch the screen cannot see fails the test cell after it, and honest code passes."""
    if sandbox and SANDBOX_PROBLEM:
        pytest.skip(f"the sandbox cannot run here: {SANDBOX_PROBLEM}")
    answer = "def add(a, b):\n    return a + b\n"
    honest, found = _run([answer], tmp_path, sandbox, monkeypatch)
    assert found == [] and honest.cells[-1].outputs == []
    # Through a list, no module's name is assigned to: only the kernel's fingerprint sees it, as a
    # replaced function when the module was there before the cell, else as a function the notebook defined.
    for cells, seen in [
        ([answer + "import numpy", "parts = [numpy]\nparts[0].allclose = print"], "numpy.allclose was replaced"),
        (
            [answer + "import numpy\nparts = [numpy]\nparts[0].allclose = lambda *a: True"],
            "numpy.allclose is not the library's own",
        ),
    ]:
        tampered, found = _run(cells, tmp_path, sandbox, monkeypatch)
        assert len(found) == 1 and found[0]["what"].startswith(seen), found
        first = tampered.cells[-1].outputs[0]
        assert (
            first["output_type"] == "error"
            and first["ename"] == TAMPERING_ERROR
            and "numpy.allclose" in first["evalue"]
        )
