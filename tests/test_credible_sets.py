"""External credible sets (eQTL Catalogue, GTEx v8 DAP-G and SuSiE) on fixtures in their
published layouts: normalized values, build checks, matching to the cohort's variants."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from hapexp.errors import InputError
from hapexp.inputs.credible_sets import (
    COLUMNS,
    check_reference_alleles,
    detect_format,
    match_to_cohort,
    normalize_build,
    read_credible_sets,
    select_tissue,
)
from hapexp.variants.genotypes import Dosages

DATA = Path(__file__).parent / "data" / "credible_sets"
EQTL_CATALOGUE = DATA / "QTD000000.credible_sets.tsv.gz"
GTEX_DAPG = DATA / "GTEx_v8_finemapping_DAPG.fixture.txt.gz"
GTEX_SUSIE = DATA / "GTEx_49tissues_release1.fixture.tsv.gz"
G1, G2 = "ENSG00000099968", "ENSG00000100263"
# Every site of the three fixtures (chrom chr22): pos → REF.
SITES = {1001: "A", 1502: "C", 2003: "G", 2504: "T", 3005: "GA", 3506: "C", 4007: "A"}


def lines_of(path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return fh.read().splitlines()


def write(path, lines: list[str]) -> Path:
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def write_fasta(tmp_path, contig: str = "22", shift: int = 0, length: int = 6000) -> Path:
    """A tiny reference: random bases with the fixtures' REF alleles at pos + `shift`
    (shift ≠ 0: the credible sets' positions are on another build; their own positions
    then hold a base other than their REF)."""
    rng = np.random.default_rng(7)
    seq = list(rng.choice(list("ACGT"), size=length))
    for pos, ref in SITES.items():
        if shift and seq[pos - 1] == ref[0]:
            seq[pos - 1] = {"A": "C", "C": "G", "G": "T", "T": "A"}[ref[0]]
        for k, b in enumerate(ref):
            seq[pos - 1 + shift + k] = b
    text = "".join(seq)
    fa = tmp_path / f"ref_{contig}_{shift}.fa"
    fa.write_text(f">{contig}\n" + "\n".join(text[i : i + 60] for i in range(0, len(text), 60)) + "\n")
    pysam.faidx(str(fa))
    return fa


# --------------------------------------------------------------------------- formats
def test_detect_format():
    assert detect_format(EQTL_CATALOGUE) == "eqtl_catalogue"
    assert detect_format(GTEX_DAPG) == "gtex_dapg"
    assert detect_format(GTEX_SUSIE) == "gtex_susie"


def test_eqtl_catalogue_read():
    cs = read_credible_sets(EQTL_CATALOGUE, "eqtl_catalogue", "GRCh38")
    assert list(cs.columns[: len(COLUMNS)]) == COLUMNS
    # The variant listed under two rs ids (lines 4 and 5) is kept once.
    assert cs["line"].tolist() == [2, 3, 4, 6, 7, 8]
    assert cs["gene_id"].tolist() == [G1] * 4 + [G2] * 2
    assert cs["chrom"].unique().tolist() == ["chr22"]
    assert cs["pos"].tolist() == [1001, 1502, 2003, 3005, 4007, 2504]
    assert cs["ref"].tolist() == ["A", "C", "G", "GA", "A", "T"]
    assert cs["alt"].tolist() == ["G", "T", "A", "G", "C", "C"]
    np.testing.assert_allclose(cs["pip"], [0.621544, 0.301872, 0.048231, 0.973310, 0.882017, 0.100442])
    np.testing.assert_allclose(cs["beta"], [0.512, 0.498, 0.471, -0.301, -0.377, -0.351])
    assert cs["cs_id"].tolist() == [f"{G1}_L1"] * 3 + [f"{G1}_L2"] + [f"{G2}_L1"] * 2
    assert (cs["source"] == "eqtl_catalogue").all()
    assert cs["trait_id"].tolist() == [G1] * 4 + [G2] * 2
    assert cs.attrs["build"] == "GRCh38"
    auto = read_credible_sets(EQTL_CATALOGUE)  # format from the header, no build given
    pd.testing.assert_frame_equal(auto, cs)


def test_eqtl_catalogue_older_release_without_gene_id_and_chr(tmp_path):
    rows = [line.split("\t") for line in lines_of(EQTL_CATALOGUE)]
    rows = [[f for i, f in enumerate(r) if i != 1] for r in rows]  # drop gene_id
    for r in rows[1:]:
        r[2] = r[2].removeprefix("chr")
    cs = read_credible_sets(write(tmp_path / "old.tsv.gz", ["\t".join(r) for r in rows]), "eqtl_catalogue")
    assert cs["gene_id"].tolist() == [G1] * 4 + [G2] * 2
    assert cs["chrom"].unique().tolist() == ["22"]


def test_gtex_dapg_read():
    cs = read_credible_sets(GTEX_DAPG, "gtex_dapg", "GRCh38")
    assert list(cs.columns[: len(COLUMNS)]) == COLUMNS
    assert len(cs) == 5
    assert cs["gene_id"].tolist() == [G1] * 3 + [G2] * 2  # versions stripped
    assert cs["trait_id"].tolist() == [f"{G1}.17"] * 3 + [f"{G2}.13"] * 2
    assert cs["pos"].tolist() == [1001, 1502, 3506, 4007, 2504]
    assert cs.loc[2, ["ref", "alt"]].tolist() == ["C", "CT"]
    np.testing.assert_allclose(cs["pip"], [0.551023, 0.440527, 0.912, 0.700129, 0.263972])
    assert cs["cs_id"].tolist() == [
        f"Whole_Blood:{G1}.17:1",
        f"Whole_Blood:{G1}.17:1",
        f"Whole_Blood:{G1}.17:2",
        f"Lung:{G2}.13:1",
        f"Lung:{G2}.13:1",
    ]
    assert cs["tissue"].tolist() == ["Whole_Blood"] * 3 + ["Lung"] * 2
    assert "beta" not in cs.columns and "beta_posterior" not in cs.columns
    assert (cs["source"] == "gtex_dapg").all()
    assert cs.attrs["build"] == "GRCh38"


def test_gtex_dapg_without_header(tmp_path):
    path = write(tmp_path / "dapg.txt.gz", lines_of(GTEX_DAPG)[1:])
    assert detect_format(path) == "gtex_dapg"
    cs = read_credible_sets(path, "auto", "GRCh38")
    ref = read_credible_sets(GTEX_DAPG, "gtex_dapg", "GRCh38")
    assert cs["line"].tolist() == (ref["line"] - 1).tolist()
    pd.testing.assert_frame_equal(cs.drop(columns="line"), ref.drop(columns="line"))


def test_gtex_susie_read():
    cs = read_credible_sets(GTEX_SUSIE, "gtex_susie", "GRCh38")
    assert list(cs.columns[: len(COLUMNS)]) == COLUMNS
    assert cs["line"].tolist() == [2, 4, 6, 7]  # the SUSIE rows
    assert cs["gene_id"].tolist() == [G1] * 3 + [G2]
    assert cs["pos"].tolist() == [1001, 1502, 2003, 3005]
    assert cs.loc[3, ["ref", "alt"]].tolist() == ["GA", "G"]
    np.testing.assert_allclose(cs["pip"], [0.582311, 0.394077, 0.000412, 0.951806])
    np.testing.assert_allclose(cs["beta"], [0.3521, 0.3377, 0.2114, -0.2871])  # beta_marginal
    np.testing.assert_allclose(cs["beta_posterior"], [0.204981, 0.133081, 8.7e-05, -0.27327])
    np.testing.assert_allclose(cs["sd_posterior"], [0.18423, 0.16872, 0.00442, 0.07114])
    assert cs["cs_id"].tolist()[:2] == [f"Whole_Blood:{G1}.17:1"] * 2
    assert pd.isna(cs["cs_id"].iloc[2])  # cs_id -1: not in a credible set
    assert cs["cs_id"].iloc[3] == f"Lung:{G2}.13:1"
    assert cs["tissue"].tolist() == ["Whole_Blood"] * 3 + ["Lung"]
    finemap = read_credible_sets(GTEX_SUSIE, "gtex_susie", "GRCh38", method="FINEMAP")
    assert finemap["line"].tolist() == [3, 5]
    np.testing.assert_allclose(finemap["pip"], [0.601002, 0.371552])
    with pytest.raises(InputError, match="no rows of method 'CAVIAR'"):
        read_credible_sets(GTEX_SUSIE, "gtex_susie", method="CAVIAR")


# ----------------------------------------------------------------------------- build
@pytest.mark.parametrize("path", [EQTL_CATALOGUE, GTEX_DAPG, GTEX_SUSIE])
def test_fasta_of_the_same_build_passes(tmp_path, path):
    fa = write_fasta(tmp_path, contig="22")  # FASTA names without "chr": harmonized
    cs = read_credible_sets(path, "auto", "GRCh38", fasta=fa)
    counts = check_reference_alleles(cs, fa)
    assert counts == {
        "checked": len(cs.drop_duplicates(["pos"])),
        "matched": counts["checked"],
        "off_fasta": 0,
    }


@pytest.mark.parametrize("path", [EQTL_CATALOGUE, GTEX_DAPG, GTEX_SUSIE])
def test_positions_of_another_build_fail_the_fasta_check(tmp_path, path):
    fa = write_fasta(tmp_path, contig="chr22", shift=1000)
    with pytest.raises(InputError, match="another genome build") as e:
        read_credible_sets(path, "auto", "GRCh38", fasta=fa)
    assert "at only 0 of" in str(e.value) and "lift the credible sets over" in str(e.value)
    assert str(path) in str(e.value)


def test_fasta_check_threshold(tmp_path):
    fa = write_fasta(tmp_path)
    cs = read_credible_sets(EQTL_CATALOGUE, fasta=fa)
    bad = cs.copy()
    bad.loc[0, "ref"] = "T"  # 5 of 6 sites agree (83 %): not enough
    with pytest.raises(InputError, match=r"at only 5 of 6 sites .*line 2: chr22:1001 REF T, FASTA A"):
        check_reference_alleles(bad, fa)
    assert check_reference_alleles(bad, fa, min_fraction=0.8)["matched"] == 5


def test_fasta_without_the_chromosomes(tmp_path):
    fa = write_fasta(tmp_path, contig="chr1")
    with pytest.raises(InputError, match="none of the credible sets' chromosomes"):
        read_credible_sets(GTEX_DAPG, fasta=fa)


def test_b37_ids_on_a_grch38_cohort(tmp_path):
    path = write(tmp_path / "dapg_b37.txt.gz", [x.replace("_b38", "_b37") for x in lines_of(GTEX_DAPG)])
    with pytest.raises(
        InputError,
        match=r"line 2: variant ids end in _b37 on GRCh37, but the cohort's reference.build is GRCh38",
    ):
        read_credible_sets(path, "gtex_dapg", "GRCh38")
    assert read_credible_sets(path, "gtex_dapg", "hg19").attrs["build"] == "GRCh37"


def test_grch38_ids_on_a_grch37_cohort():
    with pytest.raises(InputError, match="_b38 on GRCh38, but the cohort's reference.build is GRCh37"):
        read_credible_sets(GTEX_SUSIE, "gtex_susie", "GRCh37")
    with pytest.raises(InputError, match="eQTL Catalogue's variants are on GRCh38, but .* is GRCh37"):
        read_credible_sets(EQTL_CATALOGUE, "eqtl_catalogue", "GRCh37")


def test_mixed_build_suffixes(tmp_path):
    lines = lines_of(GTEX_DAPG)
    lines[3] = lines[3].replace("_b38", "_b37")
    with pytest.raises(InputError, match=r"line 4: variant ids mix build suffixes"):
        read_credible_sets(write(tmp_path / "mixed.txt.gz", lines), "gtex_dapg")


def test_build_names():
    assert normalize_build("hg38") == normalize_build("GRCh38") == "GRCh38"
    assert normalize_build("GRCh37") == normalize_build("hg19") == "GRCh37"
    assert normalize_build(None) is None
    with pytest.raises(InputError, match="unknown genome build 'T2T'"):
        normalize_build("T2T")


# ------------------------------------------------------------------------- malformed
def _edit(fixture, line: int, col: str, value: str) -> list[str]:
    lines = lines_of(fixture)
    header = lines[0].split("\t")
    fields = lines[line - 1].split("\t")
    fields[header.index(col)] = value
    lines[line - 1] = "\t".join(fields)
    return lines


@pytest.mark.parametrize(
    ("fixture", "lines", "message"),
    [
        (EQTL_CATALOGUE, lambda: _edit(EQTL_CATALOGUE, 4, "pip", "abc"), r"line 4: non-numeric pip 'abc'"),
        (
            EQTL_CATALOGUE,
            lambda: _edit(EQTL_CATALOGUE, 3, "pip", "1.3"),
            r"line 3: pip '1.3' is outside \[0, 1\]",
        ),
        (EQTL_CATALOGUE, lambda: _edit(EQTL_CATALOGUE, 6, "pip", "-0.2"), r"line 6: pip '-0.2' is outside"),
        (EQTL_CATALOGUE, lambda: _edit(EQTL_CATALOGUE, 7, "pip", "NA"), r"line 7: non-numeric pip 'NA'"),
        (
            EQTL_CATALOGUE,
            lambda: _edit(EQTL_CATALOGUE, 5, "variant", "chr22_2003_G"),
            r"line 5: malformed variant id",
        ),
        (EQTL_CATALOGUE, lambda: _edit(EQTL_CATALOGUE, 8, "beta", "x1"), r"line 8: non-numeric beta 'x1'"),
        (
            GTEX_DAPG,
            lambda: _edit(GTEX_DAPG, 3, "variant_pip", "high"),
            r"line 3: non-numeric variant_pip 'high'",
        ),
        (
            GTEX_DAPG,
            lambda: _edit(GTEX_DAPG, 6, "variant_id", "rs12345"),
            r"line 6: malformed variant id 'rs12345'",
        ),
        (GTEX_SUSIE, lambda: _edit(GTEX_SUSIE, 6, "cs_id", "1.5"), r"line 6: cs_id '1.5' is not an integer"),
        (GTEX_SUSIE, lambda: _edit(GTEX_SUSIE, 4, "pip", "2"), r"line 4: pip '2' is outside"),
        (
            EQTL_CATALOGUE,
            lambda: [
                x if i != 3 else "\t".join(x.split("\t")[:5]) for i, x in enumerate(lines_of(EQTL_CATALOGUE))
            ],
            r"line 4: empty `pip` \(a short row\?\)",
        ),
        (
            GTEX_DAPG,
            lambda: [x + ("\textra" if i == 2 else "") for i, x in enumerate(lines_of(GTEX_DAPG))],
            r"line 3: 7 fields where the header has 6",
        ),
    ],
)
def test_malformed_rows_name_the_line(tmp_path, fixture, lines, message):
    path = write(tmp_path / fixture.name, lines())
    with pytest.raises(InputError, match=message) as e:
        read_credible_sets(path, "auto")
    assert str(path) in str(e.value)


def test_missing_column_and_unknown_layouts(tmp_path):
    rows = [x.split("\t") for x in lines_of(GTEX_DAPG)]
    path = write(tmp_path / "no_pip.txt.gz", ["\t".join(r[:5]) for r in rows])
    with pytest.raises(InputError, match=r"line 1: missing column\(s\) variant_pip for the gtex_dapg layout"):
        read_credible_sets(path, "gtex_dapg")
    with pytest.raises(InputError, match="line 1: missing column.*is `format` right"):
        read_credible_sets(GTEX_DAPG, "eqtl_catalogue")
    with pytest.raises(InputError, match="not a known credible-set layout"):
        read_credible_sets(write(tmp_path / "x.tsv.gz", ["a\tb", "1\t2"]))
    with pytest.raises(InputError, match="unknown credible-set format 'finngen'"):
        read_credible_sets(GTEX_DAPG, "finngen")
    with pytest.raises(InputError, match="no rows below the header"):
        read_credible_sets(write(tmp_path / "empty.txt.gz", lines_of(GTEX_DAPG)[:1]))
    with pytest.raises(InputError, match="credible-set file not found"):
        read_credible_sets(tmp_path / "absent.tsv.gz")


# -------------------------------------------------------------------------- matching
def cohort_variants() -> pd.DataFrame:
    """The cohort's normalized variants (VCF chromosome names without "chr")."""
    rows = [
        ("22", 1001, "A", "G"),  # as in the credible sets
        ("22", 1502, "T", "C"),  # REF/ALT swapped relative to chr22_1502_C_T
        ("22", 2003, "G", "C"),  # same position, other ALT: no match
        ("22", 3005, "GA", "G"),
        ("22", 4007, "A", "C"),
        ("22", 5000, "C", "A"),  # not fine-mapped; 2504 is not in the cohort
    ]
    df = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"])
    df.insert(0, "variant_id", [f"{c}_{p}_{r}_{a}" for c, p, r, a in rows])
    return df


