"""Expression preparation: transforms, PCs, residualization, sample handling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hapexp.errors import InputError
from hapexp.inputs.expression import (
    expression_pcs,
    inverse_normal_transform,
    prepare_expression,
    select_samples,
    zscore,
)


def _expr(n_genes=20, n=30, seed=0):
    rng = np.random.default_rng(seed)
    samples = [f"S{i}" for i in range(n)]
    x = rng.lognormal(size=(n_genes, n)) * 100
    return pd.DataFrame(x, index=[f"G{i}" for i in range(n_genes)], columns=samples)


def _cov(samples, k=2, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        rng.normal(size=(k, len(samples))), index=[f"c{i}" for i in range(k)], columns=samples
    )


def test_inverse_normal_is_monotone_normal_quantiles():
    x = np.array([[5.0, 1.0, 3.0, 3.0, 10.0]])
    out = inverse_normal_transform(x)[0]
    # ranks 4, 1, 2.5, 2.5, 5 of n=5 → Φ⁻¹(rank / 6)
    np.testing.assert_allclose(out, stats.norm.ppf(np.array([4, 1, 2.5, 2.5, 5]) / 6), rtol=1e-12)
    assert out[1] < out[2] == out[3] < out[0] < out[4]


def test_zscore_rows():
    z = zscore(np.array([[1.0, 2.0, 3.0, 6.0], [2.0, 2.0, 2.0, 2.0]]))
    np.testing.assert_allclose(z[0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(z[0].std(ddof=1), 1, rtol=1e-12)
    assert np.all(z[1] == 0)


def test_pcs_match_sklearn_and_follow_the_sign_rule():
    """PC scores equal scikit-learn's PCA up to each component's sign; that sign is fixed so
    that the gene with the largest absolute loading loads positively — hence reordering the
    genes changes nothing, and negating every gene negates the scores."""
    from sklearn.decomposition import PCA

    e = _expr()
    pcs = expression_pcs(e, 3)
    assert list(pcs.index) == ["PC1", "PC2", "PC3"]
    s = pcs.to_numpy().T  # samples × 3
    x = e.to_numpy(dtype=float).T
    ref = PCA(n_components=3, svd_solver="full").fit_transform(x)
    np.testing.assert_allclose(np.abs(s), np.abs(ref), rtol=1e-8, atol=1e-8)
    loadings = (x - x.mean(axis=0)).T @ s  # genes × 3, ∝ each component's loadings
    for k in range(3):
        assert loadings[np.argmax(np.abs(loadings[:, k])), k] > 0
    perm = np.random.default_rng(3).permutation(len(e))
    np.testing.assert_allclose(
        expression_pcs(e.iloc[perm], 3).to_numpy(), pcs.to_numpy(), rtol=1e-8, atol=1e-8
    )
    np.testing.assert_allclose(expression_pcs(-e, 3).to_numpy(), -pcs.to_numpy(), rtol=1e-8, atol=1e-8)


def test_prepared_is_ols_residual_orthogonal_to_covariates():
    e = _expr()
    cov = _cov(list(e.columns))
    prepared, used, transformed = prepare_expression(e, cov, "inverse_normal", n_pcs=2)
    assert list(used.index) == ["c0", "c1", "PC1", "PC2"]
    design = np.column_stack([np.ones(e.shape[1]), used.to_numpy().T])
    for g in ["G0", "G7"]:
        beta, *_ = np.linalg.lstsq(design, transformed.loc[g].to_numpy(), rcond=None)
        resid = transformed.loc[g].to_numpy() - design @ beta
        np.testing.assert_allclose(prepared.loc[g].to_numpy(), resid, atol=1e-10)
    np.testing.assert_allclose(prepared.to_numpy() @ design, 0, atol=1e-9)


def test_samples_intersection_keeps_expression_order():
    e = _expr(n=6)
    cov = _cov(["S5", "S0", "S1", "S3", "S4"])
    assert select_samples(e, ["S4", "S3", "S1", "S0", "S2"], cov, ["S0", "S1", "S3", "S4", "S9"]) == [
        "S0",
        "S1",
        "S3",
        "S4",
    ]


def test_missing_covariates_and_collinearity_raise():
    e = _expr()
    cov = _cov(list(e.columns)[:-1])
    with pytest.raises(InputError, match="no covariates"):
        prepare_expression(e, cov, "zscore", samples=list(e.columns))
    cov = _cov(list(e.columns))
    cov.loc["dup"] = 2 * cov.loc["c0"] + 1
    with pytest.raises(InputError, match="collinear"):
        prepare_expression(e, cov, "zscore")


def test_constant_gene_dropped():
    e = _expr()
    e.loc["G3"] = 7.0
    prepared, _, _ = prepare_expression(e, None, "inverse_normal")
    assert "G3" not in prepared.index and len(prepared) == len(e) - 1
