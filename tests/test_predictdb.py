"""PredictDB sqlite schema (column by column, as MetaXcan reads it) and covariance file."""

from __future__ import annotations

import gzip
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hapexp.linear.elasticnet import covariance_rows
from hapexp.linear.predictdb import extra_table, filter_models, rsids, varids, write_covariances, write_db

EXPECTED = {
    "weights": [
        ("gene", "TEXT"),
        ("rsid", "TEXT"),
        ("varID", "TEXT"),
        ("ref_allele", "TEXT"),
        ("eff_allele", "TEXT"),
        ("weight", "DOUBLE"),
    ],
    "extra": [
        ("gene", "TEXT"),
        ("genename", "TEXT"),
        ("gene_type", "TEXT"),
        ("n.snps.in.model", "INTEGER"),
        ("pred.perf.R2", "DOUBLE"),
        ("pred.perf.pval", "DOUBLE"),
        ("pred.perf.qval", "DOUBLE"),
    ],
    "construction": [("chromosome", "TEXT"), ("cv_seed", "INTEGER")],
    "sample_info": [("n_samples", "INTEGER")],
}


def _metrics():
    return pd.DataFrame(
        {
            "gene_id": ["g1", "g2", "g3"],
            "gene_name": ["A", "B", "C"],
            "n_snps_in_model": [2, 1, 0],
            "rho_avg": [0.5, 0.05, np.nan],
            "R2": [0.25, 0.0025, np.nan],
            "zscore_pval": [1e-6, 0.4, np.nan],
        }
    )


def _weights():
    return pd.DataFrame(
        {
            "gene": ["g1", "g1", "g2"],
            "rsid": ["chr1_10_A_G", "chr1_20_C_T", "chr1_30_G_A"],
            "varID": ["chr1_10_A_G", "chr1_20_C_T", "chr1_30_G_A"],
            "ref_allele": ["A", "C", "G"],
            "eff_allele": ["G", "T", "A"],
            "weight": [0.3, -0.1, 0.01],
        }
    )


def test_schema_column_by_column(tmp_path):
    db = tmp_path / "w.db"
    write_db(db, _weights(), extra_table(_metrics()), ["chr1", "chr1"], cv_seed=42, n_samples=99)
    con = sqlite3.connect(db)
    for table, cols in EXPECTED.items():
        info = con.execute(f"PRAGMA table_info({table})").fetchall()
        assert [(r[1], r[2]) for r in info] == cols, table
    # MetaXcan's queries
    w = con.execute(
        "SELECT gene, rsid, varID, ref_allele, eff_allele, weight FROM weights ORDER BY rsid"
    ).fetchall()
    assert w[0] == ("g1", "chr1_10_A_G", "chr1_10_A_G", "A", "G", 0.3) and len(w) == 3
    e = con.execute(
        'SELECT gene, genename, "n.snps.in.model", "pred.perf.R2", "pred.perf.pval", "pred.perf.qval" FROM extra ORDER BY gene'
    ).fetchall()
    assert e == [("g1", "A", 2, 0.25, 1e-6, None), ("g2", "B", 1, 0.0025, 0.4, None)]  # g3 has no model
    assert con.execute("SELECT * FROM construction").fetchall() == [("chr1", 42)]
    assert con.execute("SELECT * FROM sample_info").fetchall() == [(99,)]
    idx = {r[1] for r in con.execute("PRAGMA index_list(weights)")}
    assert {"weights_rsid", "weights_gene", "weights_rsid_gene"} <= idx
    con.close()


def test_filter_keeps_predictdb_significant_models(tmp_path):
    kept = extra_table(filter_models(_metrics()))
    assert list(kept.gene) == ["g1"]
    db = tmp_path / "f.db"
    write_db(db, _weights(), kept, ["chr1"], 1, 10)
    con = sqlite3.connect(db)
    assert {r[0] for r in con.execute("SELECT gene FROM weights")} == {"g1"}


def test_covariance_file(tmp_path):
    rng = np.random.default_rng(0)
    g = rng.binomial(2, 0.3, (3, 50)).astype(float)
    ids = np.array(["v1", "v2", "v3"])
    rows = covariance_rows("g1", ids, g)
    assert len(rows) == 6  # upper triangle with diagonal
    full = np.cov(g, ddof=1)
    for r in rows.itertuples():
        i, j = int(r.RSID1[1]) - 1, int(r.RSID2[1]) - 1
        assert full[i, j] == r.VALUE
    path = tmp_path / "c.txt.gz"
    write_covariances(path, rows)
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == "GENE RSID1 RSID2 VALUE" and len(lines) == 7
    assert lines[1].split(" ")[:3] == ["g1", "v1", "v1"]
    np.testing.assert_allclose(float(lines[1].split(" ")[3]), full[0, 0], rtol=1e-9)
    # reproducible bytes
    path2 = tmp_path / "d.txt.gz"
    write_covariances(path2, rows)
    assert path.read_bytes() == path2.read_bytes()


