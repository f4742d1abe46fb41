# Cross-individual performance of every predictor (deep models, elastic net out-of-fold,
# optional external PredictDB db) on the same people, residualization and genes, and
# cross-gene performance; mean r tested by permuting people (mean_r.tsv) and deep vs
# linear per gene (paired.tsv) (hapexp.verdict.performance.run_performance).


rule performance:
    input:
        unpack(performance_inputs),
    output:
        performance="results/{unit}/performance.tsv",
        cross_gene="results/{unit}/cross_gene.tsv",
        mean_r="results/{unit}/mean_r.tsv",
        paired="results/{unit}/paired.tsv",
    log:
        "logs/{unit}/performance.log",
    benchmark:
        "benchmarks/{unit}/performance.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        models=MODELS,
        raw_format=lambda wildcards: unit_cfg(wildcards)["expression_format"],
        legacy=LEGACY_NULL,
        residualize=config["performance"]["residualize_predictions"],
        floors=MODEL_FLOORS,
        noise_z=config["precision_audit"]["noise_floor_z"],
        level_format=lambda wildcards: unit_cfg(wildcards)["expression_level_format"],
        policies=config["variants"],
        finetuned_here=finetuned_here,
        mean_r_permutations=config["performance"]["mean_r_permutations"],
        mean_r_seed=config["performance"]["mean_r_seed"],
    script:
        "../workflow/scripts/performance.py"
