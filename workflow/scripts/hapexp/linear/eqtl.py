"""cis-eQTL nominal scan and permutation pass, vectorized as tensorQTL's core.

Statistics (tensorQTL `calculate_cis_nominal`): with Q an orthonormal basis of
the centered covariates, genotypes and phenotype are centered and residualized
(`M0 - M0 Q Qᵀ`, `hapexp.stats.Residualizer`), `r` is their Pearson correlation (a
matrix product of normalized rows), `dof = n - 2 - k` (k covariates), `t = r·sqrt(dof / (1 - r²))`,
`slope = r · sd(p_res) / sd(g_res)`, `slope_se = slope / t`,
`pval_nominal = 2·T_dof(-|t|)`. These equal OLS `y ~ 1 + g + covariates` exactly.

Input choice: the workflow passes the *prepared* (already residualized) expression
together with the covariates actually used. Residualizing again is a no-op for the
phenotype (projection is idempotent) while the genotypes get residualized, and
`dof` counts the covariates, so every statistic is identical to tensorQTL run on
the transformed expression with the same covariates.

`tss_distance = (POS - tss)` on `+` genes and `(tss - POS)` on `-` genes (both
1-based), i.e. positive downstream of the TSS in transcription direction
(tensorQTL's `start_distance` is `POS - tss` regardless of strand).

Permutations (tensorQTL `map_cis`): the phenotype is permuted `nperm` times and the
maximal r² over the gene's variants recorded per permutation; `pval_perm = (1 +
#{r²_perm >= r²_top}) / (nperm + 1)`; `pval_beta` from a Beta distribution fitted to the
permutation minimum p-values after estimating the effective degrees of freedom
(`hapexp.stats.beta_approx_pval`: tensorQTL's `fit_beta_parameters`, same optimizers and
tolerances, then Newton steps from Nelder-Mead's stopping point to the exact Beta MLE: where Nelder-Mead stops moves with
1e-14 noise in its input, e.g. another BLAS thread count, and the polished fit does not;
it differs from tensorQTL's by ≤ 2e-5 in the shapes and ≤ 2e-4 in pval_beta). The permuted
phenotype is the one scanned — the prepared (residualized) expression — so each
permutation is residualized on the covariates once, as tensorQTL does with the
phenotype it is given (shuffling residuals of the covariate model: Freedman & Lane);
the genotypes are residualized once per chunk and reused (`prepare_genotypes`).
Permutation indices are drawn per gene from (seed, gene id), or passed in
(`permutation_ix`, e.g. tensorQTL's own for a parity check).

eGenes and significant pairs from the permutation table: `hapexp.linear.egenes`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from hapexp.linear.elasticnet import gene_rng
from hapexp.stats import Residualizer, beta_approx_pval, pval_from_t

log = logging.getLogger(__name__)

NOMINAL_COLUMNS = [
    "phenotype_id",
    "variant_id",
    "tss_distance",
    "af",
    "ma_samples",
    "ma_count",
    "pval_nominal",
    "slope",
    "slope_se",
    "r",
    "t",
]


def _normalize_rows(m: np.ndarray) -> np.ndarray:
    m = m - m.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return m / np.sqrt((m * m).sum(axis=1, keepdims=True))


def allele_stats(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allele frequency, minor-allele samples and counts per variant (tensorQTL `get_allele_stats`)."""
    n2 = 2 * g.shape[1]
    af = g.sum(axis=1) / n2
    alt_minor = af <= 0.5
    m = g > 0.5
    ma_samples = np.where(alt_minor, m.sum(axis=1), (g < 1.5).sum(axis=1)).astype(np.int32)
    a = (g * m).sum(axis=1).astype(np.int64)  # truncation, as tensorQTL's .int()
    ma_count = np.where(alt_minor, a, n2 - a).astype(np.int32)
    return af, ma_samples, ma_count


