"""Input validation shared by every public metric."""

from __future__ import annotations

import numpy as np
import pytest

from lmvae.probes import beta_vae, dci, factor_vae, mig, modularity, sap

METRICS = [mig, dci, sap, modularity, beta_vae, factor_vae]


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    return rng.standard_normal((100, 3)), rng.integers(3, size=(100, 2))


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_row_mismatch(metric, small):
    codes, factors = small
    with pytest.raises(ValueError, match="codes has 100 rows but factors has 90"):
        metric(codes, factors[:90])


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_one_dimensional_inputs(metric, small):
    codes, factors = small
    with pytest.raises(ValueError, match="codes must be 2-D"):
        metric(codes[:, 0], factors)
    with pytest.raises(ValueError, match="factors must be 2-D"):
        metric(codes, factors[:, 0])


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_constant_factor(metric, small):
    codes, factors = small
    bad = np.column_stack([factors, np.full(100, 7)])
    with pytest.raises(ValueError, match=r"factor column\(s\) \[2\] are constant"):
        metric(codes, bad)
