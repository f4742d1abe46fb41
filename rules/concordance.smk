# Cross-individual performance of every predictor (deep models, elastic net
# out-of-fold, optional external PredictDB db), cross-gene performance, and the
# per-gene concordance of each model's ISM with the eQTL scan.


from hapexp.verdict.performance import (
    legacy_params,
    model_floors,
    rule_inputs as performance_inputs,
)


rule performance:
    input:
        unpack(lambda wildcards: performance_inputs(config, wildcards.cohort)),
    output:
        performance="results/{cohort}/performance.tsv",
        cross_gene="results/{cohort}/cross_gene.tsv",
    log:
        "logs/{cohort}/performance.log",
    benchmark:
        "benchmarks/{cohort}/performance.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        models=MODELS,
        raw_format=lambda wildcards: cohort_cfg(wildcards).get(
            "expression_format", "auto"
        ),
        legacy=legacy_params(config),
        residualize=config["performance"]["residualize_predictions"],
        floors=model_floors(config),
        level_format=lambda wildcards: cohort_cfg(wildcards).get(
            "expression_level_format", "auto"
        ),
        policies=config["variants"],
    script:
        "../workflow/scripts/performance.py"


rule concordance:
    input:
        ism="results/{cohort}/ism/{model}.parquet",
        eqtl="results/{cohort}/eqtl/nominal.parquet",
        egenes="results/{cohort}/eqtl/genes.tsv",
        predictions="results/{cohort}/predict/{model}.matrix.tsv",
        bcf="results/{cohort}/variants/normalized.bcf",
    output:
        table="results/{cohort}/concordance/{model}.tsv",
        drivers="results/{cohort}/concordance/{model}.drivers.tsv",
    log:
        "logs/{cohort}/concordance/{model}.log",
    benchmark:
        "benchmarks/{cohort}/concordance/{model}.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        cfg=config["concordance"],
    script:
        "../workflow/scripts/concordance.py"


rule ism_agreement:
    input:
        expand("results/{{cohort}}/ism/{model}.parquet", model=MODELS),
    output:
        "results/{cohort}/concordance/models.tsv",
    log:
        "logs/{cohort}/concordance/models.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=MODELS,
    script:
        "../workflow/scripts/concordance.py"
