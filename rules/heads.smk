# Track-combination heads of the models in `heads` (their spec stores every track at the
# TSS: resolved_model in common.smk), fitted on the training people: the per-gene elastic
# net per chunk, then the cross-gene ridge over every training gene and the gathered
# per-gene head (hapexp.training.heads: run_track_heads_gene, run_track_heads).


rule track_heads_gene:
    input:
        tracks=from_cohort("results/{cohort}/predict/{model}/{chunk}.tracks.npz"),
        # fitted on the training people, applied to the others (rule prepare_split_expression)
        prepared="results/{unit}/expression/prepared_split.tsv",
        individuals=from_cohort("results/{cohort}/splits/individuals.tsv"),
        genes=from_cohort("results/{cohort}/splits/genes.tsv"),
    output:
        gene_matrix="results/{unit}/heads/{model}/{chunk}.gene.matrix.tsv",
    log:
        "logs/{unit}/heads/{model}/{chunk}.log",
    benchmark:
        "benchmarks/{unit}/heads/{model}/{chunk}.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        spec=model_cfg,
        cfg=lambda wildcards: config["heads"][wildcards.model] or {},
    script:
        "../workflow/scripts/track_heads_gene.py"


rule track_heads:
    input:
        tracks=per_chunk("results/{cohort}/predict/{model}/{chunk}.tracks.npz"),
        gene_chunks=per_chunk("results/{unit}/heads/{model}/{chunk}.gene.matrix.tsv"),
        # fitted on the training people, applied to the others (rule prepare_split_expression)
        prepared="results/{unit}/expression/prepared_split.tsv",
        individuals=from_cohort("results/{cohort}/splits/individuals.tsv"),
        genes=from_cohort("results/{cohort}/splits/genes.tsv"),
    output:
        gene_matrix="results/{unit}/heads/{model}.gene.matrix.tsv",
        crossgene_matrix="results/{unit}/heads/{model}.crossgene.matrix.tsv",
        crossgene_weights="results/{unit}/heads/{model}.crossgene.weights.tsv",
    log:
        "logs/{unit}/heads/{model}.log",
    benchmark:
        "benchmarks/{unit}/heads/{model}.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        spec=model_cfg,
        cfg=lambda wildcards: config["heads"][wildcards.model] or {},
    script:
        "../workflow/scripts/track_heads.py"
