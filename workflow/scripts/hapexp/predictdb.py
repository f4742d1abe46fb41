"""PredictDB-compatible model database and covariance file (read by MetaXcan's
Predict.py and S-PrediXcan/SPrediXcan.py).

Schema (as PredictDB's GTEx v7/v8 dbs):
- `weights(gene, rsid, varID, ref_allele, eff_allele, weight)`. `rsid` is the VCF's
  ID when it is a dbSNP id (`rs123`), which is what S-PrediXcan matches a GWAS on and
  what the real GTEx models key on; otherwise (no rs id, or an rs id shared by several
  records at one position, e.g. a split multi-allelic site) it is the varID, so keys
  stay unique. `varID` is PredictDB's `chr{chrom}_{pos}_{ref}_{alt}_b{37|38}` (1-based
  pos; the `_b37`/`_b38` suffix from `reference.build`, none when the build is not
  set), what MetaXcan's Predict.py matches genotypes on in the newer layout.
- `extra(gene, genename, gene_type, "n.snps.in.model", "pred.perf.R2",
  "pred.perf.pval", "pred.perf.qval")`: R2 = rho_avg², pval = zscore_pval, qval
  = NULL (PredictDB leaves it empty as well).
- `construction(chromosome, cv_seed)` and `sample_info(n_samples)`.
- indexes on weights(rsid), weights(gene), weights(rsid, gene), weights(varID),
  weights(varID, gene), extra(gene) (those of the v6p and of the newer varID layout).

Covariance file: space-separated `GENE RSID1 RSID2 VALUE`, gzip, one row per pair
of model SNPs (upper triangle with diagonal), as PredictDB's `do_covariance`.

PredictDB publishes only models with `rho_avg > 0.1` and `zscore_pval < 0.05`;
`filter_models` applies that filter (config `elasticnet.filter_db`).
"""

from __future__ import annotations

import gzip
import re
import sqlite3

import numpy as np
import pandas as pd

from .io import atomic_output

EXTRA_COLUMNS = [
    "gene",
    "genename",
    "gene_type",
    "n.snps.in.model",
    "pred.perf.R2",
    "pred.perf.pval",
    "pred.perf.qval",
]
WEIGHT_COLUMNS = ["gene", "rsid", "varID", "ref_allele", "eff_allele", "weight"]

SCHEMA = [
    "CREATE TABLE weights (gene TEXT, rsid TEXT, varID TEXT, ref_allele TEXT, eff_allele TEXT, weight DOUBLE)",
    'CREATE TABLE extra (gene TEXT, genename TEXT, gene_type TEXT, "n.snps.in.model" INTEGER, '
    '"pred.perf.R2" DOUBLE, "pred.perf.pval" DOUBLE, "pred.perf.qval" DOUBLE)',
    "CREATE TABLE construction (chromosome TEXT, cv_seed INTEGER)",
    "CREATE TABLE sample_info (n_samples INTEGER)",
    "CREATE INDEX weights_rsid ON weights (rsid)",
    "CREATE INDEX weights_gene ON weights (gene)",
    "CREATE INDEX weights_rsid_gene ON weights (rsid, gene)",
    "CREATE INDEX weights_varid ON weights (varID)",
    "CREATE INDEX weights_varid_gene ON weights (varID, gene)",
    "CREATE INDEX gene_model_summary ON extra (gene)",
]

_RSID = re.compile(r"^rs[0-9]+$")
BUILD_SUFFIX = {"GRCh37": "_b37", "hg19": "_b37", "GRCh38": "_b38", "hg38": "_b38"}


def varids(chrom, pos, ref, alt, build: str | None = None) -> list[str]:
    """PredictDB's varID `chr{chrom}_{pos}_{ref}_{alt}_b{37|38}` (1-based pos)."""
    suffix = BUILD_SUFFIX.get(build, "") if build else ""
    return [
        f"{c if str(c).startswith('chr') else 'chr' + str(c)}_{int(p)}_{r}_{a}{suffix}"
        for c, p, r, a in zip(chrom, pos, ref, alt, strict=True)
    ]


