"""Class ids and names (gankd_utils.classes): one parser, one check, one table of names per dataset."""
import time

import numpy as np
import pytest
import torch

from gankd_utils import classes
from gankd_utils.classes import check_class_ids, check_labels, class_names, imagenet_classes, parse_classes


def test_parse_classes():
    assert parse_classes("0-3,7, 9") == [0, 1, 2, 3, 7, 9]
    assert parse_classes("5") == [5]
    assert parse_classes("3,1,3,2-3") == [1, 2, 3]  # sorted, each class once
    with pytest.raises(ValueError, match="out of range 0..9"):
        parse_classes("8-12", 10)
    with pytest.raises(ValueError, match="cannot read"):
        parse_classes("three")
    with pytest.raises(ValueError, match="cannot read"):
        parse_classes("5-2")
    with pytest.raises(ValueError, match="empty"):
        parse_classes(" , ")
    with pytest.raises(ValueError, match="out of range"):
        parse_classes("-1")


def test_a_huge_range_is_refused_before_it_is_expanded():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="out of range 0..999: '0-20000000'"):
        parse_classes("0-20000000", 1000)
    assert time.perf_counter() - t0 < 1.0  # one bounds check, not 20 million set entries


def test_check_class_ids_accepts_lists_arrays_tensors():
    for ids in ([0, 4, 9], np.array([0, 4, 9]), torch.tensor([0, 4, 9]), np.array([0.0, 4.0, 9.0])):
        out = check_class_ids(ids, 10)
        assert out.dtype == np.int64 and out.tolist() == [0, 4, 9]
    assert check_class_ids([[1, 2], [3, 4]], 10).shape == (4,)  # flattened
    assert check_class_ids([5000], None).tolist() == [5000]  # n_classes None: only integers >= 0
    assert check_class_ids([999]).tolist() == [999]  # the default range is ImageNet's 1000 classes


@pytest.mark.parametrize("ids,n,match", [
    ([], 10, "class list is empty"),
    ([0, 10], 10, r"out of range 0\.\.9: \[10\]"),
    ([-1], 10, r"out of range 0\.\.9: \[-1\]"),
    ([1000], classes.IMAGENET_N_CLASSES, r"out of range 0\.\.999"),
    ([0.5], 10, "must be integers"),
    (["a"], 10, "must be integers"),
    ([-2], None, r"out of range >= 0"),
])
def test_check_class_ids_errors(ids, n, match):
    with pytest.raises(ValueError, match=match):
        check_class_ids(ids, n)


@pytest.mark.parametrize("y,match", [
    (None, r"class-conditional: pass y, class ids in 0\.\.9"),
    (torch.tensor([0, 1]), r"y must have shape \(3,\)"),
    (torch.tensor([0.0, 1.0, 2.0]), "integer class ids"),
    (torch.tensor([0, 1, 10]), r"class ids must lie in 0\.\.9, got 0\.\.10"),
    (torch.tensor([-1, 0, 1]), r"class ids must lie in 0\.\.9"),
])
def test_check_labels_errors(y, match):
    with pytest.raises(ValueError, match=match):
        check_labels(y, 3, 10)


def test_check_labels_accepts_good_labels():
    check_labels(torch.tensor([0, 5, 9]), 3, 10)
    check_labels(torch.zeros(0, dtype=torch.int64), 0, 10)  # an empty batch is fine


def test_class_names_per_dataset():
    assert class_names("mnist") == classes.MNIST_CLASSES == tuple(str(i) for i in range(10))
    assert class_names("cifar10") == classes.CIFAR10_CLASSES
    assert class_names("cifar10")[0] == "airplane" and class_names("cifar10")[9] == "truck"
    assert class_names("imagenet") is imagenet_classes()
    with pytest.raises(ValueError, match="no class names for dataset 'svhn'"):
        class_names("svhn")


def test_imagenet_class_names_ship_with_the_package():
    names = imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    assert (names[0], names[1], names[397], names[398], names[999]) == (
        "tench", "goldfish", "puffer", "abacus", "toilet tissue")
