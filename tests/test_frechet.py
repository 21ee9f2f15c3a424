import numpy as np
import pytest
from scipy import linalg

from gankd_utils.metrics import feature_stats, frechet_distance, kid


def _scipy_reference(mu1, s1, mu2, s2):
    # the textbook formula with scipy's sqrtm, no regularisation
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * covmean))


def _random_stats(rng, d, n=400, shift=0.0, scale=1.0):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * scale + shift
    return feature_stats(x)


def test_matches_scipy_reference():
    rng = np.random.default_rng(0)
    a, b = _random_stats(rng, 16), _random_stats(rng, 16, shift=0.3, scale=1.5)
    assert frechet_distance(*a, *b) == pytest.approx(_scipy_reference(*a, *b), rel=1e-6)


def test_properties():
    rng = np.random.default_rng(1)
    a, b = _random_stats(rng, 8), _random_stats(rng, 8, shift=1.0)
    assert frechet_distance(*a, *a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(*a, *b) == pytest.approx(frechet_distance(*b, *a), rel=1e-6)
    assert frechet_distance(*a, *b) > 0
    # a pure translation by t adds |t|^2
    t = np.full(8, 0.5)
    assert frechet_distance(a[0], a[1], a[0] + t, a[1]) == pytest.approx(8 * 0.25, rel=1e-6)


def test_one_dimensional_closed_form():
    # d^2 = (mu1 - mu2)^2 + (sd1 - sd2)^2 in one dimension
    d = frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-1.0]), np.array([[9.0]]))
    assert d == pytest.approx(4.0 + 1.0)


def test_singular_covariances_are_handled():
    mu = np.zeros(4)
    s = np.diag([1.0, 1.0, 0.0, 0.0])
    assert np.isfinite(frechet_distance(mu, s, mu + 1, s))


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape mismatch"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_kid_properties():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 8))
    same = kid(a, rng.normal(size=(300, 8)), n_subsets=10, subset_size=200)[0]
    shifted = kid(a, rng.normal(size=(300, 8)) + 1.0, n_subsets=10, subset_size=200)[0]
    assert abs(same) < 0.05 < shifted