def test_match_to_cohort(caplog):
    cs = read_credible_sets(EQTL_CATALOGUE, "eqtl_catalogue", "GRCh38")
    with caplog.at_level(logging.INFO, logger="hapexp.inputs.credible_sets"):
        out, counts = match_to_cohort(cs, cohort_variants())
    assert counts == {"rows": 6, "matched": 4, "flipped": 1, "unmatched": 2, "unmatched_alleles": 1}
    assert out["variant_id"].tolist()[:2] == ["22_1001_A_G", "22_1502_T_C"]
    assert pd.isna(out["variant_id"].iloc[2]) and pd.isna(out["variant_id"].iloc[5])
    assert out["variant_id"].iloc[3:5].tolist() == ["22_3005_GA_G", "22_4007_A_C"]
    assert out["flipped"].tolist() == [False, True, False, False, False, False]
    np.testing.assert_allclose(out["beta_cohort"], [0.512, -0.498, 0.471, -0.301, -0.377, -0.351])
    assert "4 of 6 rows matched the cohort's variants (1 with REF/ALT swapped); 2 unmatched" in caplog.text


def test_match_to_cohort_dosages_and_chr_names():
    v = cohort_variants()
    v["chrom"] = "chr22"
    d = Dosages(
        v["variant_id"].to_numpy(),
        v["chrom"].to_numpy(),
        v["pos"].to_numpy(),
        v["ref"].to_numpy(),
        v["alt"].to_numpy(),
        np.zeros((len(v), 2)),
        ["s1", "s2"],
    )
    cs = read_credible_sets(GTEX_DAPG, "gtex_dapg", "GRCh38")
    out, counts = match_to_cohort(cs, d)
    # 1001 direct, 1502 swapped, 3506 and 2504 absent, 4007 direct
    assert counts == {"rows": 5, "matched": 3, "flipped": 1, "unmatched": 2, "unmatched_alleles": 0}
    assert out["flipped"].tolist() == [False, True, False, False, False]
    assert "beta_cohort" not in out.columns
    # A table without variant_id gets chrom_pos_ref_alt ids.
    out2, _ = match_to_cohort(cs, v.drop(columns="variant_id"))
    assert out2["variant_id"].iloc[3] == "chr22_4007_A_C"


