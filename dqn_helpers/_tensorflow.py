"""TensorFlow and Keras, imported without the start-up noise they write to stderr.

The CUDA-enabled TensorFlow wheel prints "Could not find cuda drivers" from C++
before its logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide it; nbgrader
scores a test cell 0 if anything reaches stderr. The import runs with file
descriptor 2 sent to a temporary file, which is replayed only if the import fails.
"""

from __future__ import annotations

import os
import sys
import tempfile

import dqn_helpers  # noqa: F401  (sets KERAS_BACKEND and TF_CPP_MIN_LOG_LEVEL)

__all__ = ["tf", "keras"]


def _import_quietly():
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras
            import tensorflow as tf
        except BaseException:
            os.dup2(saved_fd, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
    return tf, keras


tf, keras = _import_quietly()
