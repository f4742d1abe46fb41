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

from hapexp.io import atomic_output
from hapexp.variants.genotypes import span_dosages

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
    """(rsid, varID) of every variant of a `hapexp.variants.genotypes.Dosages`."""
    v = varids(dosages.chrom, dosages.pos, dosages.ref, dosages.alt, build)
    ids = dosages.ids if dosages.ids is not None else ["."] * len(v)
    return rsids(ids, dosages.pos, v), v


def filter_models(metrics: pd.DataFrame, min_rho: float = 0.1, max_pval: float = 0.05) -> pd.DataFrame:
    """PredictDB's significance filter on the nested-CV performance."""
    return metrics[(metrics["rho_avg"] > min_rho) & (metrics["zscore_pval"] < max_pval)]


def extra_table(metrics: pd.DataFrame, gene_type: str | pd.Series | dict = "NA") -> pd.DataFrame:
    """`extra` rows from elastic-net metrics (genes with at least one weight).

    `gene_type`: one type for all genes, or gene id → type (genes.tsv's `gene_type`,
    from the GTF); genes missing from it get "NA"."""
    m = metrics[metrics["n_snps_in_model"] > 0]
    if isinstance(gene_type, str):
        types = np.full(len(m), gene_type, dtype=object)
    else:
        types = m["gene_id"].astype(str).map(pd.Series(gene_type)).fillna("NA").to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "gene": m["gene_id"].astype(str).to_numpy(),
            "genename": m["gene_name"].astype(str).to_numpy(),
            "gene_type": types,
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


def read_predictdb_weights(db_path) -> pd.DataFrame:
    """The `weights` table of a PredictDB sqlite db: gene, rsid, varID, ref_allele,
    eff_allele, weight. GTEx v6p models have no `varID` (None here: matched by rsid)."""

    from hapexp.errors import InputError

    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as con:
        try:
            cols = {r[1] for r in con.execute("PRAGMA table_info(weights)")}
            varid = "varID" if "varID" in cols else "NULL AS varID"
            w = pd.read_sql_query(
                f"SELECT gene, rsid, {varid}, ref_allele, eff_allele, weight FROM weights", con
            )
        except Exception as exc:  # pandas wraps sqlite errors differently by version
            raise InputError(
                db_path,
                f"not a PredictDB model database ({exc})",
                "give a PredictDB .db with a `weights` table (gene, rsid, varID, ref_allele, eff_allele, weight)",
            ) from exc
    return w


def _parse_varid(varid: str) -> tuple[str, int, str, str] | None:
    """chr_pos_ref_alt[_b38] (1-based pos) → (chrom, pos, ref, alt); None when unparsable."""
    parts = str(varid).split("_")
    if len(parts) >= 4 and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2], parts[3]
    return None