def rsids(ids, pos, varid: list[str]) -> list[str]:
    """`rsid` column: the VCF ID when it is one dbSNP id used by one record at its
    position, else the varID (several ALTs of one rs id must not share a key)."""
    ids = [str(x) for x in ids]
    seen: dict[tuple[str, int], int] = {}
    for i, p in zip(ids, pos, strict=True):
        seen[i, int(p)] = seen.get((i, int(p)), 0) + 1
    by_id: dict[str, set] = {}
    for i, p in zip(ids, pos, strict=True):
        by_id.setdefault(i, set()).add(int(p))
    return [
        i if (_RSID.match(i) and seen[i, int(p)] == 1 and len(by_id[i]) == 1) else v
        for i, p, v in zip(ids, pos, varid, strict=True)
    ]


def variant_keys(dosages, build: str | None = None) -> tuple[list[str], list[str]]:
    """(rsid, varID) of every variant of a `hapexp.genotypes.Dosages`."""
    v = varids(dosages.chrom, dosages.pos, dosages.ref, dosages.alt, build)
    ids = dosages.ids if dosages.ids is not None else ["."] * len(v)
    return rsids(ids, dosages.pos, v), v


def filter_models(metrics: pd.DataFrame, min_rho: float = 0.1, max_pval: float = 0.05) -> pd.DataFrame:
    """PredictDB's significance filter on the nested-CV performance."""
    return metrics[(metrics["rho_avg"] > min_rho) & (metrics["zscore_pval"] < max_pval)]


def extra_table(metrics: pd.DataFrame, gene_type: str = "NA") -> pd.DataFrame:
    """`extra` rows from elastic-net metrics (genes with at least one weight)."""
    m = metrics[metrics["n_snps_in_model"] > 0]
    return pd.DataFrame(
        {
            "gene": m["gene_id"].astype(str).to_numpy(),
            "genename": m["gene_name"].astype(str).to_numpy(),
            "gene_type": gene_type,
            "n.snps.in.model": m["n_snps_in_model"].astype(int).to_numpy(),
            "pred.perf.R2": m["R2"].astype(float).to_numpy(),
            "pred.perf.pval": m["zscore_pval"].astype(float).to_numpy(),
            "pred.perf.qval": np.nan,
        }
    )[EXTRA_COLUMNS]


def write_db(
    path, weights: pd.DataFrame, extra: pd.DataFrame, chromosomes, cv_seed: int, n_samples: int
) -> None:
    """Write the PredictDB sqlite db atomically; weights restricted to genes in `extra`."""
    genes = set(extra["gene"])
    w = weights[weights["gene"].isin(genes)][WEIGHT_COLUMNS]
    with atomic_output(path) as tmp:
        con = sqlite3.connect(tmp)
        try:
            for stmt in SCHEMA:
                con.execute(stmt)
            con.executemany("INSERT INTO weights VALUES (?,?,?,?,?,?)", _rows(w))
            con.executemany("INSERT INTO extra VALUES (?,?,?,?,?,?,?)", _rows(extra[EXTRA_COLUMNS]))
            con.executemany(
                "INSERT INTO construction VALUES (?,?)",
                [(str(c), int(cv_seed)) for c in sorted(set(chromosomes))],
            )
            con.execute("INSERT INTO sample_info VALUES (?)", (int(n_samples),))
            con.commit()
        finally:
            con.close()


def _rows(df: pd.DataFrame):
    for rec in df.itertuples(index=False):
        yield tuple(
            None if (isinstance(v, float) and np.isnan(v)) else (v.item() if hasattr(v, "item") else v)
            for v in rec
        )


def write_covariances(path, cov: pd.DataFrame, genes=None) -> None:
    """Gzipped space-separated GENE RSID1 RSID2 VALUE (optionally restricted to `genes`); mtime 0 → reproducible."""
    if genes is not None:
        cov = cov[cov["GENE"].isin(set(genes))]
    with (
        atomic_output(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
    ):
        gz.write(b"GENE RSID1 RSID2 VALUE\n")
        for rec in cov.itertuples(index=False):
            gz.write(f"{rec.GENE} {rec.RSID1} {rec.RSID2} {rec.VALUE:.10g}\n".encode())
