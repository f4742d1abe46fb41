"""Expression / covariate / sample-list readers on small fixtures in every format."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hapexp.errors import InputError
from hapexp.inputs.formats import (
    detect_expression_format,
    match_gene_ids,
    read_covariates,
    read_expression,
    read_sample_list,
    strip_version,
)

DATA = Path(__file__).parent / "data" / "formats"
SAMPLES = ["HG00096", "HG00097", "NA12878", "NA19238"]
GENES = ["ENSG00000152931.6", "ENSG00000183696.9", "ENSG00000139269.2", "ENSG00000169129.8"]
FIXTURES = {
    "tsv": DATA / "expression.tsv",
    "bed": DATA / "expression.bed.gz",
    "geuvadis": DATA / "GD462.GeneQuantRPKM.fixture.txt.gz",
    "gct": DATA / "expression.gct",
}


def _write(tmp_path, name, text, gz=False):
    p = tmp_path / name
    if gz:
        with gzip.open(p, "wt") as fh:
            fh.write(text)
    else:
        p.write_text(text)
    return p


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_every_format_reads_to_the_same_matrix(fmt):
    path = FIXTURES[fmt]
    assert detect_expression_format(path) == fmt
    auto = read_expression(path)
    explicit = read_expression(path, fmt=fmt)
    pd.testing.assert_frame_equal(auto, explicit)
    assert auto.index.name == "gene_id"
    assert list(auto.index) == GENES  # version suffixes kept as in the file
    assert list(auto.columns) == SAMPLES
    assert all(dt == np.float64 for dt in auto.dtypes)
    # Values exactly as written (negative PEER residuals, scientific notation).
    assert auto.loc["ENSG00000152931.6", "HG00097"] == -0.0421
    assert auto.loc["ENSG00000152931.6", "NA12878"] == 0.015
    assert auto.loc["ENSG00000169129.8", "NA19238"] == 3.0
    pd.testing.assert_frame_equal(auto, read_expression(FIXTURES["tsv"]))


def test_na_is_missing_but_text_is_an_error(tmp_path):
    ok = _write(tmp_path, "ok.tsv", "gene_id\tA\tB\nG1\t1\tNA\nG2\t2\t3\n")
    df = read_expression(ok)
    assert np.isnan(df.loc["G1", "B"]) and df.loc["G2", "B"] == 3.0
    bad = _write(tmp_path, "bad.tsv", "gene_id\tA\tB\nG1\t1\t2\nG2\t2\tabc\n")
    with pytest.raises(InputError) as e:
        read_expression(bad)
    msg = str(e.value)
    assert str(bad) in msg and "line 3" in msg and "'abc'" in msg and "'B'" in msg


def test_line_numbers_survive_gzip_blank_lines_and_gct_header(tmp_path):
    p = _write(tmp_path, "x.tsv.gz", "gene_id\tA\n\nG1\t1\n\nG2\tx\n", gz=True)
    with pytest.raises(InputError, match=r"line 5, column 2"):
        read_expression(p)
    g = _write(tmp_path, "x.gct", "#1.2\n2\t1\nName\tDescription\tA\nG1\td\t1\nG2\td\t?\n")
    with pytest.raises(InputError, match=r"line 5"):
        read_expression(g)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "gene_id\tA\tA\nG1\t1\t2\n",
            r"line 1, column 3: duplicate sample id 'A' \(also at line 1, column 2\)",
        ),
        ("gene_id\tA\nG1\t1\nG2\t2\nG1\t3\n", r"line 4: duplicate gene 'G1' \(also at line 2\)"),
        ("gene_id\tA\tB\nG1\t1\t2\nG2\t3\t4\t5\n", r"line 3: 4 fields where the header has 3"),
        ("gene_id\tA\tB\nG1\t1\t2\t9\nG2\t3\t4\n", r"line 2: the first row has more fields"),
        ("gene_id\tA\tB\nG1\t1\nG2\t3\t4\n", r"line 2, column 3: empty value"),
        ("gene_id\n", r"no sample columns"),
        ("gene_id\tA\n", r"no rows below the header"),
    ],
)
def test_malformed_matrices_name_the_line(tmp_path, text, pattern):
    p = _write(tmp_path, "m.tsv", text)
    with pytest.raises(InputError, match=pattern):
        read_expression(p)


def test_wrong_format_and_missing_file(tmp_path):
    # A Geuvadis file forced through the plain-TSV reader: Gene_Symbol is text.
    with pytest.raises(InputError, match=r"non-numeric value 'ENSG00000152931.6'.*expression_format"):
        read_expression(FIXTURES["geuvadis"], fmt="tsv")
    with pytest.raises(InputError, match="unknown expression format"):
        read_expression(FIXTURES["tsv"], fmt="parquet")
    with pytest.raises(InputError, match="file not found"):
        read_expression(tmp_path / "nope.tsv")


def test_covariates_tensorqtl_layout(tmp_path):
    cov = read_covariates(DATA / "covariates.tsv")
    assert cov.index.name == "id"
    assert list(cov.index) == ["PC1", "sex"]
    assert list(cov.columns) == SAMPLES
    assert cov.loc["sex"].tolist() == [1.0, 0.0, 0.0, 1.0]
    text = _write(tmp_path, "c.tsv", "id\tA\tB\nsex\tmale\tfemale\n")
    with pytest.raises(InputError, match=r"line 2.*non-numeric value 'male'"):
        read_covariates(text)
    na = _write(tmp_path, "n.tsv", "id\tA\tB\nage\t31\tNA\n")
    with pytest.raises(InputError, match="missing covariate 'age' for sample 'B'"):
        read_covariates(na)


def test_sample_list(tmp_path):
    assert read_sample_list(DATA / "samples.txt") == ["HG00096", "HG00097", "NA12878"]
    dup = _write(tmp_path, "s.txt", "A\nB\nA\n")
    with pytest.raises(InputError, match=r"line 3: duplicate sample id 'A' \(also at line 1\)"):
        read_sample_list(dup)
    with pytest.raises(InputError, match="no sample ids"):
        read_sample_list(_write(tmp_path, "e.txt", "# nothing\n\n"))


def test_strip_version_only_touches_ensembl_ids():
    assert strip_version("ENSG00000223972.5") == "ENSG00000223972"
    assert strip_version("ENST00000456328.2") == "ENST00000456328"
    assert strip_version("ENSMUSG00000051951.5") == "ENSMUSG00000051951"
    # GENCODE PAR copies stay distinct from their chrX gene.
    assert strip_version("ENSG00000182378.14_PAR_Y") == "ENSG00000182378_PAR_Y"
    # Dots that are not versions, and unversioned ids, are left alone.
    assert strip_version(["RP11-34P13.3", "ENSG00000223972", "gene1.2"]) == [
        "RP11-34P13.3",
        "ENSG00000223972",
        "gene1.2",
    ]


def test_match_gene_ids_with_and_without_versions():
    reference = [
        "ENSG00000152931.7",
        "ENSG00000183696",
        "ENSG00000139269.2",
        "ENSG00000000005.5",
        "ENSG00000000005.6",
    ]
    query = [
        "ENSG00000152931.6",  # other version -> matched by stable id
        "ENSG00000183696.9",  # versioned vs unversioned
        "ENSG00000139269.2",  # exact
        "ENSG00000000005",  # two reference versions: ambiguous
        "ENSG00000000005.6",  # ...but an exact match still wins
        "ENSG00000999999.1",  # absent
    ]
    m = match_gene_ids(query, reference)
    assert list(m.index) == query
    assert m.tolist() == [
        "ENSG00000152931.7",
        "ENSG00000183696",
        "ENSG00000139269.2",
        None,
        "ENSG00000000005.6",
        None,
    ]


# ------------------------------------------------- every format through the workflow
def _write_formats(expr: pd.DataFrame, genes: pd.DataFrame, outdir: Path) -> dict[str, Path]:
    """The demo's expression in each format, and its genes as a GENCODE-style GTF."""
    outdir.mkdir(parents=True, exist_ok=True)
    tss = genes.set_index("gene_id")
    vals = {g: "\t".join(repr(float(x)) for x in expr.loc[g]) for g in expr.index}
    samples = "\t".join(expr.columns)
    paths = {}
    paths["tsv"] = outdir / "expression.tsv.gz"
    with gzip.open(paths["tsv"], "wt") as fh:
        fh.write(f"gene_id\t{samples}\n" + "".join(f"{g}\t{v}\n" for g, v in vals.items()))
    paths["bed"] = outdir / "expression.bed.gz"
    with gzip.open(paths["bed"], "wt") as fh:
        fh.write(f"#chr\tstart\tend\tphenotype_id\t{samples}\n")
        for g, v in vals.items():
            t = int(tss.loc[g, "tss"])
            fh.write(f"{tss.loc[g, 'chrom']}\t{t - 1}\t{t}\t{g}\t{v}\n")
    paths["geuvadis"] = outdir / "GD.GeneQuantRPKM.txt.gz"
    with gzip.open(paths["geuvadis"], "wt") as fh:
        fh.write(f"TargetID\tGene_Symbol\tChr\tCoord\t{samples}\n")
        for g, v in vals.items():
            fh.write(f"{g}\t{tss.loc[g, 'name']}\t{tss.loc[g, 'chrom']}\t{int(tss.loc[g, 'tss'])}\t{v}\n")
    paths["gct"] = outdir / "expression.gct"
    with open(paths["gct"], "w") as fh:
        fh.write(f"#1.2\n{len(vals)}\t{expr.shape[1]}\nName\tDescription\t{samples}\n")
        fh.write("".join(f"{g}\t{tss.loc[g, 'name']}\t{v}\n" for g, v in vals.items()))
    gtf = outdir / "genes.gtf.gz"
    with gzip.open(gtf, "wt") as fh:
        fh.write("##format: gtf\n")
        for r in genes.itertuples():
            start, end = (r.tss, r.tss + 500) if r.strand == "+" else (max(1, r.tss - 500), r.tss)
            fh.write(
                f'{r.chrom}\tHAVANA\tgene\t{start}\t{end}\t.\t{r.strand}\t.\tgene_id "{r.gene_id}"; '
                f'gene_type "protein_coding"; gene_name "{r.name}"; level 2;\n'
            )
    paths["gtf"] = gtf
    return paths