def test_extra_gene_type_from_the_gene_table(tmp_path):
    """extra.gene_type comes from genes.tsv (the GTF's gene_type), not a constant."""
    types = pd.Series({"g1": "protein_coding", "g2": "lincRNA"})
    db = tmp_path / "t.db"
    write_db(db, _weights(), extra_table(_metrics(), types), ["chr1"], 1, 10)
    con = sqlite3.connect(db)
    assert con.execute("SELECT gene, gene_type FROM extra ORDER BY gene").fetchall() == [
        ("g1", "protein_coding"),
        ("g2", "lincRNA"),
    ]
    assert list(extra_table(_metrics(), {"g1": "lncRNA"})["gene_type"]) == ["lncRNA", "NA"]


def test_predictdb_exclusions_drop_indels_and_strand_ambiguous_snps():
    """PredictDB's genotype filter: every A/T, T/A, C/G, G/C SNP and every indel goes;
    the other ten SNP allele pairs stay."""
    from hapexp.variants.genotypes import Dosages
    from hapexp.variants.policy import predictdb_exclusions

    pairs = [(r, a) for r in "ACGT" for a in "ACGT" if r != a] + [("A", "AT"), ("CTT", "C")]
    n = len(pairs)
    d = Dosages(
        np.array([f"chr1_{i + 1}_{r}_{a}" for i, (r, a) in enumerate(pairs)], dtype=object),
        np.array(["chr1"] * n, dtype=object),
        np.arange(1, n + 1),
        np.array([r for r, _ in pairs], dtype=object),
        np.array([a for _, a in pairs], dtype=object),
        np.ones((n, 4)),
        ["a", "b", "c", "d"],
    )
    kept, counts = predictdb_exclusions(d)
    assert {(r, a) for r, a in zip(kept.ref, kept.alt, strict=True)} == {
        ("A", "C"), ("A", "G"), ("C", "A"), ("C", "T"), ("G", "A"),
        ("G", "T"), ("T", "C"), ("T", "G"), ("A", "G"), ("C", "T"),
    }  # fmt: skip
    assert len(kept) == 8
    assert dict(counts) == {
        "predictdb_skipped_indel": 2,
        "predictdb_skipped_ambiguous": 4,
        "predictdb_variants_kept": 8,
    }


# --------------------------------------------------------------------------- real PredictDB/MetaXcan files
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "predictdb_real"
REAL_DBS = sorted(REAL.glob("TW_*_0.5.db"))
needs_real = pytest.mark.skipif(not REAL_DBS, reason="../shared/data/predictdb_real not beside the checkout")
# The SQL MetaXcan runs (software/metax/PredictionModel.py: ModelDB.load_weights / load_extra)
METAXCAN_WEIGHTS = "SELECT rsid, gene, weight, ref_allele, eff_allele FROM weights"
METAXCAN_EXTRA = (
    "SELECT gene, genename, `n.snps.in.model`, `pred.perf.R2`, `pred.perf.pval`, `pred.perf.qval` FROM extra"
)


def test_varid_and_rsid_keys():
    v = varids(["1", "chr2", "X"], [52238, 10, 5], ["G", "A", "C"], ["T", "AT", "G"], "GRCh37")
    assert v == ["chr1_52238_G_T_b37", "chr2_10_A_AT_b37", "chrX_5_C_G_b37"]
    assert varids(["1"], [7], ["A"], ["G"], "GRCh38") == ["chr1_7_A_G_b38"]
    assert varids(["1"], [7], ["A"], ["G"], None) == ["chr1_7_A_G"]
    ids = ["rs1", ".", "rs2", "rs2", "esv3", "rs9"]
    pos = [10, 20, 30, 30, 40, 50]
    vid = [f"chr1_{p}_x_y_b37" for p in pos]
    # rs ids kept; none / non-dbSNP / an rs id on two records (split multi-allelic) → varID
    assert rsids(ids, pos, vid) == ["rs1", vid[1], vid[2], vid[3], vid[4], "rs9"]


def _index_columns(con, table):
    out = set()
    for idx in con.execute(f"PRAGMA index_list({table})").fetchall():
        out.add(tuple(r[2] for r in con.execute(f"PRAGMA index_info('{idx[1]}')")))
    return out


