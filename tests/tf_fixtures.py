"""Tiny stand-ins for BigGAN-deep's TF-Hub module, for tests without network.

Both expose BigGAN-deep's interface: a signature ``default`` with inputs
``y`` float32 (N, 1000) one-hot, ``z`` float32 (N, 128), ``truncation`` float32
scalar, and output ``default`` float32 (N, H, W, 3) in [-1, 1]:

- :func:`make_tf1_hub_module`: a TF1 SavedModel built in graph mode with
  placeholders, saved under the empty tag set with the ``tfhub_module.pb``
  marker, i.e. the TF1 Hub format of the published BigGAN modules
  (``hub.load`` gives a non-callable object with ``.signatures['default']``);
- :func:`make_tf2_saved_model`: a ``tf.Module`` with a ``tf.function``
  signature ``default``, saved with ``tf.saved_model.save``.

The computation is a trivial one (a dense map of z and y to an 8x8x3 picture,
tanh, bilinear resize), so building and running either takes well under a
second. Import ``gankd_utils`` before this module: it imports tensorflow.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import gankd_utils  # noqa: F401  (torchvision before tensorflow in this process)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

N_CLASSES, Z_DIM = 1000, 128
# tfhub_module.pb holds a ModuleDef proto; field 1 (format) = 3 (FORMAT_V3) is
# the whole message. tensorflow_hub only checks that the file exists.
_MODULE_DEF_V3 = b"\x08\x03"


def _weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w_z = (rng.standard_normal((Z_DIM, 8 * 8 * 3)) / np.sqrt(Z_DIM) * 2).astype(np.float32)
    w_y = rng.standard_normal((N_CLASSES, 8 * 8 * 3)).astype(np.float32)
    return w_z, w_y


def make_tf1_hub_module(path: str | Path, resolution: int = 128, seed: int = 0) -> Path:
    """Write a BigGAN-shaped module in TF1 Hub format to ``path``; return ``path``."""
    import tensorflow as tf

    v1 = tf.compat.v1
    path = Path(path)
    w_z0, w_y0 = _weights(seed)
    graph = tf.Graph()
    with graph.as_default():
        y = v1.placeholder(tf.float32, [None, N_CLASSES], name="y")
        z = v1.placeholder(tf.float32, [None, Z_DIM], name="z")
        truncation = v1.placeholder(tf.float32, [], name="truncation")
        w_z = v1.get_variable("w_z", initializer=w_z0)
        w_y = v1.get_variable("w_y", initializer=w_y0)
        # like BigGAN, the module gets z already scaled by the truncation
        h = tf.matmul(z / truncation, w_z) * truncation + tf.matmul(y, w_y)
        x = tf.image.resize(tf.tanh(tf.reshape(h, [-1, 8, 8, 3])), [resolution, resolution])
        x = tf.clip_by_value(x, -1.0, 1.0, name="images")
        sig = v1.saved_model.signature_def_utils.predict_signature_def(
            inputs={"y": y, "z": z, "truncation": truncation}, outputs={"default": x})
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(sess, tags=[], signature_def_map={"default": sig},
                                                 strip_default_attrs=True)
            builder.save()
    (path / "tfhub_module.pb").write_bytes(_MODULE_DEF_V3)
    return path


def make_tf2_saved_model(path: str | Path, resolution: int = 128, seed: int = 1) -> Path:
    """Write a BigGAN-shaped TF2 SavedModel (signature ``default``) to ``path``; return ``path``."""
    import tensorflow as tf

    path = Path(path)
    w_z0, w_y0 = _weights(seed)

    class TinyBigGAN(tf.Module):
        def __init__(self):
            super().__init__()
            self.w_z = tf.Variable(w_z0)
            self.w_y = tf.Variable(w_y0)

        @tf.function(input_signature=[tf.TensorSpec([None, N_CLASSES], tf.float32, name="y"),
                                      tf.TensorSpec([None, Z_DIM], tf.float32, name="z"),
                                      tf.TensorSpec([], tf.float32, name="truncation")])
        def default(self, y, z, truncation):
            h = tf.matmul(z / truncation, self.w_z) * truncation + tf.matmul(y, self.w_y)
            x = tf.image.resize(tf.tanh(tf.reshape(h, [-1, 8, 8, 3])), [resolution, resolution])
            return {"default": tf.clip_by_value(x, -1.0, 1.0)}

    m = TinyBigGAN()
    tf.saved_model.save(m, str(path), signatures={"default": m.default})
    return path
