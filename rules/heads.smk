# Track-combination heads of the models in `heads`: a per-gene elastic net and a
# cross-gene ridge on all tracks at the TSS, fitted on the training people
# (hapexp.training.heads.run_track_heads).


# Track-combination heads (hapexp.training.heads) of the models in `heads`: per-gene elastic net
# and cross-gene ridge on all tracks at the TSS (their spec stores them: resolved_model in common.smk).
rule track_heads:
    input:
        tracks=per_chunk("results/{cohort}/predict/{model}/{chunk}.tracks.npz"),
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
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        spec=model_cfg,
        cfg=lambda wildcards: config["heads"][wildcards.model] or {},
    script:
        "../workflow/scripts/track_heads.py"
