# Per gene, each model's ISM against the eQTL scan, and the ISM agreement between models
# (hapexp.verdict.concordance: run_concordance, run_ism_agreement).


rule concordance:
    input:
        ism="results/{cohort}/ism/{model}.parquet",
        eqtl="results/{cohort}/eqtl/nominal.parquet",
        egenes="results/{cohort}/eqtl/genes.tsv",
        predictions="results/{cohort}/predict/{model}.matrix.tsv",
        bcf="results/{cohort}/variants/normalized.bcf",
        # ism_eqtl_p: the eQTL slopes recomputed under permutations of people
        prepared="results/{cohort}/expression/prepared.tsv",
        covariates="results/{cohort}/expression/covariates.tsv",
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
        ism=expand("results/{{cohort}}/ism/{model}.parquet", model=MODELS),
    output:
        agreement="results/{cohort}/concordance/models.tsv",
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
        "../workflow/scripts/ism_agreement.py"
