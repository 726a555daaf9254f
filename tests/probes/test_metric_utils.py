from __future__ import annotations

import numpy as np
import pytest

from lmvae.probes.metrics.utils import (
    FixedFactorSampler,
    check_codes_factors,
    discrete_entropy,
    discretize,
    encode_factors,
    entropy,
    mutual_info_matrix,
    train_test_indices,
)


def test_discretize_equal_width_bins():
    x = np.array([[0.0], [0.24], [0.26], [0.5], [0.74], [1.0]])
    assert discretize(x, n_bins=4)[:, 0].tolist() == [0, 0, 1, 2, 2, 3]
    out = discretize(np.random.default_rng(0).standard_normal((500, 3)), n_bins=20)
    assert out.shape == (500, 3)
    assert out.min() == 0 and out.max() == 19


def test_discretize_constant_column_is_one_bin():
    out = discretize(np.column_stack([np.full(10, 3.0), np.arange(10.0)]), n_bins=5)
    assert np.unique(out[:, 0]).size == 1
    assert np.unique(out[:, 1]).size == 5


def test_discretize_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        discretize(np.arange(5.0))
    with pytest.raises(ValueError, match="n_bins"):
        discretize(np.zeros((5, 2)), n_bins=0)


def test_entropy_of_uniform_is_log_k():
    for k in (2, 3, 7):
        assert entropy(np.repeat(np.arange(k), 11)) == pytest.approx(np.log(k))
    assert entropy(np.zeros(9)) == 0.0
    labels = np.column_stack([np.repeat(np.arange(4), 5), np.tile([0, 1], 10)])
    np.testing.assert_allclose(discrete_entropy(labels), [np.log(4), np.log(2)])


def test_mutual_info_identical_and_independent():
    a = np.repeat(np.arange(4), 6)  # 24 rows, uniform over 4 values
    b = np.tile(np.arange(3), 8)  # 24 rows, exactly independent of a
    m = mutual_info_matrix(np.column_stack([a, b]), np.column_stack([a, b]))
    np.testing.assert_allclose(m, [[np.log(4), 0.0], [0.0, np.log(3)]], atol=1e-12)


def test_mutual_info_rejects_row_mismatch():
    with pytest.raises(ValueError, match="rows"):
        mutual_info_matrix(np.zeros((4, 1)), np.zeros((5, 1)))


def test_encode_factors_strings_per_column():
    f = np.array([["b", "x"], ["a", "y"], ["b", "y"]])
    assert encode_factors(f).tolist() == [[1, 0], [0, 1], [1, 1]]


def test_check_codes_factors_messages():
    codes = np.zeros((100, 3))
    with pytest.raises(ValueError, match="codes has 100 rows but factors has 90"):
        check_codes_factors(codes, np.zeros((90, 2)))
    with pytest.raises(ValueError, match="codes must be 2-D"):
        check_codes_factors(np.zeros(100), np.zeros((100, 2)))
    with pytest.raises(ValueError, match="factors must be 2-D"):
        check_codes_factors(codes, np.arange(100))
    with pytest.raises(ValueError, match=r"factor column\(s\) \[1\] are constant"):
        check_codes_factors(codes, np.column_stack([np.arange(100) % 2, np.ones(100)]))
    with pytest.raises(ValueError, match="NaN"):
        check_codes_factors(np.full((100, 3), np.nan), np.arange(100)[:, None] % 2)
    with pytest.raises(ValueError, match="at least 2 latent"):
        check_codes_factors(np.zeros((100, 1)), np.arange(100)[:, None] % 2, min_latents=2)
    c, f = check_codes_factors(codes.astype(np.float32), np.array([["u"], ["v"]] * 50))
    assert c.dtype == np.float64 and f.dtype == np.int64 and f.shape == (100, 1)


def test_fixed_factor_sampler_skips_singletons():
    f = np.column_stack([np.arange(10), np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 4])])
    sampler = FixedFactorSampler(f)
    assert sampler.factor_ids == [1]  # factor 0 has only unique values
    rng = np.random.default_rng(0)
    for _ in range(50):
        k, rows = sampler.sample(rng)
        assert k == 1 and rows.size >= 2 and np.unique(f[rows, 1]).size == 1
    with pytest.raises(ValueError, match="at least 2 rows"):
        FixedFactorSampler(np.arange(5)[:, None])


def test_train_test_indices_partition():
    tr, te = train_test_indices(10, 0.3, np.random.default_rng(0))
    assert len(te) == 3 and sorted(np.concatenate([tr, te]).tolist()) == list(range(10))
