# Splits of people and genes, fine-tuning on the training people's personal
# genomes, and the verdict on the splits (hapexp.training.splits, hapexp.training.finetune,
# hapexp.verdict.split_verdict).


from hapexp.verdict.performance import model_floors, precision_inputs


rule splits:
    input:
        genes="results/{cohort}/genes.tsv",
        prepared="results/{cohort}/expression/prepared.tsv",
        sample_sheet=config["splits"]["sample_sheet"] or [],
    output:
        individuals="results/{cohort}/splits/individuals.tsv",
        genes="results/{cohort}/splits/genes.tsv",
    log:
        "logs/{cohort}/splits.log",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        splits=config["splits"],
    script:
        "../workflow/scripts/splits.py"


# Models with a `finetune` block are trained by this rule on their cohort's training
# people and genes; their `weights` are its output (resolved_model in common.smk), so
# predict, ism and the verdict load them like any other model. The checkpoint beside the
# weights (not an output: Snakemake keeps it when a job is killed) lets a rerun
# resume where the killed job stopped.
rule finetune:
    input:
        indexes=per_chunk("results/{cohort}/haplotypes/{chunk}.npz"),
        prepared="results/{cohort}/expression/prepared.tsv",
        individuals="results/{cohort}/splits/individuals.tsv",
        genes="results/{cohort}/splits/genes.tsv",
        init=lambda wildcards: finetune_init_files(wildcards.model),
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
        finetune=lambda wildcards: config["models"][wildcards.model]["finetune"],
        init=lambda wildcards: finetune_init_spec(wildcards.model),
        checkpoint="results/{cohort}/finetune/{model}/checkpoint.pt",
    script:
        "../workflow/scripts/finetune.py"


# Track-combination heads (hapexp.training.heads) of the models in `heads`: per-gene elastic net
# and cross-gene ridge on all tracks at the TSS (their spec stores them: resolved_model in common.smk).
rule track_heads:
    input:
        tracks=per_chunk("results/{cohort}/predict/{model}/{chunk}.tracks.npz"),
        prepared="results/{cohort}/expression/prepared.tsv",
        individuals="results/{cohort}/splits/individuals.tsv",
        genes="results/{cohort}/splits/genes.tsv",
    output:
        gene="results/{cohort}/heads/{model}.gene.matrix.tsv",
        crossgene="results/{cohort}/heads/{model}.crossgene.matrix.tsv",
        weights="results/{cohort}/heads/{model}.crossgene.weights.tsv",
    log:
        "logs/{cohort}/heads/{model}.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        spec=model_cfg,
        head=lambda wildcards: config["heads"][wildcards.model] or {},
    script:
        "../workflow/scripts/head.py"


# Every predictor on the test people (hapexp.verdict.split_verdict): training vs held-out
# genes, beside an elastic net fitted on the training people only.
rule split_verdict:
    input:
        prepared="results/{cohort}/expression/prepared.tsv",
        covariates="results/{cohort}/expression/covariates.tsv",
        individuals="results/{cohort}/splits/individuals.tsv",
        genes_split="results/{cohort}/splits/genes.tsv",
        genes="results/{cohort}/genes.tsv",
        vcf="results/{cohort}/variants/normalized.bcf",
        csi="results/{cohort}/variants/normalized.bcf.csi",
        matrices=expand("results/{{cohort}}/predict/{model}.matrix.tsv", model=MODELS),
        heads=expand(
            "results/{{cohort}}/heads/{model}.{head}.matrix.tsv",
            model=HEADS,
            head=["gene", "crossgene"],
        ),
        # precision auto: the precision its predict jobs used sets its constancy floor
        precision=lambda wildcards: precision_inputs(config, wildcards.cohort),
    output:
        performance="results/{cohort}/splits/performance.tsv",
        verdict="results/{cohort}/splits/verdict.tsv",
        elasticnet="results/{cohort}/splits/elasticnet_train_people.matrix.tsv",
    log:
        "logs/{cohort}/split_verdict.log",
    benchmark:
        "benchmarks/{cohort}/split_verdict.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        models=MODELS,
        heads=[f"{m}_head_{h}" for m in HEADS for h in ("gene", "crossgene")],
        verdict={
            "elasticnet": config["elasticnet"],
            "models": config["models"],
            "policies": config["variants"],
            "floors": model_floors(config),
            "residualize": config["performance"]["residualize_predictions"],
        },
    script:
        "../workflow/scripts/split_verdict.py"
