# Model predictions for every person's two haplotypes (unique haplotypes only), per
# chunk of genes, then gathered per cohort × model (hapexp.engine.predict: run_predict,
# run_gather_predictions).

# The model's weights and targets table on disk are inputs (a hub id is not a file):
# model_input_files() in common.smk. Compiled kernels (CUDA) are cached in
# .snakemake/hapexp/torchinductor, shared by all jobs of the run (models.*.compile_cache).


rule predict:
    input:
        # the model's files (weights, targets table; a hub id is not a file)
        lambda wildcards: model_input_files(model_cfg(wildcards)),
        index="results/{cohort}/haplotypes/{chunk}.npz",
        exons="results/{cohort}/exons.tsv",
    output:
        table="results/{cohort}/predict/{model}/{chunk}.parquet",
        tracks="results/{cohort}/predict/{model}/{chunk}.tracks.npz",
        # Precision budget of a reduced-precision run (header only in strict fp32).
        precision="results/{cohort}/predict/{model}/{chunk}.precision.tsv",
        exon_stats="results/{cohort}/predict/{model}/{chunk}.exons.tsv",
        # which tracks the model's own selection and each tissue's average (hapexp.engine.predict)
        groups="results/{cohort}/predict/{model}/{chunk}.groups.tsv",
    log:
        "logs/{cohort}/predict/{model}/{chunk}.log",
    benchmark:
        "benchmarks/{cohort}/predict/{model}/{chunk}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: model_threads
    resources:
        gpu=model_resources,
        mem_mb=16000,
        runtime=240,
    params:
        spec=model_cfg,
        audit_cfg=config["precision_audit"],
    script:
        "../workflow/scripts/predict.py"


rule gather_predictions:
    input:
        chunks=per_chunk("results/{cohort}/predict/{model}/{chunk}.parquet"),
        groups=per_chunk("results/{cohort}/predict/{model}/{chunk}.groups.tsv"),
    output:
        table="results/{cohort}/predict/{model}.parquet",
        matrix="results/{cohort}/predict/{model}.matrix.tsv",
        reference="results/{cohort}/predict/{model}.reference.tsv",
    log:
        "logs/{cohort}/predict/gather_{model}.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        spec=model_cfg,
    script:
        "../workflow/scripts/gather_predictions.py"


# A multi-tissue cohort's predictions as one tissue reads them: the mean of the tracks it
# selects (cohorts.<c>.tissues.<t>.tracks.<model>), from the cohort's one predict run.
rule tissue_predictions:
    input:
        table="results/{cohort}/predict/{model}.parquet",
        groups=f"results/{{cohort}}/predict/{{model}}/{CHUNKS[0]}.groups.tsv",
    output:
        matrix="results/{cohort}/{tissue}/predict/{model}.matrix.tsv",
        reference="results/{cohort}/{tissue}/predict/{model}.reference.tsv",
    log:
        "logs/{cohort}/{tissue}/predict/{model}.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        spec=model_cfg,
        tissue=lambda wildcards: wildcards.tissue,
    script:
        "../workflow/scripts/tissue_predictions.py"