def slope_from_r(r: np.ndarray, p_ss, g_var: np.ndarray, n: int, dof: float):
    """slope, slope_se and t of the OLS of phenotype on genotype from their residual
    correlation `r` (tensorQTL's identities; `p_ss`: the phenotype's residual sum of
    squares, `g_var`: the genotype's residual variance, `n` samples)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = r * np.sqrt(p_ss / (n - 1) / g_var)
        t = r * np.sqrt(dof / (1.0 - r * r))
        slope_se = slope / t
    return slope, slope_se, t


def prepare_genotypes(g: np.ndarray, residualizer: Residualizer) -> dict[str, np.ndarray]:
    """Per-variant quantities shared by every gene whose window holds the variant:
    normalized residual genotypes, residual variance and allele statistics. Computed
    once per chunk, so that each gene costs one matrix-vector product."""
    g_res = residualizer.transform(g)
    ss = np.einsum("ij,ij->i", g_res, g_res)
    with np.errstate(invalid="ignore", divide="ignore"):
        g_norm = g_res / np.sqrt(ss)[:, None]
    af, ma_samples, ma_count = allele_stats(g)
    return {
        "norm": g_norm,
        "var": ss / (g.shape[1] - 1),
        "af": af,
        "ma_samples": ma_samples,
        "ma_count": ma_count,
    }


def pair_statistics(pre: dict[str, np.ndarray], ix, r: np.ndarray, p_ss, n: int, dof: float) -> dict:
    """The NOMINAL_COLUMNS statistics of variants `ix` (rows of `prepare_genotypes`' output)
    from their residual correlations `r` with a phenotype of residual sum of squares `p_ss`."""
    slope, slope_se, t = slope_from_r(r, p_ss, pre["var"][ix], n, dof)
    return {
        "af": pre["af"][ix],
        "ma_samples": pre["ma_samples"][ix],
        "ma_count": pre["ma_count"][ix],
        "pval_nominal": pval_from_t(t, dof),
        "slope": slope,
        "slope_se": slope_se,
        "r": r,
        "t": t,
    }


def associate(
    pre: dict[str, np.ndarray], ix, p: np.ndarray, residualizer: Residualizer, r: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Statistics of variants `ix` (rows of `prepare_genotypes`' output) with phenotype `p`
    (`r`: their correlations when already computed in a batch)."""
    p_res = residualizer.transform(p)[0]
    p_ss = float(p_res @ p_res)
    if r is None:
        r = pre["norm"][ix] @ (p_res / np.sqrt(p_ss))
    return pair_statistics(pre, ix, r, p_ss, p.shape[0], residualizer.dof)


def nominal_association(g: np.ndarray, p: np.ndarray, residualizer: Residualizer) -> dict[str, np.ndarray]:
    """Association of every variant (rows of `g`, variants × samples) with one phenotype `p`."""
    return associate(prepare_genotypes(g, residualizer), slice(None), p, residualizer)


def permutation_indices(n: int, nperm: int, rng) -> np.ndarray:
    """`nperm` permutations of range(n), one per row."""
    return np.vstack([rng.permutation(n) for _ in range(nperm)])


def permutation_r2(
    g_norm: np.ndarray, p: np.ndarray, residualizer: Residualizer, perm_ix: np.ndarray
) -> np.ndarray:
    """Maximum r² over variants for each permutation (rows of `perm_ix`) of phenotype `p`.

    `g_norm`: the variants' residualized, normalized genotypes (`prepare_genotypes`'
    "norm" rows) — residualized once per chunk, not again per gene."""
    pn = _normalize_rows(residualizer.transform(p[perm_ix]))
    r2 = (g_norm @ pn.T) ** 2  # variants × permutations
    return np.nanmax(r2, axis=0)


def scan_genes(
    dosages,
    genes: pd.DataFrame,
    expression: pd.DataFrame,
    covariates: pd.DataFrame | None,
    permutations: int = 0,
    seed: int = 1,
    permutation_ix: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nominal pairs and per-gene top variants for `genes` (with start0/end0 window columns).

    `dosages` is a `hapexp.variants.genotypes.Dosages` on the same samples, in the same
    order, as the columns of `expression` and `covariates`.

    Vectorized over the chunk: genotypes and phenotypes are residualized and
    normalized once; correlations come from one matrix product per block of genes
    with overlapping windows (`_gene_blocks`: the block's variant range × its genes,
    so nearly only the cis pairs are computed, at GEMM speed); the statistics of all
    pairs are then computed in one pass over flat arrays.

    `permutations` > 0 adds the permutation pass per gene (indices from (seed, gene
    id)); `permutation_ix` (nperm × samples) uses those permutations for every gene
    instead, as tensorQTL's map_cis does.
    """
    samples = list(expression.columns)
    if list(dosages.samples) != samples:
        raise ValueError("dosages and expression must have the same samples in the same order")
    cov = None if covariates is None or covariates.shape[0] == 0 else covariates.loc[:, samples].to_numpy().T
    res = Residualizer(cov, n_samples=len(samples))
    n = len(samples)
    top_columns = ["phenotype_id", "num_var", *NOMINAL_COLUMNS[1:]]
    sel = genes[genes["gene_id"].isin(expression.index)].reset_index(drop=True)
    windows = []
    for row in sel.itertuples(index=False):
        ix = dosages.window_index(str(row.chrom), int(row.start0), int(row.end0))
        if ix.size == 0:
            log.info("%s: no variants in the cis window", row.gene_id)
        windows.append(ix)
    keep = [i for i, ix in enumerate(windows) if ix.size]
    if not keep:
        return pd.DataFrame(columns=NOMINAL_COLUMNS), pd.DataFrame(columns=top_columns)
    sel = sel.iloc[keep].reset_index(drop=True)
    windows = [windows[i] for i in keep]
    pre = prepare_genotypes(dosages.dosage, res)
    p_raw = expression.loc[sel["gene_id"]].to_numpy(dtype=float)
    p_res = res.transform(p_raw)
    p_ss = np.einsum("ij,ij->i", p_res, p_res)
    pn = p_res / np.sqrt(p_ss)[:, None]
    # correlations of every pair, gene after gene, variants in window order
    sizes = np.array([ix.size for ix in windows])
    rows = np.concatenate(windows)
    r = np.empty(rows.size)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for block in _gene_blocks(windows):
        lo, hi = int(windows[block[0]][0]), max(int(windows[j][-1]) for j in block) + 1
        if len(block) > 1 or hi - lo == sizes[block[0]]:
            rb = pre["norm"][lo:hi] @ pn[block].T  # the block's variant range × its genes
            for c, j in enumerate(block):
                r[offsets[j] : offsets[j + 1]] = rb[windows[j] - lo, c]
        else:  # a window that is not a run of rows (variants of several chromosomes interleaved)
            j = block[0]
            r[offsets[j] : offsets[j + 1]] = pre["norm"][windows[j]] @ pn[j]
    gi = np.repeat(np.arange(len(sel)), sizes)
    tss = sel["tss"].to_numpy(dtype=np.int64)
    sign = np.where(sel["strand"].to_numpy() == "-", -1, 1)
    dist = ((dosages.pos[rows].astype(np.int64) - tss[gi]) * sign[gi]).astype(np.int32)
    gene_ids = sel["gene_id"].astype(str).to_numpy(dtype=object)
    vid = dosages.variant_id.astype(str)
    cols = {
        "phenotype_id": _str_column(gi, gene_ids),
        "variant_id": _str_column(rows, vid),
        "tss_distance": dist,
        **pair_statistics(pre, rows, r, p_ss[gi], n, res.dof),
    }
    nominal = pd.DataFrame(cols, columns=NOMINAL_COLUMNS, copy=False)
    r2 = r * r
    tops = []
    for j, gid in enumerate(gene_ids):
        a, b = offsets[j], offsets[j + 1]
        # first variant (window order) within rounding of the largest r²: variants in
        # perfect LD tie, and the pick must not depend on the last bit of a BLAS kernel
        seg = r2[a:b]
        best = a + int(np.argmax(seg >= np.nanmax(seg) * (1 - 1e-12)))
        top = {"phenotype_id": gid, "num_var": int(sizes[j])}
        top.update(
            {k: (vid[rows[best]] if k == "variant_id" else cols[k][best]) for k in NOMINAL_COLUMNS[1:]}
        )
        if permutations > 0 or permutation_ix is not None:
            if permutation_ix is None:
                perm_ix = permutation_indices(n, permutations, gene_rng(seed, gid))
            else:
                perm_ix = np.asarray(permutation_ix)
            r2_perm = permutation_r2(pre["norm"][windows[j]], p_raw[j], res, perm_ix)
            top["pval_perm"] = (np.sum(r2_perm >= r2[best]) + 1) / (len(perm_ix) + 1)
            top.update(beta_approx_pval(r2_perm, r2[best], res.dof))
        tops.append(top)
    return nominal, pd.DataFrame(tops)


def _gene_blocks(windows: list[np.ndarray], max_genes: int = 64, slack: float = 0.25) -> list[list[int]]:
    """Consecutive genes grouped while their windows are runs of rows and the union of
    the block's windows is at most (1 + slack)× its largest window (genes sorted by TSS,
    as in a chunk, share most of their cis variants)."""
    blocks, cur, lo, hi, big = [], [], 0, 0, 0
    for j, ix in enumerate(windows):
        a, b = int(ix[0]), int(ix[-1]) + 1
        run = b - a == ix.size
        if cur and run and len(cur) < max_genes:
            nlo, nhi, nbig = min(lo, a), max(hi, b), max(big, b - a)
            if nhi - nlo <= (1 + slack) * nbig:
                cur.append(j)
                lo, hi, big = nlo, nhi, nbig
                continue
        if cur:
            blocks.append(cur)
        cur, lo, hi, big = [j], a, b, b - a
        if not run:  # a scattered window is a block of its own
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    return blocks


_STR_DTYPE = pd.Series(["x"]).dtype  # pandas' default string dtype ("str" in pandas >= 3)


def _str_column(codes: np.ndarray, labels: np.ndarray):
    """labels[codes] as pandas' default string column, built in Arrow (a dictionary
    decode) instead of element by element from Python objects."""
    if not isinstance(_STR_DTYPE, pd.StringDtype):  # pandas < 3: object columns
        return labels[codes]
    import pyarrow as pa

    arr = pa.DictionaryArray.from_arrays(
        pa.array(codes, type=pa.int64()), pa.array(list(labels), pa.string())
    )
    return pd.array(arr.cast(pa.large_string()), dtype=_STR_DTYPE)


def chunk_problem(prepared, covariates, vcf, chunk, window, models: dict, maf: float, policies: dict):
    """One chunk's cis problem, as the eQTL scan and fine-mapping read it: (dosages of the
    genes' cis variants — the window resolved, MAF and variant policy applied — genes,
    prepared expression, covariates)."""
    from hapexp.io import read_matrix
    from hapexp.variants.genotypes import cis_dosages
    from hapexp.variants.windows import resolve_window

    expr = read_matrix(prepared)
    cov = read_matrix(covariates, index_col="id")
    genes = pd.read_csv(chunk, sep="\t", dtype={"gene_id": str, "chrom": str})
    window = resolve_window(window, models)
    dosages, genes = cis_dosages(vcf, genes, window, list(expr.columns), maf, policies)
    return dosages, genes, expr, cov


def run_eqtl(prepared, covariates, vcf, chunk, nominal, top, window, models: dict, maf: float,
             permutations: int, seed: int, policies: dict, threads: int) -> None:  # fmt: skip
    """Rule `eqtl`: the nominal scan (`nominal`) and the permutation pass (`top`) of one
    `chunk` of genes; `window` as configured (bp, gene_body_1mb or a model name: `models`
    resolves it)."""
    from threadpoolctl import threadpool_limits

    from hapexp.io import write_parquet, write_tsv

    dosages, genes, expr, cov = chunk_problem(prepared, covariates, vcf, chunk, window, models, maf, policies)
    with threadpool_limits(limits=threads):
        pairs, tops = scan_genes(dosages, genes, expr, cov, permutations=permutations, seed=seed)
    write_parquet(pairs, nominal)
    write_tsv(tops, top)


def run_gather_eqtl(nominal_chunks, top_chunks, nominal, genes, summary, fdr: float) -> None:
    """Rule `gather_eqtl`: the chunks' nominal pairs in one file (`nominal`), and the per-gene
    table (`genes`) with eGenes (q-values of the permutation p-values, per-gene nominal
    thresholds; counts in `summary`)."""
    import json

    from hapexp.io import atomic_output, concat_parquet, write_tsv
    from hapexp.linear.egenes import egenes

    # Streamed chunk by chunk: the nominal pairs of a whole cohort need not fit in memory.
    n_pairs = concat_parquet(list(nominal_chunks), nominal, NOMINAL_COLUMNS)
    tops = [pd.read_csv(f, sep="\t") for f in top_chunks]
    top = pd.concat(tops, ignore_index=True) if any(len(t) for t in tops) else tops[0]
    top, counts = egenes(top, fdr=fdr)
    log.info("%d pairs, %d genes", n_pairs, len(top))
    if counts:
        log.info(
            "eGenes (permutations, Storey q <= %(fdr)g): %(egenes)d of %(genes)d; pi0 = %(pi0).3f "
            "(%(qvalue_method)s); genome-wide min-p threshold %(min_p_threshold)s",
            counts,
        )
    else:
        log.warning(
            "no permutations (eqtl.permutations: 0): no eGenes; concordance can only use bh_all_pairs"
        )
    write_tsv(top, genes)
    with atomic_output(summary) as tmp:
        tmp.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
