"""The GTEx v8 preset (config/gtex.yaml, issue 21): file names and layout, the 49 tissues,
their model tracks, and a dry run.

- The 49 tissue names are checked against a list written here and against the GTEx tissue
  names in AlphaGenome's own track metadata (an independent spelling of them).
- Every tissue's Enformer, Borzoi and AlphaGenome selection is resolved by hapexp's
  `resolve_tracks` against the real track tables — Enformer's 5,313 human targets,
  borzoi-pytorch's targets.txt through hapexp's `borzoi_tracks`, AlphaGenome's RNA-seq
  metadata through hapexp's `alphagenome_tracks` — to exactly the tracks
  config/gtex_tissue_tracks.tsv names, whose descriptions say the assay and the tissue.
- Fixtures in GTEx's own layouts (tests/data/gtex/) are read by hapexp's readers.
- `snakemake -n` on the preset (genes.chunks cut to 2) plans per-tissue jobs for every tissue.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from hapexp.inputs.exons import read_gtf_exons
from hapexp.inputs.formats import detect_expression_format, read_covariates, read_expression
from hapexp.inputs.gtf import read_gtf_tss
from hapexp.models.tracks import load_targets, resolve_tracks, track_table
from tests import gtex_tracks
from tests.workflow_utils import REPO, snakemake_cmd

DATA = REPO / "tests" / "data" / "gtex"
ENFORMER_TARGETS = REPO.parent / "shared" / "data" / "enformer_targets_human.tsv"
if not ENFORMER_TARGETS.is_file():  # the same table, shipped with the repo
    ENFORMER_TARGETS = REPO / "resources" / "enformer_targets_human.tsv"

# The 49 tissues with eQTL data in GTEx v8 (GTEx Consortium 2020, Science 369:1318), as
# the v8 file names spell them.
GTEX_V8_EQTL_TISSUES = [
    "Adipose_Subcutaneous",
    "Adipose_Visceral_Omentum",
    "Adrenal_Gland",
    "Artery_Aorta",
    "Artery_Coronary",
    "Artery_Tibial",
    "Brain_Amygdala",
    "Brain_Anterior_cingulate_cortex_BA24",
    "Brain_Caudate_basal_ganglia",
    "Brain_Cerebellar_Hemisphere",
    "Brain_Cerebellum",
    "Brain_Cortex",
    "Brain_Frontal_Cortex_BA9",
    "Brain_Hippocampus",
    "Brain_Hypothalamus",
    "Brain_Nucleus_accumbens_basal_ganglia",
    "Brain_Putamen_basal_ganglia",
    "Brain_Spinal_cord_cervical_c-1",
    "Brain_Substantia_nigra",
    "Breast_Mammary_Tissue",
    "Cells_Cultured_fibroblasts",
    "Cells_EBV-transformed_lymphocytes",
    "Colon_Sigmoid",
    "Colon_Transverse",
    "Esophagus_Gastroesophageal_Junction",
    "Esophagus_Mucosa",
    "Esophagus_Muscularis",
    "Heart_Atrial_Appendage",
    "Heart_Left_Ventricle",
    "Kidney_Cortex",
    "Liver",
    "Lung",
    "Minor_Salivary_Gland",
    "Muscle_Skeletal",
    "Nerve_Tibial",
    "Ovary",
    "Pancreas",
    "Pituitary",
    "Prostate",
    "Skin_Not_Sun_Exposed_Suprapubic",
    "Skin_Sun_Exposed_Lower_leg",
    "Small_Intestine_Terminal_Ileum",
    "Spleen",
    "Stomach",
    "Testis",
    "Thyroid",
    "Uterus",
    "Vagina",
    "Whole_Blood",
]

# A few selections known independently of the TSV (the anchors' LCL track; FANTOM5 tissues).
ENFORMER_KNOWN = {
    "Cells_EBV-transformed_lymphocytes": ["CAGE:B lymphoblastoid cell line: GM12878 ENCODE, biol_"],
    "Liver": ["CAGE:liver, adult, pool1"],
    "Thyroid": ["CAGE:thyroid, adult, pool1"],
    "Brain_Cerebellum": [
        "CAGE:cerebellum, adult,",
        "CAGE:cerebellum - adult,",
        "CAGE:cerebellum, adult, pool1",
    ],
}


@pytest.fixture(scope="module")
def preset() -> dict:
    return yaml.safe_load((REPO / "config" / "gtex.yaml").read_text())


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return gtex_tracks.read_table()


def _rows(table, model):
    return {r["tissue"]: r for _, r in table[table["model"] == model].iterrows()}


def _check_resolved(table, model, tab, tissues):
    """Resolve each tissue's selection in gtex.yaml against `tab`; compare with the TSV."""
    rows = _rows(table, model)
    names, idents = tab["description"].tolist(), tab["identifier"].tolist()
    for tissue, sel in tissues.items():
        r = rows[tissue]
        got = resolve_tracks(sel, names, idents, where=f"{tissue}/{model}", table=tab)
        assert len(got) == len(set(got)) >= 1, tissue
        assert tab["identifier"].iloc[got].tolist() == r["identifiers"].split(" | "), tissue
        descs = tab["description"].iloc[got].tolist()
        assert descs == r["descriptions"].split(" | "), tissue
        for d in descs:
            assert re.search(r["match"], d, flags=re.IGNORECASE), (tissue, d, r["match"])
        yield tissue, r, got, descs


