"""PredictDB sqlite schema (column by column, as MetaXcan reads it) and covariance file."""

from __future__ import annotations

import gzip
import sqlite3

import numpy as np
import pandas as pd

from hapexp.elasticnet import covariance_rows
from hapexp.predictdb import extra_table, filter_models, write_covariances, write_db

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
    from hapexp.genotypes import Dosages
    from hapexp.variant_policy import predictdb_exclusions

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