def rsid_sites(vcf_path, rsids) -> dict[str, tuple[str, int, str, str]]:
    """rs id → (chrom, 1-based pos, ref, alt) of the VCF records with that ID."""
    import subprocess
    import tempfile

    ids = sorted({str(r) for r in rsids if r is not None and str(r) not in ("", ".")})
    if not ids:
        return {}
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write("\n".join(ids) + "\n")
        f.flush()
        out = subprocess.run(
            [
                "bcftools",
                "query",
                "-i",
                f"ID=@{f.name}",
                "-f",
                "%ID\t%CHROM\t%POS\t%REF\t%ALT\n",
                str(vcf_path),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    sites = {}
    for line in out.splitlines():
        rid, c, p, r, a = line.split("\t")
        sites.setdefault(rid, (c, int(p), r, a))
    return sites


def predictdb_predict(weights: pd.DataFrame, vcf_path, samples: list[str], genes: list[str]) -> pd.DataFrame:
    """Predicted expression = Σ weight × dosage(eff_allele), per gene × sample.

    Variants are matched by chrom, 1-based position and alleles (varID; for GTEx v6p
    models without varID, the position comes from the VCF record whose ID is the
    model's rsid); when the db's effect allele is our REF the dosage is flipped
    (2 − d). Missing dosages are mean-imputed, as PrediXcan does. Gene ids match with
    or without Ensembl version.
    """
    from hapexp.inputs.formats import strip_version

    by_gene = {strip_version(g): g for g in genes}
    vid = weights["varID"] if "varID" in weights else pd.Series(None, index=weights.index, dtype=object)
    need = vid.isna().to_numpy()
    if need.any():
        sites = rsid_sites(vcf_path, weights.loc[need, "rsid"])
        weights = weights.assign(
            varID=[
                "{}_{}_{}_{}".format(*sites[r]) if (n and r in sites) else v
                for v, r, n in zip(vid, weights["rsid"], need, strict=True)
            ]
        )
    out = {}
    for db_gene, w in weights.groupby("gene", sort=False):
        gene = by_gene.get(strip_version(str(db_gene)))
        if gene is None:
            continue
        parsed = [_parse_varid(v) if v is not None else None for v in w["varID"]]
        keep = [p is not None for p in parsed]
        w, parsed = w[keep], [p for p in parsed if p is not None]
        if not parsed:
            continue
        chrom = parsed[0][0]
        pos = [p[1] for p in parsed]
        # Every record overlapping the weights' span, missing calls NaN (imputed below); the
        # contig naming may differ (chr1 vs 1): then the other name.
        for c in (chrom, chrom[3:] if chrom.startswith("chr") else f"chr{chrom}"):
            dos = span_dosages(vcf_path, c, min(pos) - 1, max(pos), samples)
            if not dos.empty:
                break
        lookup = {}
        for vid in dos.index:
            c, p, r, a = _parse_varid(vid)
            lookup[(p, r, a)] = (vid, False)
            lookup[(p, a, r)] = (vid, True)
        pred = np.zeros(len(samples))
        for (_, p, _, _), ref_a, eff_a, weight in zip(
            parsed, w["ref_allele"], w["eff_allele"], w["weight"], strict=True
        ):
            hit = lookup.get((p, ref_a, eff_a))
            if hit is None:
                continue
            d = dos.loc[hit[0]].to_numpy(dtype=float)
            d = np.where(np.isfinite(d), d, np.nanmean(d) if np.isfinite(d).any() else 0.0)
            pred += weight * (2 - d if hit[1] else d)
        out[gene] = pred
    df = pd.DataFrame.from_dict(out, orient="index", columns=samples)
    df.index.name = "gene_id"
    return df


def predictdb_lines(stated: dict) -> list[str]:
    """summary.md's statement of the pretrained PredictDB predictor's rules (`predictdb_predict`):
    it is the published baseline and keeps PrediXcan's, and where they differ from the cohort's
    variant policy (`variants`) and missing-genotype rule. `stated`: rule summary's `stated`
    params (predictdb given for the cohort, the variants block, the half-width of the
    normalized genotypes around each TSS and their gene-body flank: rule normalize_variants'
    regions). Empty without a PredictDB db."""
    if not stated.get("predictdb"):
        return []
    v = stated["variants"]
    half = int(stated["variant_half_width"])
    lines = [
        "### The pretrained PredictDB predictor",
        "",
        "`predictdb` is the published baseline and keeps PrediXcan's own rules: predicted expression = "
        "Σ weight × dosage of the model's effect allele over the model variants found in the normalized "
        "genotypes (matched by position and alleles, or by rs id), with no variant policy applied and "
        "missing genotypes mean-imputed over the analysed people. Where that differs from the rules the "
        "other predictors follow:",
        "",
    ]
    if v["missing"] == "ref":
        lines.append(
            "- Missing genotypes: the cohort's rule (variants.missing: ref) reads a missing allele as the "
            "reference in the haplotypes the deep models and ISM see; PredictDB gives a missing dosage the "
            "variant's mean dosage (as the cohort's eQTL scan and elastic net do)."
        )
    else:
        lines.append(
            "- Missing genotypes: the cohort's rule (variants.missing: error) stops the run on a missing "
            "allele in the models' windows; PredictDB mean-imputes any it meets among its own variants."
        )
    if v["snv_only"]:
        lines.append(
            "- Indels: the policy drops them (variants.snv_only: true); PredictDB uses any indel its model "
            "weights (PredictDB's published models exclude indels when they are trained)."
        )
    if float(v["maf"]) > 0:
        lines.append(
            f"- Rare variants: the policy drops records with MAF < {v['maf']} in the cohort (variants.maf); "
            "PredictDB uses every model variant whatever its frequency here."
        )
    if v["unphased"] == "ref":
        lines.append(
            "- Unphased heterozygous genotypes: the policy reads them as reference (variants.unphased: ref); "
            "PredictDB counts their ALT allele (dosages need no phase)."
        )
    lines.append(
        "- Symbolic or non-ACGTN alleles, which the policy always drops, cannot match a model's alleles."
    )
    lines.append(
        f"- Window: the normalized genotypes hold the variants within ±{half:,} bp of each TSS (the models' "
        "and the linear models' windows"
        + (", and the gene bodies ± the linear models' flank" if stated.get("gene_body_flank") else "")
        + "); a model variant beyond that, or absent from the cohort, "
        "contributes nothing, as PrediXcan skips variants missing from its genotypes."
    )
    return lines + [""]