def _metaxcan_rows(path, gene=None):
    """What MetaXcan's ModelDB reads (its exact queries), as Python-typed rows."""
    con = sqlite3.connect(path)
    try:
        q, params = (METAXCAN_WEIGHTS + " WHERE gene = ?", (gene,)) if gene else (METAXCAN_WEIGHTS, ())
        return con.execute(q + ";", params).fetchall(), con.execute(METAXCAN_EXTRA + ";").fetchall()
    finally:
        con.close()


def _read_cov(path):
    return pd.read_csv(path, sep=" ", compression="gzip", dtype={"GENE": str, "RSID1": str, "RSID2": str})


def _check_cov_joins_weights(db, cov_path):
    """MetaXcan builds each gene's SNP covariance from the rows keyed GENE, RSID1, RSID2
    over the gene's model SNPs (weights.rsid): every pair must be there, nothing else."""
    weights, _ = _metaxcan_rows(db)
    by_gene = {}
    for rsid, gene, *_ in weights:
        by_gene.setdefault(gene, set()).add(rsid)
    cov = _read_cov(cov_path)
    for gene, snps in by_gene.items():
        c = cov[cov["GENE"].eq(gene)]
        assert set(c.RSID1) | set(c.RSID2) == snps, gene
        pairs = {frozenset((a, b)) for a, b in zip(c.RSID1, c.RSID2, strict=True)}
        assert len(pairs) == len(snps) * (len(snps) + 1) // 2, gene
    assert set(cov.GENE) <= set(by_gene)


@needs_real
def test_real_predictdb_files_pass_the_join_checks():
    """The checks used on our files hold on the real GTEx v6p models and covariances."""
    for db in REAL_DBS:
        _check_cov_joins_weights(db, REAL / db.name.replace("_0.5.db", ".txt.gz"))


def _fit_with_real_rsids(tmp_path, n=300, seed=0):
    """A cohort whose VCF IDs are the rs ids of the real LCL PITRM1 model (positions made
    up: the v6p db has none), expression driven by three of them; one chunk of
    hapexp's elastic net, written as PredictDB db + covariances."""
    from hapexp.linear.elasticnet import fit_chunk
    from hapexp.variants.genotypes import Dosages

    con = sqlite3.connect(REAL / "TW_Cells_EBV-transformed_lymphocytes_0.5.db")
    real = con.execute(
        "SELECT rsid, ref_allele, eff_allele FROM weights WHERE gene = 'ENSG00000107959.11'"
    ).fetchall()
    con.close()
    rng = np.random.default_rng(seed)
    p = len(real) + 2
    g = rng.binomial(2, 0.35, (p, n)).astype(float)
    ids = np.array([r[0] for r in real] + [".", "rs999999999"], dtype=object)
    ref = np.array([r[1] for r in real] + ["A", "C"], dtype=object)
    alt = np.array([r[2] for r in real] + ["G", "T"], dtype=object)
    pos = np.arange(1, p + 1, dtype=np.int64) * 1000
    samples = [f"S{i}" for i in range(n)]
    vid = np.array([f"10_{q}_{r}_{a}" for q, r, a in zip(pos, ref, alt, strict=True)], dtype=object)
    d = Dosages(vid, np.array(["10"] * p, dtype=object), pos, ref, alt, g, samples, ids)
    y = g[0] - 0.8 * g[3] + 0.6 * g[p - 2] + rng.normal(0, 1, n)
    expr = pd.DataFrame([y], index=["ENSG00000107959.11"], columns=samples)
    genes = pd.DataFrame(
        {
            "gene_id": ["ENSG00000107959.11"],
            "name": ["PITRM1"],
            "chrom": ["10"],
            "start0": [0],
            "end0": [10**6],
        }
    )
    metrics, _, weights, cov, _ = fit_chunk(
        d, genes, expr, alpha=0.5, outer_folds=5, inner_folds=5, seed=1, build="GRCh37"
    )
    metrics["gene_name"] = "PITRM1"
    db, cov_path = tmp_path / "ours.db", tmp_path / "ours.txt.gz"
    write_db(db, weights, extra_table(metrics), ["10"], 1, n)
    write_covariances(cov_path, cov)
    return db, cov_path, weights


