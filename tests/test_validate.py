"""Up-front validation: each bad input fails with a message naming file, record and fix.

Every test starts from a tiny valid cohort (2 contigs, 4 samples, 3 genes) and
breaks exactly one thing.
"""

from __future__ import annotations

import copy
import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest
import yaml

from hapexp.config.check import check_config
from hapexp.errors import InputError
from hapexp.inputs.validate import validate_cohort

SAMPLES = ["S1", "S2", "S3", "S4"]
CONTIG_LEN = 6000


def _write_vcf(
    path: Path, records: list[str], samples=SAMPLES, contigs=("chr1", "chr2"), bgzip=True, index=True
):
    header = ["##fileformat=VCFv4.2"]
    header += [f"##contig=<ID={c},length={CONTIG_LEN}>" for c in contigs]
    header += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    header += ["#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)]
    text = "\n".join(header + records) + "\n"
    plain = path.with_suffix("")  # x.vcf
    plain.write_text(text)
    if bgzip:
        pysam.tabix_compress(str(plain), str(path), force=True)
        if index:
            pysam.tabix_index(str(path), preset="vcf", force=True)
    plain.unlink()


@pytest.fixture
def cohort(tmp_path):
    """A valid tiny cohort; returns (config, paths dict)."""
    rng = np.random.default_rng(0)
    seqs = {c: "".join(rng.choice(list("ACGT"), CONTIG_LEN)) for c in ("chr1", "chr2")}
    fasta = tmp_path / "ref.fa"
    fasta.write_text("".join(f">{c}\n{s}\n" for c, s in seqs.items()))
    pysam.faidx(str(fasta))

    def rec(chrom, pos, alt_base=None, gts=("0|1", "1|0", "0|0", "1|1")):
        ref = seqs[chrom][pos - 1]  # VCF POS is 1-based
        alt = alt_base or {"A": "C", "C": "G", "G": "T", "T": "A"}[ref]
        return f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t" + "\t".join(gts)

    records = [rec("chr1", 1500), rec("chr1", 2100), rec("chr2", 3000)]
    vcf = tmp_path / "cohort.vcf.gz"
    _write_vcf(vcf, records)
    genes = pd.DataFrame(
        {
            "gene_id": ["G1", "G2", "G3"],
            "name": ["A", "B", "C"],
            "chrom": ["chr1", "chr1", "chr2"],
            "tss": [1600, 2500, 3100],
            "strand": ["+", "-", "+"],
        }
    )
    genes_path = tmp_path / "genes.tsv"
    genes.to_csv(genes_path, sep="\t", index=False)
    expr = pd.DataFrame(rng.normal(size=(3, 4)), index=["G1", "G2", "G3"], columns=SAMPLES)
    expr.index.name = "gene_id"
    expr_path = tmp_path / "expression.tsv"
    expr.to_csv(expr_path, sep="\t")
    cov = pd.DataFrame(rng.normal(size=(2, 4)), index=["sex", "batch"], columns=SAMPLES)
    cov.index.name = "id"
    cov_path = tmp_path / "covariates.tsv"
    cov.to_csv(cov_path, sep="\t")
    config = {
        "reference": {"fasta": str(fasta)},
        "genes": {"table": str(genes_path), "chunks": 2},
        "cohorts": {
            "c": {"vcf": str(vcf), "expression": str(expr_path), "covariates": str(cov_path)},
        },
        "models": {"m": {"kind": "oracle", "window": 1024, "weights": "oracle.pt"}},
        "variants": {"missing": "ref", "unphased": "error"},
    }
    paths = {"fasta": fasta, "vcf": vcf, "genes": genes_path, "expression": expr_path, "covariates": cov_path}
    return config, paths, seqs, rec


def _fails(config, *fragments):
    with pytest.raises(InputError) as exc:
        check_config(config, "my.yaml")
        validate_cohort(config, "c", "my.yaml")
    msg = str(exc.value)
    for f in fragments:
        assert f in msg, f"{f!r} not in {msg!r}"
    return msg


def test_valid_cohort_passes(cohort):
    config, *_ = cohort
    check_config(config, "my.yaml")
    report = validate_cohort(config, "c")
    assert report.facts["samples"] == 4
    assert report.facts["genes"] == 3
    assert report.facts["records"] == 3
    assert report.warnings == []


def test_variant_policy_counts_in_the_facts(cohort):
    """validation.json states what the `variants` policy keeps in the models' windows: an
    indel, a symbolic allele and a rare SNV next to the three common SNVs."""
    config, paths, seqs, rec = cohort
    ref = seqs["chr1"][1700 - 1]
    records = [
        rec("chr1", 1500),
        f"chr1\t1700\t.\t{ref}\t{ref}AC\t.\tPASS\t.\tGT\t0|1\t0|0\t1|1\t0|0",
        f"chr1\t1800\t.\t{seqs['chr1'][1799]}\t<DEL>\t.\tPASS\t.\tGT\t0|1\t0|0\t0|0\t0|0",
        rec("chr1", 1900, gts=("0|1", "0|0", "0|0", "0|0")),  # MAF 1/8
        rec("chr1", 2100),
        rec("chr2", 3000),
    ]
    _write_vcf(paths["vcf"], records)
    config["variants"].update(snv_only=True, maf=0.2)
    vp = validate_cohort(config, "c").facts["variant_policy"]
    assert vp["policy"] == {"snv_only": True, "maf": 0.2}
    assert vp["records"] == 6 and vp["kept"] == 3
    assert vp["skipped"] == {"skipped_indel_snv_only": 1, "skipped_maf": 1, "skipped_symbolic": 1}


def test_permutation_significance_needs_permutations(cohort):
    config, *_ = cohort
    config["eqtl"] = {"permutations": 0}
    _fails(config, "eqtl.permutations is 0", "bh_all_pairs")
    config["concordance"] = {"eqtl_significance": "bh_all_pairs"}
    check_config(config, "my.yaml")
    config["elasticnet"] = {"window": "gene_body_2mb"}
    _fails(config, "elasticnet.window", "gene_body_1mb")


def test_config_key_missing(cohort):
    config, *_ = cohort
    del config["reference"]
    _fails(config, "my.yaml", "reference", "required")


def test_config_key_mistyped_suggests_the_right_one(cohort):
    config, *_ = cohort
    config["cohorts"]["c"]["expresion"] = config["cohorts"]["c"].pop("expression")
    msg = _fails(config, "my.yaml", "cohorts.c")
    assert "did you mean 'expression'" in msg


def test_unknown_model_kind(cohort):
    config, *_ = cohort
    config["models"]["m"]["kind"] = "enformr"
    _fails(config, "models.m.kind", "enformer")


def test_window_not_multiple_of_bin_size(cohort):
    config, *_ = cohort
    config["models"]["m"]["window"] = 1000
    _fails(config, "my.yaml, models.m", "window 1000 is not a multiple of the output bin size 128", "1024")


def test_fasta_without_fai(cohort):
    config, paths, *_ = cohort
    Path(str(paths["fasta"]) + ".fai").unlink()
    _fails(config, str(paths["fasta"]), "no .fai", "samtools faidx")


def test_fasta_missing(cohort):
    config, paths, *_ = cohort
    paths["fasta"].unlink()
    _fails(config, str(paths["fasta"]), "not found")


def test_vcf_plain_gzip_is_rejected(cohort):
    config, paths, *_ = cohort
    text = pysam.BGZFile(str(paths["vcf"]), "r").read()
    with gzip.open(paths["vcf"], "wb") as fh:
        fh.write(text)
    _fails(config, str(paths["vcf"]), "not bgzip-compressed", "tabix")


def test_vcf_without_index(cohort):
    config, paths, *_ = cohort
    Path(str(paths["vcf"]) + ".tbi").unlink()
    _fails(config, str(paths["vcf"]), "no index", "tabix -p vcf")


def test_vcf_contigs_absent_from_fasta(cohort):
    config, paths, seqs, rec = cohort
    _write_vcf(paths["vcf"], ["chrZ\t10\t.\tA\tC\t.\tPASS\t.\tGT\t0|1\t0|1\t0|1\t0|1"], contigs=("chrZ",))
    _fails(config, str(paths["vcf"]), "chrZ", "FASTA")


def test_chr_prefix_difference_is_harmonized(cohort):
    config, paths, seqs, rec = cohort
    records = [r.replace("chr", "", 1) for r in (rec("chr1", 1500), rec("chr2", 3000))]
    _write_vcf(paths["vcf"], records, contigs=("1", "2"))
    report = validate_cohort(config, "c")
    assert report.facts["records"] == 2


def test_ref_mismatch_counted_with_examples(cohort):
    config, paths, seqs, rec = cohort
    wrong = {"A": "C", "C": "G", "G": "T", "T": "A"}
    bad = [
        f"chr1\t{p}\t.\t{wrong[seqs['chr1'][p - 1]]}\tN\t.\tPASS\t.\tGT\t0|1\t0|0\t0|0\t0|0".replace(
            "\tN\t", "\tA\t"
        )
        for p in (1400, 1450)
    ]
    _write_vcf(paths["vcf"], [*bad, rec("chr1", 1500)])
    msg = _fails(config, str(paths["vcf"]), "2 of 3 records have a REF", "chr1:1400", "genome build")
    assert "chr1:1450" in msg


def test_unphased_under_error_policy(cohort):
    config, paths, seqs, rec = cohort
    _write_vcf(paths["vcf"], [rec("chr1", 1500, gts=("0|1", "0/1", "0|0", "1|1"))])
    _fails(config, str(paths["vcf"]), "record chr1:1500", "unphased", "S2", "variants.unphased")
    config["variants"]["unphased"] = "ref"
    validate_cohort(config, "c")  # the other policy lets it through


def test_missing_genotype_under_error_policy(cohort):
    config, paths, seqs, rec = cohort
    _write_vcf(paths["vcf"], [rec("chr1", 1500, gts=("0|1", ".|.", "0|0", "1|1"))])
    config["variants"]["missing"] = "error"
    _fails(config, "record chr1:1500", "missing genotype for sample S2", "variants.missing")


def test_no_sample_overlap(cohort):
    config, paths, *_ = cohort
    expr = pd.read_csv(paths["expression"], sep="\t", index_col=0)
    expr.columns = ["X1", "X2", "X3", "X4"]
    expr.to_csv(paths["expression"], sep="\t")
    _fails(config, str(paths["expression"]), "no sample id", "VCF's sample ids")


def test_partial_sample_overlap_warns_with_counts(cohort):
    config, paths, *_ = cohort
    expr = pd.read_csv(paths["expression"], sep="\t", index_col=0).drop(columns=["S4"])
    expr.to_csv(paths["expression"], sep="\t")
    report = validate_cohort(config, "c")
    assert any("3 used; 4 in the VCF, 3 in the expression" in w for w in report.warnings)


def test_duplicate_sample_ids(cohort):
    config, paths, *_ = cohort
    text = paths["expression"].read_text().splitlines()
    text[0] = text[0].replace("S4", "S3")
    paths["expression"].write_text("\n".join(text) + "\n")
    _fails(config, str(paths["expression"]), "S3")


def test_duplicate_gene_ids(cohort):
    config, paths, *_ = cohort
    genes = pd.read_csv(paths["genes"], sep="\t")
    genes.loc[1, "gene_id"] = "G1"
    genes.to_csv(paths["genes"], sep="\t", index=False)
    _fails(config, str(paths["genes"]), "G1")


def test_expression_non_numeric(cohort):
    config, paths, *_ = cohort
    expr = pd.read_csv(paths["expression"], sep="\t", index_col=0).astype(object)
    expr.iloc[1, 2] = "high"
    expr.to_csv(paths["expression"], sep="\t")
    _fails(config, str(paths["expression"]), "high")


def test_expression_all_nan_gene(cohort):
    config, paths, *_ = cohort
    expr = pd.read_csv(paths["expression"], sep="\t", index_col=0)
    expr.loc["G2"] = np.nan
    expr.to_csv(paths["expression"], sep="\t", na_rep="NA")
    _fails(config, str(paths["expression"]), "G2", "no value in any sample")


def test_tss_outside_chromosome(cohort):
    config, paths, *_ = cohort
    genes = pd.read_csv(paths["genes"], sep="\t")
    genes.loc[2, "tss"] = CONTIG_LEN + 10
    genes.to_csv(paths["genes"], sep="\t", index=False)
    _fails(config, str(paths["genes"]), "G3", "outside chr2", "line 4")


def test_bad_strand(cohort):
    config, paths, *_ = cohort
    genes = pd.read_csv(paths["genes"], sep="\t")
    genes.loc[0, "strand"] = "forward"
    genes.to_csv(paths["genes"], sep="\t", index=False)
    _fails(config, str(paths["genes"]), "forward", "G1")


def test_genes_absent_from_expression(cohort):
    config, paths, *_ = cohort
    expr = pd.read_csv(paths["expression"], sep="\t", index_col=0)
    expr.index = ["X1", "X2", "X3"]
    expr.index.name = "gene_id"
    expr.to_csv(paths["expression"], sep="\t")
    _fails(config, str(paths["genes"]), "none of the 3 genes is in the expression matrix")


def test_covariates_missing_samples(cohort):
    config, paths, *_ = cohort
    cov = pd.read_csv(paths["covariates"], sep="\t", index_col=0).drop(columns=["S2"])
    cov.to_csv(paths["covariates"], sep="\t")
    _fails(config, str(paths["covariates"]), "S2", "no covariate values")


def test_weights_directory_without_config(cohort, tmp_path):
    config, *_ = cohort
    wdir = tmp_path / "enformer_weights"
    wdir.mkdir()
    (wdir / "model.safetensors").write_bytes(b"")
    config["models"]["m"] = {"kind": "enformer", "window": 196608, "weights": str(wdir)}
    _fails(config, str(wdir), "config.json", "save_pretrained")


def test_empty_gene_set_after_filters(cohort):
    config, paths, seqs, rec = cohort
    # Only chr2 has variants in the VCF: genes on chr1 only → no gene left.
    _write_vcf(paths["vcf"], [rec("chr2", 3000)], contigs=("chr2",))
    genes = pd.read_csv(paths["genes"], sep="\t")
    genes = genes[genes["chrom"] == "chr1"]
    genes.to_csv(paths["genes"], sep="\t", index=False)
    _fails(config, str(paths["genes"]), "no gene is left after filtering")


def test_more_chunks_than_genes_is_an_empty_chunk(cohort):
    config, *_ = cohort
    config["genes"]["chunks"] = 5
    _fails(config, "my.yaml", "empty gene chunk after filters: 3 gene(s)", "genes.chunks to at most 3")


def test_config_copy_is_not_mutated(cohort):
    config, *_ = cohort
    before = copy.deepcopy(config)
    validate_cohort(config, "c")
    assert config == before


def test_per_chromosome_pattern_needs_chromosomes(cohort, tmp_path):
    config, paths, *_ = cohort
    shutil.copy(paths["vcf"], tmp_path / "chr1.vcf.gz")
    config["cohorts"]["c"]["vcf"] = str(tmp_path / "{chrom}.vcf.gz")
    _fails(config, "{chrom}", "chromosomes")


@pytest.mark.slow
def test_workflow_stops_at_validation_and_writes_nothing_to_results(cohort, tmp_path):
    """Through Snakemake: the bad record is named, no other job starts, results/ stays empty."""
    from tests.workflow_utils import run_snakemake

    config, paths, seqs, rec = cohort
    _write_vcf(paths["vcf"], [rec("chr1", 1500, gts=("0|1", "0/1", "0|0", "1|1"))])
    config["models"] = {"m": {"kind": "enformer_tiny", "window": 1024, "bins": 2}}
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(workdir, "--configfile", "config.yaml", check=False)
    assert proc.returncode != 0
    log = (workdir / "logs/c/validate_inputs.log").read_text()
    assert "record chr1:1500" in log and "unphased heterozygous genotype 0/1 for sample S2" in log
    assert "variants.unphased" in proc.stdout + proc.stderr + log
    results = workdir / "results"
    assert not results.exists() or not any(p.is_file() for p in results.rglob("*")), list(results.rglob("*"))
    assert not (workdir / "logs/c/genes.log").exists()
