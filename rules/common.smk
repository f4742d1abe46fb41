# Config validation, the values derived from the config, input functions and the paths
# every rule shares. Rule files hold one stage each (rules/<stage>.smk, logic in the
# module of the same name: hapexp.<package>.<stage>.run_<rule>).

import copy
import re
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from snakemake.exceptions import WorkflowError  # noqa: E402

from hapexp.engine.precision import model_floor, requested  # noqa: E402
from hapexp.models.spec import model_input_files, model_spec  # noqa: E402
from hapexp.errors import InputError  # noqa: E402
from hapexp.inputs.genes import chunk_ids  # noqa: E402
from hapexp.variants.files import vcf_paths  # noqa: E402
from hapexp.variants.windows import resolve_window, window_flank  # noqa: E402
from hapexp.config.check import check_config  # noqa: E402
from hapexp.config.units import (  # noqa: E402
    cohort_units,
    split_unit,
    tissues,
    track_groups,
    unit_config,
    units,
)

# Config errors in people's words first (key path, did-you-mean), then
# Snakemake's validate() to fill the schema defaults. Nothing else writes to `config`:
# what follows from it comes from functions (resolved_model).
try:
    check_config(config, ", ".join(map(str, workflow.configfiles)) or "config")
except InputError as e:
    raise WorkflowError(f"invalid configuration: {e}") from None
# Each finetune block as written: the fine-tuning checkpoint's digest hashes the model's
# spec with this block in it (hapexp.training.finetune.config_digest), as it did before
# the schema held the block's defaults, so checkpoints written then still resume.
FINETUNE_AS_WRITTEN = {
    m: copy.deepcopy(c["finetune"])
    for m, c in config["models"].items()
    if c.get("finetune") is not None
}
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
# Per-tissue stages run per unit: `<cohort>` (one expression) or `<cohort>/<tissue>`
# (hapexp.config.units); MULTI_TISSUE: the cohorts with `tissues`.
UNITS = units(config["cohorts"])
MULTI_TISSUE = [c for c in COHORTS if tissues(config["cohorts"][c])]
TISSUES = sorted({t for c in MULTI_TISSUE for t in tissues(config["cohorts"][c])})

# Fine-tuned models (a `finetune` block): trained by rule finetune on one unit
# (finetune.cohort: a cohort, or `cohort/tissue`; null = the first unit); their weights
# are that rule's output.
FINETUNED = {}
# fine-tuned model -> the registry model it starts from (None: its own initialisation)
FINETUNE_INIT = {}
for _m, _c in config["models"].items():
    if _c.get("finetune") is not None:
        _ft = _c["finetune"]
        # a unit (one tissue), or a multi-tissue cohort's name: every tissue (finetune_tissues)
        _cohort = _ft["cohort"] or UNITS[0]
        if _cohort not in UNITS + MULTI_TISSUE:
            raise WorkflowError(
                f"invalid configuration: models.{_m}.finetune.cohort {_cohort!r} is not a cohort "
                f"or cohort/tissue; use one of {', '.join(UNITS + MULTI_TISSUE)}"
            )
        _init = _ft["init"]
        if _init is not None and (_init not in config["models"] or _init == _m):
            raise WorkflowError(
                f"invalid configuration: models.{_m}.finetune.init {_init!r} is not another model"
            )
        FINETUNED[_m] = _cohort
        FINETUNE_INIT[_m] = _init

# Models whose track-combination heads are fitted (by rule track_heads) from `heads`;
# their predict jobs store every track at the TSS (store_all_tracks turned on).
HEADS = list(config["heads"] or {})
for _m in HEADS:
    if _m not in config["models"]:
        raise WorkflowError(f"invalid configuration: heads.{_m} is not a model")


def resolved_model(name, cohort=None):
    """The spec of models.<name> (model_spec) with what the workflow derives for it: a
    fine-tuned model's weights are rule finetune's output; a model with heads stores
    every track at the TSS (rule track_heads reads them); on a multi-tissue `cohort`, each
    tissue's track selection (`track_groups`: predict and ISM run every track any tissue
    selects, once)."""
    derived = {}
    if name in FINETUNED:
        derived["weights"] = f"results/{FINETUNED[name]}/finetune/{name}/weights.pt"
    if name in HEADS:
        derived["store_all_tracks"] = True
    if cohort is not None and (groups := track_groups(config["cohorts"][cohort], name)):
        derived["track_groups"] = groups
    return model_spec({**config["models"][name], **derived}, name)


def finetune_init_spec(model):
    init = FINETUNE_INIT[model]
    return None if init is None else resolved_model(init)


