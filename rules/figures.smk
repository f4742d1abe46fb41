# Report figures (PNG in the report, PDF beside each), per cohort and per model
# (hapexp.verdict.figures: run_figures_cohort, run_figures_model). `snakemake --report
# results/report.html` collects every report() output, grouped by cohort (category) and
# model (subcategory).


rule figures_cohort:
    input:
        performance="results/{unit}/performance.tsv",
        prepared="results/{unit}/expression/prepared.tsv",
        # the un-residualized expression level when given (cross-gene), else the expression
        raw=lambda wildcards: unit_cfg(wildcards).get("expression_level")
        or unit_cfg(wildcards)["expression"],
        references=expand(
            "results/{{unit}}/predict/{model}.reference.tsv", model=MODELS
        ),
        ism=expand("results/{{unit}}/ism/{model}.parquet", model=MODELS),
    output:
        # PDFs, written beside the PNGs below by the same calls
        "results/{unit}/figures/r_hist.pdf",
        "results/{unit}/figures/cross_gene.pdf",
        "results/{unit}/figures/ism_models.pdf",
        r_hist_png=report(
            "results/{unit}/figures/r_hist.png",
            caption="../report/r_hist.rst",
            category="{unit}",
            subcategory="all predictors",
        ),
        cross_gene_png=report(
            "results/{unit}/figures/cross_gene.png",
            caption="../report/cross_gene.rst",
            category="{unit}",
            subcategory="all predictors",
        ),
        ism_models_png=report(
            "results/{unit}/figures/ism_models.png",
            caption="../report/ism_models.rst",
            category="{unit}",
            subcategory="all predictors",
        ),
    log:
        "logs/{unit}/figures/cohort.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=MODELS,
        raw_format=lambda wildcards: (
            unit_cfg(wildcards)["expression_level_format"]
            if unit_cfg(wildcards).get("expression_level")
            else unit_cfg(wildcards)["expression_format"]
        ),
        is_level=lambda wildcards: bool(unit_cfg(wildcards).get("expression_level")),
        cfg=config["concordance"],
    script:
        "../workflow/scripts/figures_cohort.py"


rule figures_model:
    input:
        performance="results/{unit}/performance.tsv",
        ism="results/{unit}/ism/{model}.parquet",
        eqtl="results/{unit}/eqtl/nominal.parquet",
        egenes="results/{unit}/eqtl/genes.tsv",
        concordance="results/{unit}/concordance/{model}.tsv",
        drivers="results/{unit}/concordance/{model}.drivers.tsv",
    output:
        # PDFs, written beside the PNGs below by the same calls
        "results/{unit}/figures/{model}/deep_vs_linear.pdf",
        "results/{unit}/figures/{model}/ism_vs_eqtl.pdf",
        "results/{unit}/figures/{model}/ism_vs_eqtl_genes.pdf",
        "results/{unit}/figures/{model}/supported_vs_r.pdf",
        "results/{unit}/figures/{model}/driver_distance.pdf",
        deep_vs_linear_png=report(
            "results/{unit}/figures/{model}/deep_vs_linear.png",
            caption="../report/deep_vs_linear.rst",
            category="{unit}",
            subcategory="{model}",
        ),
        ism_vs_eqtl_png=report(
            "results/{unit}/figures/{model}/ism_vs_eqtl.png",
            caption="../report/ism_vs_eqtl.rst",
            category="{unit}",
            subcategory="{model}",
        ),
        ism_vs_eqtl_genes_png=report(
            "results/{unit}/figures/{model}/ism_vs_eqtl_genes.png",
            caption="../report/ism_vs_eqtl_genes.rst",
            category="{unit}",
            subcategory="{model}",
        ),
        supported_vs_r_png=report(
            "results/{unit}/figures/{model}/supported_vs_r.png",
            caption="../report/supported_vs_r.rst",
            category="{unit}",
            subcategory="{model}",
        ),
        driver_distance_png=report(
            "results/{unit}/figures/{model}/driver_distance.png",
            caption="../report/driver_distance.rst",
            category="{unit}",
            subcategory="{model}",
        ),
    log:
        "logs/{unit}/figures/{model}.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=config["concordance"],
    script:
        "../workflow/scripts/figures_model.py"


rule figures_null_check:
    input:
        pvalues="results/{unit}/null_check/pvalues.tsv",
    output:
        # the PDF, written beside the PNG below by the same call
        "results/{unit}/figures/null_check_qq.pdf",
        png=report(
            "results/{unit}/figures/null_check_qq.png",
            caption="../report/null_check_qq.rst",
            category="{unit}",
            subcategory="all predictors",
        ),
    log:
        "logs/{unit}/figures/null_check.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../workflow/scripts/figures_null_check.py"