def _tissue_tracks(preset, model) -> dict:
    return {t: blk["tracks"][model] for t, blk in preset["cohorts"]["gtex"]["tissues"].items()}


# ----------------------------------------------------------------- files, names, layout
def test_preset_names_gtex_v8_files_and_the_49_tissues(preset, table):
    assert len(GTEX_V8_EQTL_TISSUES) == len(set(GTEX_V8_EQTL_TISSUES)) == 49
    cohort = preset["cohorts"]["gtex"]
    tissues = cohort["tissues"]
    assert sorted(tissues) == sorted(GTEX_V8_EQTL_TISSUES)
    assert sorted(set(table["tissue"])) == sorted(GTEX_V8_EQTL_TISSUES)
    assert (table.groupby("tissue")["model"].apply(sorted) == [sorted(gtex_tracks.MODELS)] * 49).all()
    for t, blk in tissues.items():
        assert blk["expression"].endswith(
            f"GTEx_Analysis_v8_eQTL_expression_matrices/{t}.v8.normalized_expression.bed.gz"
        )
        assert blk["covariates"].endswith(f"GTEx_Analysis_v8_eQTL_covariates/{t}.v8.covariates.txt")
        assert blk["expression_format"] == "bed"
        assert blk["expression_corrected_upstream"] is True  # PEER factors from all donors
        assert set(blk["tracks"]) == set(preset["models"]) == set(gtex_tracks.MODELS)
        assert "predictdb" not in blk
    # GTEx v8 PredictDB models were trained on these donors: never a baseline here.
    assert "predictdb" not in cohort
    assert cohort["vcf"].endswith(
        "/GTEx_Analysis_2017-06-05_v8_WholeGenomeSeq_838Indiv_Analysis_Freeze.SHAPEIT2_phased.vcf.gz"
    )
    assert preset["reference"]["build"] == "GRCh38"
    assert preset["reference"]["fasta"].endswith("Homo_sapiens_assembly38_noALT_noHLA_noDecoy.fasta")
    assert preset["genes"]["gtf"].endswith("gencode.v26.GRCh38.genes.gtf")
    assert preset["genotype_pcs"]["n_pcs"] == 0  # GTEx's covariates hold PC1..PC5
    text = (REPO / "config" / "gtex.yaml").read_text()
    assert "dbGaP" in text and "trained on these same donors" in text


def test_tissue_names_as_alphagenome_spells_gtex_tissues():
    meta = pd.read_csv(
        DATA / "alphagenome_rna_seq_metadata.tsv", sep="\t", comment="#", dtype=str, keep_default_na=False
    )
    named = set(meta["gtex_tissue"]) - {""}
    assert set(GTEX_V8_EQTL_TISSUES) <= named
    # the GTEx tissues without v8 eQTLs (too few samples) are the only others
    assert named - set(GTEX_V8_EQTL_TISSUES) == {
        "Bladder",
        "Cervix_Ectocervix",
        "Cervix_Endocervix",
        "Fallopian_Tube",
        "Kidney_Medulla",
    }


