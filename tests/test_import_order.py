"""TensorFlow and torchvision in one process: the package keeps the only safe order.

With the pinned wheels, importing torchvision after tensorflow crashes the
interpreter (segfault). ``import gankd_utils`` imports torchvision first and
TensorFlow only lazily, and refuses, with a message, to load after tensorflow.
"""
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow", reason="tensorflow is part of the pinned environment (requirements.txt)")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_package_first_then_tensorflow_works():
    r = run("import gankd_utils\n"
            "import tensorflow as tf\n"
            "import torchvision.transforms.functional as TF\n"
            "import torch\n"
            "x = tf.constant([1.0, 2.0]).numpy()\n"
            "print('ok', float(torch.tensor(x).sum()))\n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ok 3.0" in r.stdout


def test_tensorflow_first_is_refused_with_a_message_not_a_crash():
    r = run("import tensorflow\nimport gankd_utils\n")
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])  # a Python error, not SIGSEGV (-11)
    assert "gankd_utils was imported after tensorflow" in r.stderr
    assert "Restart the kernel" in r.stderr


def test_torch_only_use_never_imports_tensorflow():
    modules = ("classes", "shards", "config", "train", "recipes", "runstate", "checkpoint", "zoo", "runs", "evaluation",
               "tables", "study", "report", "distill", "cli", "compress", "metrics", "viz", "teachers", "dist")
    r = run("import sys, gankd_utils\n"
            + "".join(f"import gankd_utils.{m}\n" for m in modules)
            + "print('tensorflow' in sys.modules)\n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "False"
