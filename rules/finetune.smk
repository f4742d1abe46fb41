# Fine-tuning a model on the training people's personal genomes
# (hapexp.training.finetune.run_finetune).


# Models with a `finetune` block are trained by this rule on their cohort's training
# people and genes; their `weights` are its output (resolved_model in common.smk), so
# predict, ism and the verdict load them like any other model. The checkpoint beside the
# weights (not an output: Snakemake keeps it when a job is killed) lets a rerun
# resume where the killed job stopped.
rule finetune:
    input:
        # the files of the model finetune.init starts from
        lambda wildcards: finetune_init_files(wildcards.model),
        indexes=per_chunk("results/{cohort}/haplotypes/{chunk}.npz"),
        # fitted on the training people, applied to the others (rule prepare_split_expression)
        prepared="results/{unit}/expression/prepared_split.tsv",
        individuals=from_cohort("results/{cohort}/splits/individuals.tsv"),
        genes=from_cohort("results/{cohort}/splits/genes.tsv"),
    output:
        weights="results/{unit}/finetune/{model}/weights.pt",
        history="results/{unit}/finetune/{model}/history.tsv",
    log:
        "logs/{unit}/finetune/{model}.log",
    benchmark:
        "benchmarks/{unit}/finetune/{model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: model_threads
    resources:
        gpu=model_resources,
        mem_mb=16000,
        runtime=1440,
    params:
        spec=finetune_spec,
        cfg=lambda wildcards: config["models"][wildcards.model]["finetune"],
        init_spec=lambda wildcards: finetune_init_spec(wildcards.model),
        checkpoint="results/{unit}/finetune/{model}/checkpoint.pt",
    script:
        "../workflow/scripts/finetune.py"


# A model trained on every tissue of a multi-tissue cohort (finetune.cohort: the cohort's
# name): each tissue's training people and expression train the tracks that tissue selects
# for the model (cohorts.<c>.tissues.<t>.tracks: one track per tissue), steps interleaved.
rule finetune_tissues:
    input:
        # the files of the model finetune.init starts from
        lambda wildcards: finetune_init_files(wildcards.model),
        indexes=per_chunk("results/{cohort}/haplotypes/{chunk}.npz"),
        # every tissue's, fitted on the training people (rule prepare_split_expression)
        prepared=lambda wildcards: [
            f"results/{u}/expression/prepared_split.tsv"
            for u in cohort_units(config["cohorts"], wildcards.cohort)
        ],
        individuals="results/{cohort}/splits/individuals.tsv",
        genes="results/{cohort}/splits/genes.tsv",
    output:
        weights="results/{cohort}/finetune/{model}/weights.pt",
        history="results/{cohort}/finetune/{model}/history.tsv",
    log:
        "logs/{cohort}/finetune/{model}.log",
    benchmark:
        "benchmarks/{cohort}/finetune/{model}.tsv"
    wildcard_constraints:
        cohort=_alternatives(MULTI_TISSUE),
    conda:
        "../envs/torch.yaml"
    threads: model_threads
    resources:
        gpu=model_resources,
        mem_mb=16000,
        runtime=1440,
    params:
        spec=finetune_spec,
        cfg=lambda wildcards: config["models"][wildcards.model]["finetune"],
        init_spec=lambda wildcards: finetune_init_spec(wildcards.model),
        checkpoint="results/{cohort}/finetune/{model}/checkpoint.pt",
        tissues=lambda wildcards: tissues(config["cohorts"][wildcards.cohort]),
    script:
        "../workflow/scripts/finetune_tissues.py"