def finetune_init_files(model):
    spec = finetune_init_spec(model)
    return [] if spec is None else model_input_files(spec)


def _alternatives(names):
    """A wildcard constraint matching exactly these names (none: nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


wildcard_constraints:
    cohort=_alternatives(COHORTS),
    unit=_alternatives(UNITS),
    tissue=_alternatives(TISSUES),
    model=_alternatives(MODELS),
    chunk=r"\d\d\d+",


def cohort_cfg(wildcards):
    return config["cohorts"][wildcards.cohort]


def cohort_of(wildcards):
    """The cohort of a job's `cohort` or `unit` wildcard (None: neither)."""
    if (cohort := getattr(wildcards, "cohort", None)) is not None:
        return cohort
    unit = getattr(wildcards, "unit", None)
    return None if unit is None else split_unit(unit)[0]


def unit_cfg(wildcards):
    """A per-tissue job's cohort config: the cohort's keys with its tissue's over them."""
    return unit_config(config["cohorts"], wildcards.unit)


def from_cohort(pattern):
    """Input function of a per-tissue rule: a per-cohort file (`{cohort}` filled in from
    the job's unit; other wildcards as they are)."""

    def inner(wildcards):
        return pattern.format(
            **{**dict(wildcards.items()), "cohort": cohort_of(wildcards)}
        )

    return inner


def model_cfg(wildcards):
    return resolved_model(wildcards.model, cohort_of(wildcards))


def finetune_spec(wildcards):
    """The spec rule finetune trains, with the finetune block as written (FINETUNE_AS_WRITTEN);
    on a tissue, the tracks that tissue selects for the model are the ones trained; on a
    multi-tissue cohort (rule finetune_tissues), every tissue's (`track_groups`)."""
    spec = {**model_cfg(wildcards), "finetune": FINETUNE_AS_WRITTEN[wildcards.model]}
    if getattr(wildcards, "cohort", None) in MULTI_TISSUE:
        return spec  # every tissue, each its track_groups entry (rule finetune_tissues)
    groups = spec.pop("track_groups", None)
    tissue = split_unit(getattr(wildcards, "unit", ""))[1]
    if groups and groups.get(tissue) is not None:
        spec["tracks"] = groups[tissue]
    return spec


# A fixed number of gene chunks (genes.chunks), so that the whole DAG — every
# haplotypes/predict/ism/eqtl/elasticnet job — is known before the gene table
# exists (snakemake -n lists them all). Rule chunk_genes balances the genes over
# the chunks; fewer genes than chunks is an input error.
CHUNKS = chunk_ids(config["genes"]["chunks"])


def per_chunk(pattern):
    """Input function: `pattern` expanded over all chunks of the cohort."""

    def inner(wildcards):
        return expand(
            pattern,
            chunk=CHUNKS,
            **{**dict(wildcards.items()), "cohort": cohort_of(wildcards)},
        )

    return inner


def model_threads(wildcards):
    return int(model_cfg(wildcards)["threads"])


def model_resources(wildcards):
    return 1 if model_cfg(wildcards)["device"] == "cuda" else 0


def all_outputs():
    """Every unit's summary; a multi-tissue cohort's tissue summary (rules/tissues.smk)."""
    out = []
    for unit in UNITS:
        out += [f"results/{unit}/summary.tsv", f"results/{unit}/summary.md"]
        # SuSiE's credible sets (rules/finemap.smk; its PIPs feed the causal benchmark)
        out += [f"results/{unit}/finemap/credible_sets.tsv"]
    for cohort in MULTI_TISSUE:
        out += [f"results/{cohort}/tissues.tsv", f"results/{cohort}/summary.md"]
    return out


def cohort_vcfs(wildcards):
    """The cohort's VCF, or its per-chromosome files when the path contains {chrom}."""
    c = config["cohorts"][wildcards.cohort]
    return vcf_paths(c["vcf"], c.get("chromosomes"))


def genotype_pcs_input(wildcards):
    """The cohort's genotype PCs (rules/genotype_pcs.smk) when they are on: covariates of
    both expression preparations (all people; fitted on the training people)."""
    if config["genotype_pcs"]["n_pcs"] > 0:
        return {"genotype_pcs": f"results/{cohort_of(wildcards)}/genotype_pcs.tsv"}
    return {}


def cohort_input_files(wildcards):
    """The user-supplied files of a cohort, every tissue's (indexes are checked by
    validate_inputs)."""
    unit_cfgs = [
        unit_config(config["cohorts"], u)
        for u in cohort_units(config["cohorts"], wildcards.cohort)
    ]
    files = {
        "fasta": config["reference"]["fasta"],
        "genes": config["genes"].get("table") or config["genes"]["gtf"],
        "vcf": cohort_vcfs(wildcards),
    }
    for key in ("expression", "covariates", "samples", "predictdb"):
        if paths := [c[key] for c in unit_cfgs if c.get(key)]:
            files[key] = paths if len(unit_cfgs) > 1 else paths[0]
    return files