@needs_real
def test_our_db_joins_real_models_the_metaxcan_way(tmp_path):
    db, cov_path, weights = _fit_with_real_rsids(tmp_path)
    ours_w, ours_e = _metaxcan_rows(db)
    assert ours_w and ours_e
    for real in REAL_DBS:
        real_w, real_e = _metaxcan_rows(real)
        # same columns, same Python types per column (MetaXcan zips them into DataFrames)
        assert [type(x) for x in ours_w[0]] == [type(x) for x in real_w[0]]
        assert [type(x) for x in ours_e[0]][:5] == [type(x) for x in real_e[0]][:5]
        # every index of the real v6p layout exists on the same columns in ours
        rc, oc = sqlite3.connect(real), sqlite3.connect(db)
        for table in ("weights", "extra"):
            assert _index_columns(rc, table) <= _index_columns(oc, table), table
        rc.close(), oc.close()
    # the newer varID layout's indexes too
    vc = sqlite3.connect(REAL / "varid_layout_example.db")
    oc = sqlite3.connect(db)
    assert _index_columns(vc, "weights") <= _index_columns(oc, "weights")
    assert all(
        v.endswith("_b37") and v.startswith("chr10_") for (v,) in oc.execute("SELECT varID FROM weights")
    )
    # a GWAS/model harmonized on dbSNP ids finds our SNPs: rsid-keyed join with the real model
    oc.execute("ATTACH DATABASE ? AS real", (str(REAL / "TW_Cells_EBV-transformed_lymphocytes_0.5.db"),))
    joined = oc.execute(
        "SELECT w.rsid, w.eff_allele, r.eff_allele FROM weights w JOIN real.weights r "
        "ON w.rsid = r.rsid AND w.gene = r.gene"
    ).fetchall()
    oc.close()
    assert {j[0] for j in joined} >= {"rs10794960"} and all(j[1] == j[2] for j in joined)
    # the covariance file joins our weights exactly as the real ones do
    _check_cov_joins_weights(db, cov_path)
    # no-rs-id variants keep a unique varID key
    assert not weights["rsid"].duplicated().any()


@needs_real
def test_predict_with_real_v6p_model_matches_by_rsid(tmp_path):
    """A GTEx v6p model (no varID column) predicts a cohort whose VCF carries rs ids."""
    from hapexp.linear.predictdb import predictdb_predict, read_predictdb_weights

    real = REAL / "TW_Cells_EBV-transformed_lymphocytes_0.5.db"
    w = read_predictdb_weights(real)
    assert w["varID"].isna().all() and len(w) == 31
    g = w[w.gene == "ENSG00000107959.11"].reset_index(drop=True)
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=10,length=100000000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tC",
    ]
    gts = ["0|0", "0|1", "1|1"]
    for i, r in g.iterrows():
        # the first SNP is written with REF/ALT swapped: the dosage must be flipped
        ref, alt = (r.eff_allele, r.ref_allele) if i == 0 else (r.ref_allele, r.eff_allele)
        lines.append(f"10\t{1000 * (i + 1)}\t{r.rsid}\t{ref}\t{alt}\t.\t.\t.\tGT\t" + "\t".join(gts))
    (tmp_path / "c.vcf").write_text("\n".join(lines) + "\n")
    vcf = tmp_path / "c.vcf.gz"
    subprocess.run(["bcftools", "view", "-Oz", "-o", str(vcf), str(tmp_path / "c.vcf")], check=True)
    subprocess.run(["bcftools", "index", "-t", str(vcf)], check=True)
    pred = predictdb_predict(w, vcf, ["A", "B", "C"], ["ENSG00000107959"])
    wt = g.weight.to_numpy()
    dose = np.array([0.0, 1.0, 2.0])
    want = np.array([(wt[1:] * d).sum() + wt[0] * (2 - d) for d in dose])
    np.testing.assert_allclose(pred.loc["ENSG00000107959"].to_numpy(), want, rtol=1e-12)


def test_summary_states_where_predictdb_rules_differ_from_the_cohorts():
    """The pretrained PredictDB predictor keeps PrediXcan's rules; summary.md names each rule of
    the cohort's variant policy that it does not follow, and only those."""
    from hapexp.linear.predictdb import predictdb_lines

    variants = {"snv_only": True, "maf": 0.0, "missing": "ref", "unphased": "error", "harmonize_chrom": True}
    stated = {"predictdb": True, "variants": variants, "variant_half_width": 100_000, "gene_body_flank": 0}
    assert predictdb_lines({**stated, "predictdb": False}) == []
    text = "\n".join(predictdb_lines(stated))
    assert "keeps PrediXcan's own rules" in text and "mean-imputed" in text
    assert "variants.missing: ref" in text and "variants.snv_only: true" in text
    assert "variants.maf" not in text and "variants.unphased" not in text
    assert "±100,000 bp of each TSS" in text and "gene bodies" not in text
    other = {**variants, "snv_only": False, "maf": 0.05, "missing": "error", "unphased": "ref"}
    text = "\n".join(predictdb_lines({**stated, "variants": other, "gene_body_flank": 5000}))
    assert "variants.snv_only" not in text and "MAF < 0.05" in text
    assert "variants.missing: error" in text and "variants.unphased: ref" in text and "gene bodies" in text