def test_yaml_tissue_blocks_are_written_from_the_tsv(table):
    text = (REPO / "config" / "gtex.yaml").read_text()
    assert gtex_tracks.tissue_blocks(table) in text, "run: python -m tests.gtex_tracks"
    assert gtex_tracks.main(["--check"]) == 0


# ---------------------------------------------------------------------- track choices
def test_enformer_selections_resolve_in_the_real_targets_table(preset, table):
    targets = load_targets(ENFORMER_TARGETS)
    assert len(targets) == 5313
    tab = track_table(targets["identifier"], targets["description"], 128)
    selections = _tissue_tracks(preset, "enformer")
    assert all(isinstance(i, int) for s in selections.values() for i in s)  # indices only
    seen = {}
    for tissue, r, got, descs in _check_resolved(table, "enformer", tab, selections):
        assert [int(x) for x in r["tracks"].split(",")] == got
        assay = "DNASE" if r["basis"] == "dnase_fallback" else "CAGE"
        assert all(d.startswith(f"{assay}:") for d in descs), (tissue, descs)
        assert "fetal" not in " ".join(descs) and "cell line" not in " ".join(descs).replace(
            "lymphoblastoid cell line", ""
        ), (tissue, descs)  # adult tissue (or the tissue's own cells), no cancer lines
        if r["basis"] != "same_cells_cage":  # tissues: an adult sample (FANTOM5 'adult', ENTEx ages)
            assert all(re.search(r"adult|Whole blood", d) for d in descs), (tissue, descs)
        assert r["reason"].strip()
        seen[tissue] = descs
    assert len(seen) == 49
    for tissue, descs in ENFORMER_KNOWN.items():
        assert seen[tissue] == descs
    assert selections["Cells_EBV-transformed_lymphocytes"] == [5110]
    # the fallbacks say so in their reason
    for _, r in table[(table["model"] == "enformer") & (table["basis"] == "dnase_fallback")].iterrows():
        assert "no " in r["reason"] and "CAGE" in r["reason"]
    assert preset["models"]["enformer"]["tracks"] == [5110]


def test_borzoi_selections_resolve_in_borzoi_pytorchs_targets(preset, table):
    pytest.importorskip("borzoi_pytorch")
    from borzoi_pytorch.pytorch_borzoi_model import TRACKS_DF

    from hapexp.models.borzoi.load import borzoi_tracks

    tab = borzoi_tracks({}, len(TRACKS_DF), is_human=True)  # what the model exposes
    assert len(tab) == 7611
    selections = _tissue_tracks(preset, "borzoi")
    n = 0
    for tissue, r, got, descs in _check_resolved(table, "borzoi", tab, selections):
        assert all(d.startswith("RNA:") for d in descs)
        assert (tab["assay"].iloc[got] == "rna_seq").all()
        idents = tab["identifier"].iloc[got]
        if r["basis"].startswith("gtex_rnaseq"):  # GTEx's own samples, unstranded
            assert idents.str.match(r"GTEX-[0-9A-Z]+-").all() and (tab["strand"].iloc[got] == ".").all()
            # every GTEx sample Borzoi has for that site, none left out
            assert sorted(got) == tab.index[tab["description"] == descs[0]].tolist()
        else:  # ENCODE, stranded: the sense strand (rc_average averages the other in)
            assert (tab["strand"].iloc[got] == "+").all(), tissue
        n += 1
    assert n == 49
    lcl = resolve_tracks(
        selections["Cells_EBV-transformed_lymphocytes"],
        tab["description"].tolist(),
        tab["identifier"].tolist(),
        table=tab,
    )
    assert lcl == resolve_tracks([{"description": "RNA:GM12878", "strand": "+"}], [], table=tab)
    assert len(lcl) == 8
    blood = resolve_tracks(preset["models"]["borzoi"]["tracks"], [], table=tab)
    assert blood == resolve_tracks(
        selections["Whole_Blood"], tab["description"].tolist(), tab["identifier"].tolist(), table=tab
    )


class _AlphaGenomeMetadata:
    """The two calls `alphagenome_tracks` makes on alphagenome-pt's model metadata."""

    def __init__(self, n):
        self.n = n

    def get_organism_index(self, organism):
        return 0

    def get_num_tracks(self, head):
        return self.n


