# Per gene, each model's ISM against the eQTL scan (per chunk, then gathered), and the ISM
# agreement between models (hapexp.verdict.concordance: run_concordance_chunk,
# run_concordance, run_ism_agreement).


rule concordance_chunk:
    input:
        ism="results/{unit}/ism/{model}.parquet",
        # the chunk's nominal pairs; bh_all_pairs: every pair (BH runs over all of them)
        eqtl=(
            "results/{unit}/eqtl/nominal.parquet"
            if config["concordance"]["eqtl_significance"] == "bh_all_pairs"
            else "results/{unit}/eqtl/{chunk}.parquet"
        ),
        egenes="results/{unit}/eqtl/genes.tsv",
        predictions="results/{unit}/predict/{model}.matrix.tsv",
        bcf=from_cohort("results/{cohort}/variants/normalized.bcf"),
        # ism_eqtl_p: the eQTL slopes recomputed under permutations of people
        prepared="results/{unit}/expression/prepared.tsv",
        covariates="results/{unit}/expression/covariates.tsv",
        chunk=from_cohort("results/{cohort}/chunks/{chunk}.tsv"),
    output:
        table="results/{unit}/concordance/{model}/{chunk}.tsv",
        drivers="results/{unit}/concordance/{model}/{chunk}.drivers.tsv",
    log:
        "logs/{unit}/concordance/{model}/{chunk}.log",
    benchmark:
        "benchmarks/{unit}/concordance/{model}/{chunk}.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        cfg=config["concordance"],
    script:
        "../workflow/scripts/concordance_chunk.py"


rule concordance:
    input:
        table_chunks=per_chunk("results/{unit}/concordance/{model}/{chunk}.tsv"),
        drivers_chunks=per_chunk(
            "results/{unit}/concordance/{model}/{chunk}.drivers.tsv"
        ),
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
        mem_mb=4000,
        runtime=10,
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