@pytest.mark.slow
@pytest.mark.long
def test_every_format_runs_through_the_workflow(tmp_path):
    """The demo cohort's expression in tsv/bed/geuvadis/gct and its genes as a GTF:
    rules genes and prepare_expression give identical results for every format,
    and the GTF gives back the demo's TSSs."""
    import yaml

    from tests.workflow_utils import REPO, run_snakemake

    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    demo = cfg["cohorts"]["demo"]
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(cfg))
    inputs = [demo["vcf"], demo["expression"], demo["covariates"], cfg["genes"]["table"]]
    run_snakemake(tmp_path, *inputs, "--configfile", str(tmp_path / "demo.yaml"))

    expr = read_expression(tmp_path / demo["expression"])
    genes = pd.read_csv(tmp_path / cfg["genes"]["table"], sep="\t", dtype={"chrom": str})
    paths = _write_formats(expr, genes, tmp_path / "formats")
    cfg["genes"] = {"gtf": "formats/genes.gtf.gz", "chunks": cfg["genes"]["chunks"]}
    cfg["cohorts"] = {
        f"fmt_{fmt}": {
            **demo,
            "expression": str(paths[fmt].relative_to(tmp_path)),
            "expression_format": "auto",
        }
        for fmt in ("tsv", "bed", "geuvadis", "gct")
    }
    (tmp_path / "formats.yaml").write_text(yaml.safe_dump(cfg))
    targets = [f"results/{c}/{f}" for c in cfg["cohorts"] for f in ("genes.tsv", "expression/prepared.tsv")]
    run_snakemake(tmp_path, *targets, "--configfile", str(tmp_path / "formats.yaml"))

    first = tmp_path / "results/fmt_tsv"
    for c in cfg["cohorts"]:
        for f in ("genes.tsv", "expression/prepared.tsv"):
            assert (tmp_path / "results" / c / f).read_bytes() == (first / f).read_bytes(), (c, f)
    kept = pd.read_csv(first / "genes.tsv", sep="\t", dtype={"chrom": str}).set_index("gene_id")
    assert len(kept) >= len(genes) // 2
    want = genes.set_index("gene_id").loc[kept.index]
    assert (kept["tss"] == want["tss"]).all() and (kept["strand"] == want["strand"]).all()