def test_alphagenome_selections_resolve_in_its_rna_seq_metadata(preset, table):
    from hapexp.models.alphagenome.load import alphagenome_tracks

    meta = pd.read_csv(
        DATA / "alphagenome_rna_seq_metadata.tsv", sep="\t", comment="#", dtype=str, keep_default_na=False
    )
    records = [{k: (v if v != "" else None) for k, v in rec.items()} for rec in meta.to_dict("records")]
    raw = {"organisms": {"human": {"rna_seq": {"records": records}}}}
    model = type("M", (), {"metadata": _AlphaGenomeMetadata(len(records))})()
    tab = alphagenome_tracks(model, raw, "human", ["rna_seq"], 128)
    assert len(tab) == 667
    selections = _tissue_tracks(preset, "alphagenome")
    n = 0
    for tissue, _r, got, _descs in _check_resolved(table, "alphagenome", tab, selections):
        assert len(got) == 1
        assert tab["gtex_tissue"].iloc[got[0]] == tissue
        assert tab["output"].iloc[got[0]] == "rna_seq"
        # the same track as the metadata filter on the GTEx tissue name
        assert resolve_tracks([{"output": "rna_seq", "gtex_tissue": tissue}], [], table=tab) == got
        n += 1
    assert n == 49
    assert resolve_tracks(
        preset["models"]["alphagenome"]["tracks"],
        tab["description"].tolist(),
        tab["identifier"].tolist(),
        table=tab,
    ) == resolve_tracks(
        selections["Whole_Blood"], tab["description"].tolist(), tab["identifier"].tolist(), table=tab
    )


# --------------------------------------------------------------- GTEx layouts, read
BED = DATA / "GTEx_Analysis_v8_eQTL_expression_matrices" / "Whole_Blood.v8.normalized_expression.bed.gz"
COVARIATES = DATA / "GTEx_Analysis_v8_eQTL_covariates" / "Whole_Blood.v8.covariates.txt"
GTF = DATA / "gencode.v26.GRCh38.genes.gtf"
DONORS = ["GTEX-1A2B3", "GTEX-1C4D5", "GTEX-Z9Y8X", "GTEX-13QJ3", "GTEX-PX3G"]
# gene -> (chrom, strand, gene start, gene end) as written in the fixture GTF (1-based)
GTF_GENES = {
    "ENSG90000000101.3": ("chr1", "+", 11869, 14409),
    "ENSG90000000102.5": ("chr1", "-", 14404, 29570),
    "ENSG90000000103.1": ("chr1", "+", 52473, 53312),
    "ENSG90000000204.7": ("chr2", "-", 38814, 46870),
    "ENSG90000000205.2": ("chr2", "+", 197569, 202605),
}


