"""Expression preparation shared by every predictor: transform, covariates + PCs, residualize.

One prepared matrix (genes × samples) is what every model, deep or linear, is
compared on. The steps follow GTEx/tensorQTL practice:

1. restrict to the analysed individuals (in expression, VCF, covariates and the
   optional sample list), in the expression file's column order;
2. transform each gene: rank-based inverse normal (`Φ⁻¹(rank / (n + 1))`, ties
   averaged, as GTEx's `inverse_normal_transform`), z-score, or none;
3. covariates = user covariates + the genotype PCs when asked (`genotype_PC1..`, rule
   genotype_pcs: `hapexp.variants.genotype_pcs`) + the first `n_pcs` principal components of the
   transformed expression (samples' PC scores, sign fixed so that the largest
   loading is positive: deterministic across BLAS builds);
4. residualize every gene on intercept + covariates by least squares
   (`hapexp.stats.residualize`).

The residuals are *not* rescaled: regressing genotype on them with the same
covariates reproduces tensorQTL's statistics exactly (projection is idempotent),
see `hapexp.linear.eqtl`.

Split-aware preparation (`fit_samples`: the training people; rule
`prepare_split_expression`, read by fine-tuning, the heads and the split verdict): each
step is *fitted* on the training people and *applied* to the others, so that nothing a
model trains on depends on a held-out person's expression:

- inverse normal: a value's mid-rank in the training people's empirical distribution,
  r(v) = #{train < v} + (#{train = v} + 1) / 2, then Φ⁻¹(r / (n_train + 1)). A training
  person gets exactly their average rank among the training people (GTEx's formula on
  them alone); a held-out value equal to a training value gets that value's transform
  (ties); one between two training values the rank half-way; one below the training
  minimum r = 1/2, above the maximum r = n_train + 1/2 (finite, half a rank beyond the
  training extremes, never ±∞). z-score: the training people's mean and SD;
- expression PCs: loadings from the training people's transformed expression (centred on
  their mean); training people's scores as before, held-out people projected on them;
- covariate regression: coefficients fitted on the training people, applied to everyone
  (`hapexp.stats.residualize_fitted`).

Genes constant across the training people are dropped (they cannot be transformed).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from hapexp.errors import InputError
from hapexp.stats import covariate_design, residualize, residualize_fitted

log = logging.getLogger(__name__)

TRANSFORMS = ("inverse_normal", "zscore", "none")


def inverse_normal_transform(values: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """Rank-based inverse normal transform of each row (genes × samples), Φ⁻¹(r / (n + 1))
    with r the average rank (ties averaged). `fit` (boolean mask of the columns): ranks in
    those columns' values only, n their number; other columns by their mid-rank in them
    (module doc). None: every column (the classic transform)."""
    values = np.asarray(values, dtype=float)
    if fit is None:
        n = values.shape[1]
        ranks = stats.rankdata(values, axis=1, method="average")
        return stats.norm.ppf(ranks / (n + 1))
    fit = np.asarray(fit, dtype=bool)
    train = values[:, fit]
    both = np.concatenate([train, values], axis=1)
    # #{train < v} and #{train <= v} for every value v: its rank among training + all values
    # minus its rank among all values (1-based 'min' / 'max' ranks count < and <=).
    below = stats.rankdata(both, axis=1, method="min")[:, train.shape[1] :] - stats.rankdata(
        values, axis=1, method="min"
    )
    upto = stats.rankdata(both, axis=1, method="max")[:, train.shape[1] :] - stats.rankdata(
        values, axis=1, method="max"
    )
    return stats.norm.ppf((below + upto + 1) / 2 / (train.shape[1] + 1))


def zscore(values: np.ndarray, fit: np.ndarray | None = None) -> np.ndarray:
    """Center each row and scale it to unit standard deviation (ddof=1), mean and SD over the
    columns `fit` (None: all); rows constant over them → 0."""
    values = np.asarray(values, dtype=float)
    ref = values if fit is None else values[:, np.asarray(fit, dtype=bool)]
    centered = values - ref.mean(axis=1, keepdims=True)
    sd = ref.std(axis=1, ddof=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sd > 0, centered / np.where(sd > 0, sd, 1.0), 0.0)
    return out


def transform_expression(df: pd.DataFrame, transform: str, fit: np.ndarray | None = None) -> pd.DataFrame:
    """Apply `transform` (one of TRANSFORMS) per gene, fitted on the columns `fit` (boolean
    mask; None: all); returns a new frame."""
    if transform == "inverse_normal":
        vals = inverse_normal_transform(df.to_numpy(), fit)
    elif transform == "zscore":
        vals = zscore(df.to_numpy(), fit)
    elif transform == "none":
        vals = df.to_numpy(dtype=float).copy()
    else:
        raise ValueError(f"unknown expression transform {transform!r}; use one of {TRANSFORMS}")
    return pd.DataFrame(vals, index=df.index, columns=df.columns)


def expression_pcs(df: pd.DataFrame, k: int, fit: np.ndarray | None = None) -> pd.DataFrame:
    """First `k` principal components of genes × samples `df` as a covariates × samples frame.
    `fit` (boolean mask of the samples; None: all): the loadings come from those samples
    (centred on their mean), the other samples are projected on them."""
    if k == 0:
        return pd.DataFrame(columns=df.columns, index=pd.Index([], name="id"), dtype=float)
    fit = np.ones(df.shape[1], bool) if fit is None else np.asarray(fit, dtype=bool)
    x_all = df.to_numpy(dtype=float).T  # samples × genes
    mean = x_all[fit].mean(axis=0)
    x = x_all[fit] - mean
    k_max = min(x.shape) - 1
    if k > k_max:
        raise ValueError(
            f"expression.n_pcs={k} but at most {k_max} PCs exist for {x.shape[0]} samples × {x.shape[1]} genes"
        )
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    u, vt = u[:, :k], vt[:k]
    # Deterministic sign: largest absolute loading positive.
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    scores = np.empty((len(fit), k))
    scores[fit] = u * s[:k] * signs
    scores[~fit] = ((x_all[~fit] - mean) @ vt.T) * signs  # held-out people: projected
    return pd.DataFrame(
        scores.T, index=pd.Index([f"PC{i + 1}" for i in range(k)], name="id"), columns=df.columns
    )


def select_samples(
    expr: pd.DataFrame,
    vcf_samples: list[str] | None = None,
    covariates: pd.DataFrame | None = None,
    sample_list: list[str] | None = None,
) -> list[str]:
    """Samples analysed: expression columns also in the VCF, covariates and sample list (expression order)."""
    keep = list(expr.columns)
    for other in (vcf_samples, None if covariates is None else list(covariates.columns), sample_list):
        if other is not None:
            s = set(other)
            keep = [x for x in keep if x in s]
    return keep


def prepare_expression(
    expr: pd.DataFrame,
    covariates: pd.DataFrame | None,
    transform: str = "inverse_normal",
    n_pcs: int = 0,
    samples: list[str] | None = None,
    expression_path="expression",
    covariates_path="covariates",
    genotype_pcs: pd.DataFrame | None = None,
    genotype_pcs_path="genotype_pcs",
    fit_samples: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (prepared residuals, covariates used, transformed expression), all on `samples`.

    `samples` (default: all expression columns) fixes the individuals and their order.
    `fit_samples` (default: all of them): the people the transform, the PCs and the
    covariate regression are fitted on, applied to every sample (module doc).
    Genes with no variance across the fitting samples are dropped (logged): they cannot be
    transformed or predicted. `genotype_pcs` (PCs × samples, a superset of `samples`) are
    added after the user covariates.
    """
    samples = list(expr.columns) if samples is None else list(samples)
    if len(samples) < 3:
        raise InputError(
            expression_path,
            f"only {len(samples)} samples are shared by expression, VCF, covariates and sample list",
            "Check that sample ids match between the files.",
        )
    x = expr.loc[:, samples]
    if x.isna().any().any():
        bad = x.index[x.isna().any(axis=1)][0]
        raise InputError(
            expression_path, "missing expression value", "Impute or drop the gene.", where=f"gene {bad}"
        )
    fit = None if fit_samples is None else np.isin(samples, list(fit_samples))
    if fit is not None and fit.sum() < 3:
        raise InputError(
            expression_path,
            f"only {int(fit.sum())} of the {len(fit_samples)} training people are analysed samples",
            "Rerun rule splits for this cohort.",
        )
    n_fit = len(samples) if fit is None else int(fit.sum())
    sd = x.to_numpy(dtype=float)[:, slice(None) if fit is None else fit].std(axis=1)
    if (sd == 0).any():
        log.warning("dropping %d genes constant across the %d samples fitted on", int((sd == 0).sum()), n_fit)
        x = x.loc[sd > 0]
    transformed = transform_expression(x, transform, fit)
    parts = []
    if covariates is not None and covariates.shape[0] > 0:
        missing = [s for s in samples if s not in covariates.columns]
        if missing:
            raise InputError(
                covariates_path,
                f"{len(missing)} analysed samples have no covariates (e.g. {missing[0]!r})",
                "Add the samples' covariates or restrict the cohort with a sample list.",
            )
        parts.append(covariates.loc[:, samples].astype(float))
    if genotype_pcs is not None and genotype_pcs.shape[0] > 0:
        missing = [s for s in samples if s not in genotype_pcs.columns]
        if missing:
            raise InputError(
                genotype_pcs_path,
                f"{len(missing)} analysed samples have no genotype PCs (e.g. {missing[0]!r})",
                "Rerun rule genotype_pcs on the cohort's normalized BCF.",
            )
        parts.append(genotype_pcs.loc[:, samples].astype(float))
    try:
        pcs = expression_pcs(transformed, n_pcs, fit)
    except ValueError as e:
        raise InputError(expression_path, str(e), "Lower expression.n_pcs.") from None
    if n_pcs:
        parts.append(pcs)
    cov = pd.concat(parts) if parts else pd.DataFrame(columns=samples, dtype=float)
    cov.index.name = "id"
    if cov.shape[0] >= n_fit - 2:
        raise InputError(
            covariates_path,
            f"{cov.shape[0]} covariates for {n_fit} samples"
            + ("" if fit is None else " (the training people)")
            + " leave no degrees of freedom",
            "Use fewer covariates / expression PCs / genotype PCs.",
        )
    try:
        if fit is None:
            resid = residualize(transformed.to_numpy(), covariate_design(cov.to_numpy().T))
        else:
            resid = residualize_fitted(transformed.to_numpy(), cov.to_numpy().T, fit)
    except ValueError as e:
        where = "" if fit is None else " over the training people (rule splits)"
        raise InputError(
            covariates_path, f"{e}{where}", "Drop the redundant covariate (or fewer PCs)."
        ) from None
    prepared = pd.DataFrame(resid, index=transformed.index, columns=samples)
    prepared.index.name = "gene_id"
    return prepared, cov, transformed


