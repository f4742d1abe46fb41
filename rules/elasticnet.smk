# PrediXcan elastic net with PredictDB's nested CV per chunk, then the cohort's metrics,
# out-of-fold predictions, PredictDB db, covariances and outer-fold labels (hapexp.linear.elasticnet:
# run_elasticnet, run_gather_elasticnet).


rule elasticnet:
    input:
        "results/{cohort}/variants/normalized.bcf.csi",  # the BCF's index (bcftools reads it)
        prepared="results/{cohort}/expression/prepared.tsv",
        vcf="results/{cohort}/variants/normalized.bcf",
        chunk="results/{cohort}/chunks/{chunk}.tsv",
    output:
        metrics="results/{cohort}/elasticnet/{chunk}.metrics.tsv",
        oof="results/{cohort}/elasticnet/{chunk}.oof.tsv",
        weights="results/{cohort}/elasticnet/{chunk}.weights.tsv",
        covariances="results/{cohort}/elasticnet/{chunk}.covariances.tsv",
        folds="results/{cohort}/elasticnet/{chunk}.folds.tsv",
    log:
        "logs/{cohort}/elasticnet/{chunk}.log",
    benchmark:
        "benchmarks/{cohort}/elasticnet/{chunk}.tsv"
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
        metrics_chunks=per_chunk("results/{cohort}/elasticnet/{chunk}.metrics.tsv"),
        oof_chunks=per_chunk("results/{cohort}/elasticnet/{chunk}.oof.tsv"),
        weights_chunks=per_chunk("results/{cohort}/elasticnet/{chunk}.weights.tsv"),
        covariances_chunks=per_chunk(
            "results/{cohort}/elasticnet/{chunk}.covariances.tsv"
        ),
        folds_chunks=per_chunk("results/{cohort}/elasticnet/{chunk}.folds.tsv"),
        genes="results/{cohort}/genes.tsv",
    output:
        metrics="results/{cohort}/elasticnet/metrics.tsv",
        oof="results/{cohort}/elasticnet/oof.tsv",
        db="results/{cohort}/elasticnet/weights.db",
        covariances="results/{cohort}/elasticnet/covariances.txt.gz",
        folds="results/{cohort}/elasticnet/folds.tsv",
    log:
        "logs/{cohort}/gather_elasticnet.log",
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
