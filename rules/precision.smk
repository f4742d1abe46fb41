# Precision budget of every reduced-precision predict/ism job: the per-chunk tables of
# all models gathered into one per cohort (hapexp.engine.precision.run_precision).


rule precision:
    input:
        tables=expand(
            "results/{{cohort}}/{stage}/{model}/{chunk}.precision.tsv",
            stage=["predict", "ism"],
            model=MODELS,
            chunk=CHUNKS,
        ),
    output:
        precision=report(
            "results/{cohort}/precision.tsv",
            caption="../report/precision.rst",
            category="{cohort}",
            subcategory="precision",
        ),
    log:
        "logs/{cohort}/precision.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/precision.py"
