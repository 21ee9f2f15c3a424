"""Shared fixtures: a private results folder per test session, the MNIST / CIFAR-10 data root, a tiny teacher set."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import gankd_utils  # noqa: F401  (torchvision before any tensorflow, in every test process)
from gankd_utils import data, paths, teachers
from gankd_utils.models import ResNetGenerator


@pytest.fixture(autouse=True, scope="session")
def _results_root(tmp_path_factory):
    """Nothing a test writes lands in the repository's results/."""
    root = tmp_path_factory.mktemp("results")
    old = os.environ.get("GANKD_RESULTS")
    os.environ["GANKD_RESULTS"] = str(root)
    yield root
    if old is None:
        os.environ.pop("GANKD_RESULTS", None)
    else:
        os.environ["GANKD_RESULTS"] = old


def _need(what: str, path: Path) -> None:
    msg = (f"{what} not found under {path}: set GANKD_DATA_ROOT to a folder holding it "
           "(CI points it at ../shared/data)")
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def data_root() -> Path:
    return paths.data_root()


def _mnist(root: Path, train: bool):
    try:
        return data.load_mnist(train=train, root=root, download=False)
    except data.DatasetUnavailable:
        _need("MNIST", root / "MNIST" / "raw")


@pytest.fixture(scope="session")
def mnist_train(data_root):
    return _mnist(data_root, train=True)


@pytest.fixture(scope="session")
def mnist_test(data_root):
    return _mnist(data_root, train=False)


@pytest.fixture(scope="session")
def cifar_root(data_root) -> Path:
    if not (data_root / "cifar10" / "test.npz").exists():
        _need("CIFAR-10 npz shards", data_root / "cifar10")
    return data_root


@pytest.fixture(scope="session")
def teacher_set(tmp_path_factory) -> Path:
    """A complete 32 px export of a small class-conditional torch teacher: 10 classes x 8 images, shards of 20."""
    out = tmp_path_factory.mktemp("teacher") / "set"
    torch.manual_seed(0)
    t = teachers.TorchTeacher(ResNetGenerator(ch=4), "cpu", name="tiny_cgan")
    teachers.export(t, out, classes=list(range(10)), per_class=8, seed=0, shard_size=20, batch_size=40,
                    progress=False)
    return out


@pytest.fixture(scope="session")
def tf_modules(tmp_path_factory) -> dict[str, Path]:
    """BigGAN-shaped modules in TF1 Hub format and as a TF2 SavedModel (128x128 output; tests/tf_fixtures.py)."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorflow_hub")
    import tf_fixtures  # imports tensorflow: only when a test asks for these modules

    root = tmp_path_factory.mktemp("biggan_modules")
    return {"tf1": tf_fixtures.make_tf1_hub_module(root / "tf1"),
            "tf2": tf_fixtures.make_tf2_saved_model(root / "tf2")}
