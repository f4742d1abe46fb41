# hapexp: can sequence-to-expression models explain expression differences
# between people? See README.md and docs/architecture.md.

from snakemake.utils import min_version

min_version("9.0")


# The demo config is the default; a --configfile replaces it instead of being
# merged into it (a real cohort's config must not inherit the demo's blocks).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"


report: "report/workflow.rst"


# One file per stage, in the order of the DAG (docs/architecture.md).
include: "rules/download.smk"
include: "rules/simulate.smk"
include: "rules/validate.smk"
include: "rules/genes.smk"
include: "rules/normalize.smk"
include: "rules/haplotypes.smk"
include: "rules/genotype_pcs.smk"
include: "rules/expression.smk"
include: "rules/splits.smk"
include: "rules/finetune.smk"
include: "rules/predict.smk"
include: "rules/ism.smk"
include: "rules/precision.smk"
include: "rules/heads.smk"
include: "rules/eqtl.smk"
include: "rules/finemap.smk"
include: "rules/elasticnet.smk"
include: "rules/performance.smk"
include: "rules/concordance.smk"
include: "rules/causal.smk"
include: "rules/split_verdict.smk"
include: "rules/null_check.smk"
include: "rules/figures.smk"
include: "rules/summary.smk"
include: "rules/tissues.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