def run_prepare_expression(
    vcf, prepared, covariates, cohort: dict, transform: str, n_pcs: int, genotype_pcs=None
) -> None:
    """Rule `prepare_expression`: the analysed people (in the expression, the VCF, the
    covariates and the sample list), their expression transformed and residualized on the
    covariates (+ the genotype PCs of rule genotype_pcs when on, + `n_pcs` expression PCs),
    and the covariates used."""
    from hapexp.inputs.formats import read_covariates, read_expression, read_sample_list
    from hapexp.io import read_matrix, write_matrix
    from hapexp.variants.files import vcf_samples

    expr = read_expression(cohort["expression"], cohort["expression_format"])
    cov = read_covariates(cohort["covariates"]) if cohort.get("covariates") else None
    sample_list = read_sample_list(cohort["samples"]) if cohort.get("samples") else None
    samples = select_samples(expr, vcf_samples(vcf), cov, sample_list)
    log.info(
        "%d samples in expression, VCF%s",
        len(samples),
        ", covariates and sample list" if cov is not None else "",
    )
    residuals, used, _ = prepare_expression(
        expr,
        cov,
        transform=transform,
        n_pcs=n_pcs,
        samples=samples,
        expression_path=cohort["expression"],
        # the name errors about covariates give (there is no file without them)
        covariates_path=cohort.get("covariates") or "covariates",
        genotype_pcs=read_matrix(genotype_pcs, index_col="id") if genotype_pcs else None,
        genotype_pcs_path=genotype_pcs or "genotype_pcs",
    )
    log.info("prepared %d genes × %d samples; %d covariates", *residuals.shape, used.shape[0])
    write_matrix(used, covariates, index_col="id")
    write_matrix(residuals, prepared)