def test_gtex_layout_fixtures_are_read_by_hapexp_readers():
    # the normalized expression BED: bgzipped (BGZF magic), tabix-indexed, GTEx's header
    assert BED.read_bytes()[:4] == b"\x1f\x8b\x08\x04" and BED.with_suffix(".gz.tbi").is_file()
    assert detect_expression_format(BED) == "bed"
    expr = read_expression(BED, "bed")
    assert expr.index.tolist() == list(GTF_GENES)
    assert expr.columns.tolist() == DONORS
    assert expr.loc["ENSG90000000102.5", "GTEX-Z9Y8X"] == pytest.approx(-1.7653)
    assert read_expression(BED).equals(expr)  # auto-detected the same
    with gzip.open(BED, "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        raw = [line.rstrip("\n").split("\t") for line in fh]
    assert header[:4] == ["#chr", "start", "end", "gene_id"]
    assert np.allclose(np.array([r[4:] for r in raw], float), expr.to_numpy())

    # the TSS: the GTF's gene start on +, gene end on -; the BED's end, with start = end - 1
    tss = read_gtf_tss(GTF, "gene").set_index("gene_id")
    assert sorted(tss.index) == sorted(GTF_GENES)
    for gid, (chrom, strand, start, end) in GTF_GENES.items():
        want = start if strand == "+" else end
        assert tss.loc[gid, "tss"] == want and tss.loc[gid, "strand"] == strand
        assert str(tss.loc[gid, "chrom"]).removeprefix("chr") == chrom.removeprefix("chr")
    for chrom, b_start, b_end, gid, *_ in raw:
        assert (chrom, int(b_end)) == (GTF_GENES[gid][0], tss.loc[gid, "tss"])
        assert int(b_start) == int(b_end) - 1
    kept = read_gtf_tss(GTF, "gene", gene_types=["protein_coding", "lincRNA"])  # the preset's
    assert sorted(kept["gene_id"]) == sorted(set(GTF_GENES) - {"ENSG90000000103.1"})  # not antisense
    exons = read_gtf_exons(GTF, gene_ids=["ENSG90000000204.7"])
    assert exons[["start", "end"]].values.tolist() == [[38814, 41627], [46385, 46870]]

    # the covariates: covariates x donors, GTEx's rows, donors in their own order
    cov = read_covariates(COVARIATES)
    assert cov.index.tolist() == [f"PC{i}" for i in range(1, 6)] + [
        f"InferredCov{i}" for i in range(1, 16)
    ] + ["pcr", "platform", "sex"]
    assert sorted(cov.columns) == sorted(DONORS) and cov.columns.tolist() != DONORS
    assert set(cov.loc["sex"]) == {1.0, 2.0} and set(cov.loc["pcr"]) <= {0.0, 1.0}
    assert cov.loc["sex", "GTEX-1A2B3"] == 2.0 and cov.loc["platform", "GTEX-PX3G"] == 0.0


# ----------------------------------------------------------------------- dry run
def _placeholders(workdir, cfg):
    """The preset's input files at its own (relative) paths: GTEx-layout fixtures for the
    expression, covariates and GTF; empty files for the FASTA, the VCF and their indexes
    (a dry run plans jobs, it never opens them)."""

    def put(rel, src=None):
        p = workdir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if src is None:
            p.touch()
        else:
            shutil.copyfile(src, p)

    put(cfg["reference"]["fasta"])
    put(cfg["reference"]["fasta"] + ".fai")
    cohort = cfg["cohorts"]["gtex"]
    put(cohort["vcf"])
    put(cohort["vcf"] + ".tbi")
    put(cfg["genes"]["gtf"], GTF)
    for blk in cohort["tissues"].values():
        put(blk["expression"], BED)
        put(blk["expression"] + ".tbi", BED.with_suffix(".gz.tbi"))
        put(blk["covariates"], COVARIATES)


def _job_counts(out: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: rule -> number of jobs."""
    stats = out[out.index("Job stats:") :].splitlines()[3:]
    counts = {}
    for line in stats:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.long
def test_dry_run_plans_every_tissue(tmp_path):
    """All 49 tissues (about 8 s on 2 cores); genes.chunks cut to 2 (the preset's 400
    chunks would plan ~50,000 jobs, and need >= 400 genes)."""
    cfg = yaml.safe_load((REPO / "config" / "gtex.yaml").read_text())
    cfg["genes"]["chunks"] = 2
    _placeholders(tmp_path, cfg)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.monotonic()
    proc = subprocess.run(
        snakemake_cmd(tmp_path, "-n", "--configfile", "config.yaml", cores=1),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    print(f"dry run: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stderr[-6000:]
    out = proc.stdout + proc.stderr
    n, n_models = len(GTEX_V8_EQTL_TISSUES), len(gtex_tracks.MODELS)
    jobs = _job_counts(out)
    # per tissue: its expression, eQTL scan, elastic net, verdict, summary
    for rule in ("prepare_expression", "gather_eqtl", "gather_elasticnet", "performance", "summary"):
        assert jobs.get(rule) == n, (rule, jobs)
    assert jobs.get("eqtl") == jobs.get("elasticnet") == 2 * n  # per tissue x chunk
    assert jobs.get("split_verdict_elasticnet") == 2 * n and jobs.get("split_verdict") == n
    assert jobs.get("tissue_predictions") == n * n_models  # each tissue's tracks read out
    # genotype-level work once for the cohort, not per tissue
    assert jobs.get("normalize_variants") == 1 and jobs.get("haplotypes") == 2
    assert jobs.get("predict") == 2 * n_models and jobs.get("ism") == 2 * n_models
    planned = set(re.findall(r"results/gtex/([^/\s,;]+)/performance\.tsv", out))
    assert planned == set(GTEX_V8_EQTL_TISSUES)
    assert "predictdb" not in out  # no PredictDB predictor planned
