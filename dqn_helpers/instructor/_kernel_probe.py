"""What a graded kernel's machinery looks like right now, for :mod:`dqn_helpers.instructor.tampering`.

The grader never imports this module in the kernel (a student's code could have
replaced it there): it reads this file and sends its text with every probe, as a
``user_expressions`` entry, which IPython evaluates without passing it through the
input transformers that a student's code could have rewritten.

:func:`fingerprint` maps each thing a test relies on to the identity of what is
there now: IPython's input transformers and exception handlers, the methods of the
shell, kernel and session, the interpreter's hooks, the builtins, the functions and
classes of the modules that tests use (and their code objects), and the modules,
functions and classes bound in the notebook's namespace. The grader compares two
fingerprints; a test cell passes only if nothing it relies on changed under a
student's cell.
"""

import json
import sys

# Modules whose functions a test relies on: the checks, NumPy's comparisons, and the
# entry points of the libraries a check computes its expected values with.
_WATCHED = (
    "dqn_helpers",
    "numpy",
    "numpy.testing",
    "numpy.linalg",
    "numpy.random",
    "math",
    "tensorflow",
    "keras",
    "gymnasium",
)


# What the notebook's own cells bind that a test may call: modules, functions and classes
# (not models or other objects, which students rebind as they should).
_BOUND = (type(sys), type, type(json.dumps), type(len))


def _foreign(name, value):
    """True for a function a notebook defined, or a check that is not the course's own.

    A module first imported by a student's cell has no earlier fingerprint to compare
    with: what it holds must then show it is the library's own.
    """
    code = getattr(value, "__code__", None)
    if getattr(value, "__module__", None) == "__main__" or (code is not None and "ipykernel_" in code.co_filename):
        return True
    return name.startswith(("check_", "assert_")) and not str(getattr(value, "__module__", "")).startswith(
        "dqn_helpers"
    )


def _callables(prefix, namespace, into, foreign=None):
    for name, value in list(namespace.items()):
        if foreign is not None and callable(value) and _foreign(name, value):
            foreign.append(f"{prefix}.{name}")
        if callable(value) or isinstance(value, (staticmethod, classmethod, property)):
            into[f"{prefix}.{name}"] = id(value)
            code = getattr(value, "__code__", None)
            if code is not None:
                into[f"{prefix}.{name}:code"] = id(code)
                into[f"{prefix}.{name}:defaults"] = id(getattr(value, "__defaults__", None))


def _object(prefix, obj, into):
    """Methods an instance overrides on itself, and those of its classes."""
    _callables(f"{prefix}.instance", {k: v for k, v in vars(obj).items() if callable(v)}, into)
    for cls in type(obj).__mro__[:-1]:
        _callables(f"{prefix}.{cls.__module__}.{cls.__qualname__}", dict(vars(cls)), into)


def fingerprint():
    """The kernel's fingerprint, as a JSON object of names to identities (lists for ordered hooks)."""
    found = {}
    import builtins

    _callables("builtins", vars(builtins), found)
    for name in ("excepthook", "displayhook", "breakpointhook", "unraisablehook"):
        found[f"sys.{name}"] = id(getattr(sys, name, None))
    found["sys.gettrace"] = id(sys.gettrace())
    found["sys.getprofile"] = id(sys.getprofile())
    found["sys.meta_path"] = [id(finder) for finder in sys.meta_path]
    foreign = []
    for module_name, module in list(sys.modules.items()):
        if module is not None and (module_name in _WATCHED or module_name.startswith("dqn_helpers.")):
            found[f"module:{module_name}"] = id(module)
            namespace = dict(vars(module))
            _callables(module_name, namespace, found, foreign)
            if module_name.startswith("dqn_helpers"):
                for name, value in namespace.items():
                    if isinstance(value, type) and value.__module__ == module_name:
                        _callables(f"{module_name}.{name}", dict(vars(value)), found, foreign)
    found["foreign"] = sorted(foreign)

    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is not None:
        manager = shell.input_transformer_manager
        for name in ("cleanup_transforms", "line_transforms", "token_transformers"):
            found[f"shell.input_transformer_manager.{name}"] = [id(item) for item in getattr(manager, name)]
        found["shell.input_transformer_manager"] = id(manager)
        found["shell.input_transformers_post"] = [id(item) for item in shell.input_transformers_post]
        found["shell.ast_transformers"] = [id(item) for item in shell.ast_transformers]
        found["shell.custom_exceptions"] = [id(item) for item in shell.custom_exceptions]
        found["shell.CustomTB"] = id(shell.CustomTB)
        found["shell.displayhook"] = id(shell.displayhook)
        found["shell.display_pub"] = id(shell.display_pub)
        found["shell.InteractiveTB"] = id(shell.InteractiveTB)
        found["shell.compile"] = id(shell.compile)
        found["shell.events.pre_run_cell"] = [id(item) for item in shell.events.callbacks.get("pre_run_cell", [])]
        _object("shell", shell, found)
        _object("shell.InteractiveTB", shell.InteractiveTB, found)
        _object("shell.displayhook", shell.displayhook, found)
        _object("shell.display_pub", shell.display_pub, found)
        _object("shell.compile", shell.compile, found)
        kernel = getattr(shell, "kernel", None)
        if kernel is not None:
            found["kernel"] = id(kernel)
            _object("kernel", kernel, found)
            found["kernel.session"] = id(kernel.session)
            _object("kernel.session", kernel.session, found)
            found["kernel.iopub_socket"] = id(kernel.iopub_socket)
        for name, value in list(shell.user_ns.items()):
            if not name.startswith("_") and isinstance(value, _BOUND):
                found[f"user_ns.{name}"] = id(value)
    return json.dumps(found)
