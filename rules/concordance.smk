# Per gene, each model's ISM against the eQTL scan, and the ISM agreement between models
# (hapexp.verdict.concordance: run_concordance, run_ism_agreement).


rule concordance:
    input:
        ism="results/{unit}/ism/{model}.parquet",
        eqtl="results/{unit}/eqtl/nominal.parquet",
        egenes="results/{unit}/eqtl/genes.tsv",
        predictions="results/{unit}/predict/{model}.matrix.tsv",
        bcf=from_cohort("results/{cohort}/variants/normalized.bcf"),
        # ism_eqtl_p: the eQTL slopes recomputed under permutations of people
        prepared="results/{unit}/expression/prepared.tsv",
        covariates="results/{unit}/expression/covariates.tsv",
    output:
        table="results/{unit}/concordance/{model}.tsv",
        drivers="results/{unit}/concordance/{model}.drivers.tsv",
    log:
        "logs/{unit}/concordance/{model}.log",
    benchmark:
        "benchmarks/{unit}/concordance/{model}.tsv"
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
        ism=expand("results/{{unit}}/ism/{model}.parquet", model=MODELS),
    output:
        agreement="results/{unit}/concordance/models.tsv",
    log:
        "logs/{unit}/concordance/models.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=MODELS,
    script:
        "../workflow/scripts/ism_agreement.py"