def validated(wildcards):
    return f"results/{wildcards.cohort}/validation.json"


# The largest model window: every haplotype index covers it.
HAP_WINDOW = max(int(resolved_model(m)["window"]) for m in MODELS)
# Regions kept by normalize_variants: that window plus a flank to re-fill deletions,
# or the eQTL / elastic-net cis windows if larger (TSS ± flank; gene-body windows
# add each gene's body ± their flank).
LINEAR_WINDOWS = [
    resolve_window(config[stage]["window"], config["models"])
    for stage in ("eqtl", "elasticnet")
]
VARIANT_HALF_WIDTH = max(
    HAP_WINDOW // 2 + max(4096, HAP_WINDOW // 4),
    *(window_flank(w) for w in LINEAR_WINDOWS if w[0] != "gene_body"),
)
GENE_BODY_FLANK = max([w[1] for w in LINEAR_WINDOWS if w[0] == "gene_body"], default=0)

# Each model's constancy floor in the verdicts (hapexp.engine.precision.model_floor): fp32's
# for strict fp32; None for a reduced precision or auto: measured by its predict jobs'
# audits (reduced_precision_tables).
MODEL_FLOORS = {m: model_floor(resolved_model(m)) for m in MODELS}
# Sasse et al.'s legacy null, for the performance rule; on/off, draws, seed, each model's window.
LEGACY_NULL = {
    "enabled": bool(config["concordance"]["legacy_null"]),
    "draws": int(config["concordance"]["legacy_draws"]),
    "seed": int(config["concordance"]["seed"]),
    "windows": {m: int(resolved_model(m)["window"]) for m in MODELS},
}

# The permuted-expression check (rules/null_check.smk): on/off, permutations, seed.
NULL_CHECK = {k: config["null_check"][k] for k in ("enabled", "permutations", "seed")}

# Figures of rules figures_cohort, figures_null_check and figures_model (summary asks for
# them all).
COHORT_FIGURES = ["r_hist", "cross_gene", "ism_models"] + (
    ["null_check_qq"] if NULL_CHECK["enabled"] else []
)
MODEL_FIGURES = [
    "deep_vs_linear",
    "ism_vs_eqtl",
    "ism_vs_eqtl_genes",
    "supported_vs_r",
    "driver_distance",
]


def reduced_precision_tables(wildcards):
    """The predict jobs' precision tables of the models not in strict fp32 (reduced or
    `auto`): the noise their audits measured sets each such model's constancy floor in the
    verdicts (hapexp.engine.precision.constancy_floor)."""
    auto = [m for m in MODELS if requested(resolved_model(m)) != "fp32"]
    return [
        f"results/{cohort_of(wildcards)}/predict/{m}/{c}.precision.tsv"
        for m in auto
        for c in CHUNKS
    ]


def performance_inputs(wildcards):
    """What the performance job reads: every predictor's predictions and what the options need."""
    unit, cohort = wildcards.unit, cohort_of(wildcards)
    c = unit_cfg(wildcards)
    inputs = {
        "prepared": f"results/{unit}/expression/prepared.tsv",
        "covariates": f"results/{unit}/expression/covariates.tsv",
        "raw": c["expression"],
        "genes": f"results/{cohort}/genes.tsv",
        "matrices": [f"results/{unit}/predict/{m}.matrix.tsv" for m in MODELS],
        "references": [f"results/{unit}/predict/{m}.reference.tsv" for m in MODELS],
        "oof": f"results/{unit}/elasticnet/oof.tsv",
    }
    if precision := reduced_precision_tables(wildcards):
        inputs["precision"] = precision
    if c.get("expression_level"):
        inputs["level"] = c["expression_level"]
    if c.get("predictdb"):
        inputs["predictdb"] = c["predictdb"]
    if c.get("predictdb") or config["concordance"]["legacy_null"]:
        inputs["bcf"] = f"results/{cohort}/variants/normalized.bcf"
    if finetuned_here(wildcards):  # scored on their test people only (mean_r.tsv)
        inputs["individuals"] = f"results/{cohort}/splits/individuals.tsv"
    # The elastic net's outer-fold labels: its p-values from the held-out folds, its mean r
    # on one fold it never saw (mean_r.tsv).
    inputs["folds"] = f"results/{unit}/elasticnet/folds.tsv"
    return inputs


