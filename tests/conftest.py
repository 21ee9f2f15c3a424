"""Shared fixtures: a private results folder per test session, the MNIST / CIFAR-10 data root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import gankd_utils  # noqa: F401  (torchvision before any tensorflow, in every test process)


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
    from gankd_utils import paths

    return paths.data_root()


def _mnist(root: Path, train: bool):
    from gankd_utils import data

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
