# PrediXcan elastic net with PredictDB's nested CV per chunk, then the cohort's metrics,
# out-of-fold predictions, PredictDB db, covariances and outer-fold labels (hapexp.linear.elasticnet:
# run_elasticnet, run_gather_elasticnet).


rule elasticnet:
    input:
        from_cohort("results/{cohort}/variants/normalized.bcf.csi"),  # the BCF's index (bcftools reads it)
        prepared="results/{unit}/expression/prepared.tsv",
        vcf=from_cohort("results/{cohort}/variants/normalized.bcf"),
        chunk=from_cohort("results/{cohort}/chunks/{chunk}.tsv"),
    output:
        metrics="results/{unit}/elasticnet/{chunk}.metrics.tsv",
        oof="results/{unit}/elasticnet/{chunk}.oof.tsv",
        weights="results/{unit}/elasticnet/{chunk}.weights.tsv",
        covariances="results/{unit}/elasticnet/{chunk}.covariances.tsv",
        folds="results/{unit}/elasticnet/{chunk}.folds.tsv",
    log:
        "logs/{unit}/elasticnet/{chunk}.log",
    benchmark:
        "benchmarks/{unit}/elasticnet/{chunk}.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        window=config["elasticnet"]["window"],
        models=config["models"],
        maf=config["elasticnet"]["maf"],
        alpha=config["elasticnet"]["alpha"],
        outer_folds=config["elasticnet"]["outer_folds"],
        inner_folds=config["elasticnet"]["inner_folds"],
        seed=config["elasticnet"]["seed"],
        thresh=config["elasticnet"]["thresh"],
        policies=config["variants"],
        predictdb_exclusions=config["elasticnet"]["predictdb_exclusions"],
        build=config["reference"].get("build"),
    script:
        "../workflow/scripts/elasticnet.py"


rule gather_elasticnet:
    input:
        metrics_chunks=per_chunk("results/{unit}/elasticnet/{chunk}.metrics.tsv"),
        oof_chunks=per_chunk("results/{unit}/elasticnet/{chunk}.oof.tsv"),
        weights_chunks=per_chunk("results/{unit}/elasticnet/{chunk}.weights.tsv"),
        covariances_chunks=per_chunk(
            "results/{unit}/elasticnet/{chunk}.covariances.tsv"
        ),
        folds_chunks=per_chunk("results/{unit}/elasticnet/{chunk}.folds.tsv"),
        genes=from_cohort("results/{cohort}/genes.tsv"),
    output:
        metrics="results/{unit}/elasticnet/metrics.tsv",
        oof="results/{unit}/elasticnet/oof.tsv",
        db="results/{unit}/elasticnet/weights.db",
        covariances="results/{unit}/elasticnet/covariances.txt.gz",
        folds="results/{unit}/elasticnet/folds.tsv",
    log:
        "logs/{unit}/gather_elasticnet.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        seed=config["elasticnet"]["seed"],
        filter_db=config["elasticnet"]["filter_db"],
    script:
        "../workflow/scripts/gather_elasticnet.py"