def finetuned_here(wildcards):
    """The models fine-tuned on this cohort, in any of its tissues (they saw some of its
    people: out of the headline, judged on the test people the split shares)."""
    cohort = cohort_of(wildcards)
    return [m for m, u in FINETUNED.items() if split_unit(u)[0] == cohort]


def null_check_models(wildcards):
    """The deep models the permuted-expression check scores as they are: every model not
    fine-tuned on this cohort (a fine-tuned one is judged on held-out people instead).
    """
    return [m for m in MODELS if m not in finetuned_here(wildcards)]


def null_check_inputs(wildcards):
    """The null_check job's inputs — the real run (performance.tsv), the expression and
    covariates it permutes, the predictions of the models it scores as they are, the
    elastic net refitted per chunk, and what rule performance's floors and PredictDB use.
    """
    unit, cohort = wildcards.unit, cohort_of(wildcards)
    c = unit_cfg(wildcards)
    inputs = {
        "performance": f"results/{unit}/performance.tsv",
        "prepared": f"results/{unit}/expression/prepared.tsv",
        "covariates": f"results/{unit}/expression/covariates.tsv",
        "matrices": [
            f"results/{unit}/predict/{m}.matrix.tsv"
            for m in null_check_models(wildcards)
        ],
        "oof_chunks": expand(
            f"results/{unit}/null_check/{{chunk}}.oof.tsv", chunk=CHUNKS
        ),
        "folds_chunks": expand(
            f"results/{unit}/null_check/{{chunk}}.folds.tsv", chunk=CHUNKS
        ),
    }
    if precision := reduced_precision_tables(wildcards):
        inputs["precision"] = precision
    if c.get("predictdb"):
        inputs["predictdb"] = c["predictdb"]
        inputs["bcf"] = f"results/{cohort}/variants/normalized.bcf"
    return inputs


def null_check_summary(wildcards):
    """summary.md's permuted-expression section reads null_check.tsv when the check is on."""
    return f"results/{wildcards.unit}/null_check.tsv" if NULL_CHECK["enabled"] else []


def credible_sets_source(wildcards):
    """The unit's `credible_sets` block (its tissue's, else its cohort's): the external
    fine-mapping rule external_finemap reads."""
    block = unit_cfg(wildcards).get("credible_sets")
    if not block:
        raise WorkflowError(
            f"unit {wildcards.unit} has no credible_sets in the config: "
            f"results/{wildcards.unit}/finemap/external.parquet cannot be made"
        )
    return block


def credible_sets_file(wildcards):
    return credible_sets_source(wildcards)["path"]


def unit_tissue(wildcards):
    """The tissue of the job's unit (None: a one-expression cohort)."""
    return split_unit(wildcards.unit)[1]


def causal_pips(wildcards):
    """The PIPs the causal benchmark judges against: the unit's external credible sets
    (rule external_finemap, and what it read and matched) when it has `credible_sets` — the
    non-circular reference —, else the in-cohort SuSiE's (rule gather_finemap)."""
    if unit_cfg(wildcards).get("credible_sets"):
        return {
            "pips": f"results/{wildcards.unit}/finemap/external.parquet",
            "pips_source": f"results/{wildcards.unit}/finemap/external.json",
        }
    return {"pips": f"results/{wildcards.unit}/finemap/pips.parquet"}


def causal_truth(wildcards):
    """The known causal variants of the job's unit (causal.truth, by unit or else by
    cohort; `{tissue}` filled in) for the causal benchmark's PIP calibration; none unset.
    """
    truth = config["causal"]["truth"]
    cohort, tissue = split_unit(wildcards.unit)
    path = truth.get(wildcards.unit) or truth.get(cohort)
    return {"truth": path.format(tissue=tissue or "")} if path else {}


def tissue_summary_inputs(wildcards):
    """A multi-tissue cohort's tissue summary (rules/tissues.smk): every tissue's verdict,
    expression and covariates, and every model read with every tissue's tracks."""
    us = cohort_units(config["cohorts"], wildcards.cohort)
    return {
        "performance": [f"results/{u}/performance.tsv" for u in us],
        "prepared": [f"results/{u}/expression/prepared.tsv" for u in us],
        "covariates": [f"results/{u}/expression/covariates.tsv" for u in us],
        "predictions": [
            f"results/{u}/predict/{m}.matrix.tsv" for m in MODELS for u in us
        ],
        "splits": f"results/{wildcards.cohort}/splits/tissues.tsv",
        # asked for so that `all` builds every tissue's summary first
        "summaries": [f"results/{u}/summary.md" for u in us],
    }
