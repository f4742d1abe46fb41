# The permuted-expression check on the cohort: the elastic net refitted per chunk on each
# permuted expression, then every predictor not trained on the cohort scored against each
# permutation (hapexp.verdict.null_check: run_null_check_elasticnet, run_null_check).
# On with null_check.enabled; summary.md and the QQ figure (rule figures_null_check) ask for it.


rule null_check_elasticnet:
    input:
        from_cohort("results/{cohort}/variants/normalized.bcf.csi"),  # the BCF's index (bcftools reads it)
        prepared="results/{unit}/expression/prepared.tsv",
        covariates="results/{unit}/expression/covariates.tsv",
        vcf=from_cohort("results/{cohort}/variants/normalized.bcf"),
        chunk=from_cohort("results/{cohort}/chunks/{chunk}.tsv"),
    output:
        oof="results/{unit}/null_check/{chunk}.oof.tsv",
        folds="results/{unit}/null_check/{chunk}.folds.tsv",
    log:
        "logs/{unit}/null_check/{chunk}.log",
    benchmark:
        "benchmarks/{unit}/null_check/{chunk}.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=lambda wildcards: 240 * NULL_CHECK["permutations"],
    params:
        elasticnet=config["elasticnet"],
        models=config["models"],
        policies=config["variants"],
        build=config["reference"].get("build"),
        null_check=NULL_CHECK,
    script:
        "../workflow/scripts/null_check_elasticnet.py"


rule null_check:
    input:
        unpack(null_check_inputs),
    output:
        table="results/{unit}/null_check.tsv",
        pvalues="results/{unit}/null_check/pvalues.tsv",
    log:
        "logs/{unit}/null_check.log",
    benchmark:
        "benchmarks/{unit}/null_check.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        models=null_check_models,
        floors=MODEL_FLOORS,
        residualize=config["performance"]["residualize_predictions"],
        fdr=float(config["concordance"]["fdr"]),
        null_check=NULL_CHECK,
    script:
        "../workflow/scripts/null_check.py"
