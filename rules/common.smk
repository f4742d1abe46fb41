# Config validation, shared helpers and input functions.

import sys
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

import yaml  # noqa: E402
from snakemake.exceptions import WorkflowError  # noqa: E402

from hapexp.config import model_input_files, model_spec  # noqa: E402
from hapexp.errors import InputError  # noqa: E402
from hapexp.genes import chunk_ids  # noqa: E402
from hapexp.genotypes import resolve_window, window_flank  # noqa: E402
from hapexp.validate import check_config  # noqa: E402

# Config errors in people's words first (key path, did-you-mean), then
# Snakemake's validate() to fill the schema defaults.
_SCHEMA = Path(workflow.basedir) / "config" / "schema" / "config.schema.yaml"
try:
    check_config(
        config,
        yaml.safe_load(_SCHEMA.read_text()),
        ", ".join(map(str, workflow.configfiles)) or "config",
    )
except InputError as e:
    raise WorkflowError(f"invalid configuration: {e}") from None
validate(config, schema="../config/schema/config.schema.yaml")

# readout: exons needs the genes' exons (a GTF, or an exon table beside a gene table).
_EXON_MODELS = [
    m for m, c in config["models"].items() if model_spec(c, m)["readout"] == "exons"
]
if _EXON_MODELS and not (config["genes"].get("gtf") or config["genes"].get("exons")):
    raise WorkflowError(
        f"invalid configuration: models {', '.join(_EXON_MODELS)} use readout: exons, which needs "
        "the genes' exons: set genes.gtf, or genes.exons (gene_id, chrom, start, end; 1-based) "
        "beside genes.table"
    )

COHORTS = list(config["cohorts"])
MODELS = list(config["models"])


wildcard_constraints:
    cohort="|".join(COHORTS),
    model="|".join(MODELS),
    chunk=r"\d\d\d+",


def cohort_cfg(wildcards):
    return config["cohorts"][wildcards.cohort]


def model_cfg(wildcards):
    return model_spec(config["models"][wildcards.model], wildcards.model)


# A fixed number of gene chunks (genes.chunks), so that the whole DAG — every
# haplotypes/predict/ism/eqtl/elasticnet job — is known before the gene table
# exists (snakemake -n lists them all). Rule chunk_genes balances the genes over
# the chunks; fewer genes than chunks is an input error.
CHUNKS = chunk_ids(config["genes"]["chunks"])


def per_chunk(pattern):
    """Input function: `pattern` expanded over all chunks of the cohort."""

    def inner(wildcards):
        return expand(pattern, chunk=CHUNKS, **wildcards)

    return inner


def model_resources(wildcards):
    return 1 if model_cfg(wildcards)["device"] == "cuda" else 0


def all_outputs():
    out = []
    for cohort in COHORTS:
        out += [
            f"results/{cohort}/summary.tsv",
            f"results/{cohort}/summary.md",
        ]
    return out


def cohort_input_files(wildcards):
    """The user-supplied files of a cohort (indexes are checked by validate_inputs)."""
    c = config["cohorts"][wildcards.cohort]
    files = {
        "fasta": config["reference"]["fasta"],
        "genes": config["genes"].get("table") or config["genes"]["gtf"],
        "expression": c["expression"],
        "vcf": [c["vcf"].format(chrom=ch) for ch in c.get("chromosomes", [None])],
    }
    for key in ("covariates", "samples", "predictdb"):
        if c.get(key):
            files[key] = c[key]
    return files


def validated(wildcards):
    return f"results/{wildcards.cohort}/validation.json"