def test_match_to_cohort_table_indexed_by_variant_id():
    v = cohort_variants().set_index("variant_id")
    cs = read_credible_sets(GTEX_SUSIE, "gtex_susie", "GRCh38")
    out, counts = match_to_cohort(cs, v)
    assert out["variant_id"].tolist()[:2] == ["22_1001_A_G", "22_1502_T_C"]
    assert counts["unmatched_alleles"] == 1  # 2003 G>A vs the cohort's G>C
    # effects per the cohort's ALT: 1502 is C>T in the file, T>C in the cohort
    np.testing.assert_allclose(out["beta_posterior_cohort"], [0.204981, -0.133081, 8.7e-05, -0.27327])
    np.testing.assert_allclose(out["beta_cohort"], [0.3521, -0.3377, 0.2114, -0.2871])


# --------------------------------------------------------------------------- tissues
def test_select_tissue():
    cs = read_credible_sets(GTEX_DAPG, "gtex_dapg", "GRCh38")
    blood = select_tissue(cs, "Whole_Blood")
    assert blood["line"].tolist() == [2, 3, 4] and blood.attrs["tissue"] == "Whole_Blood"
    assert blood.attrs["path"] == str(GTEX_DAPG)
    # no tissue named: the unit's own tissue when the file has it
    assert select_tissue(cs, None, "Lung")["line"].tolist() == [5, 6]
    with pytest.raises(InputError, match=r"holds 2 tissues \(Whole_Blood, Lung\) .*its tissue 'Liver'"):
        select_tissue(cs, None, "Liver")
    with pytest.raises(InputError, match=r"holds 2 tissues .*Set credible_sets.tissue") as e:
        select_tissue(cs)
    assert str(GTEX_DAPG) in str(e.value)
    with pytest.raises(
        InputError, match=r"no rows of tissue 'Liver' \(tissues in the file: Whole_Blood, Lung\)"
    ):
        select_tissue(cs, "Liver", "Lung")
    one = select_tissue(cs[cs["tissue"] == "Lung"].copy())
    assert one["line"].tolist() == [5, 6]
    # eQTL Catalogue: one dataset per file; a tissue named for it is a mistake
    ec = read_credible_sets(EQTL_CATALOGUE, "eqtl_catalogue", "GRCh38")
    pd.testing.assert_frame_equal(select_tissue(ec, None, "Lung"), ec)
    with pytest.raises(InputError, match="has no tissue column"):
        select_tissue(ec, "Lung")
