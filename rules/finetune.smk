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
        prepared="results/{cohort}/expression/prepared_split.tsv",
        individuals="results/{cohort}/splits/individuals.tsv",
        genes="results/{cohort}/splits/genes.tsv",
    output:
        weights="results/{cohort}/finetune/{model}/weights.pt",
        history="results/{cohort}/finetune/{model}/history.tsv",
    log:
        "logs/{cohort}/finetune/{model}.log",
    benchmark:
        "benchmarks/{cohort}/finetune/{model}.tsv"
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
    script:
        "../workflow/scripts/finetune.py"
