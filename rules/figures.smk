# Report figures (PNG in the report, PDF beside each), per cohort and per model
# (hapexp.verdict.figures: run_figures_cohort, run_figures_model). `snakemake --report
# results/report.html` collects every report() output, grouped by cohort (category) and
# model (subcategory).


rule figures_cohort:
    input:
        performance="results/{cohort}/performance.tsv",
        prepared="results/{cohort}/expression/prepared.tsv",
        # the un-residualized expression level when given (cross-gene), else the expression
        raw=lambda wildcards: cohort_cfg(wildcards).get("expression_level")
        or cohort_cfg(wildcards)["expression"],
        references=expand(
            "results/{{cohort}}/predict/{model}.reference.tsv", model=MODELS
        ),
        ism=expand("results/{{cohort}}/ism/{model}.parquet", model=MODELS),
    output:
        # PDFs, written beside the PNGs below by the same calls
        "results/{cohort}/figures/r_hist.pdf",
        "results/{cohort}/figures/cross_gene.pdf",
        "results/{cohort}/figures/ism_models.pdf",
        r_hist_png=report(
            "results/{cohort}/figures/r_hist.png",
            caption="../report/r_hist.rst",
            category="{cohort}",
            subcategory="all predictors",
        ),
        cross_gene_png=report(
            "results/{cohort}/figures/cross_gene.png",
            caption="../report/cross_gene.rst",
            category="{cohort}",
            subcategory="all predictors",
        ),
        ism_models_png=report(
            "results/{cohort}/figures/ism_models.png",
            caption="../report/ism_models.rst",
            category="{cohort}",
            subcategory="all predictors",
        ),
    log:
        "logs/{cohort}/figures/cohort.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=MODELS,
        raw_format=lambda wildcards: (
            cohort_cfg(wildcards)["expression_level_format"]
            if cohort_cfg(wildcards).get("expression_level")
            else cohort_cfg(wildcards)["expression_format"]
        ),
        is_level=lambda wildcards: bool(cohort_cfg(wildcards).get("expression_level")),
        cfg=config["concordance"],
    script:
        "../workflow/scripts/figures_cohort.py"


rule figures_model:
    input:
        performance="results/{cohort}/performance.tsv",
        ism="results/{cohort}/ism/{model}.parquet",
        eqtl="results/{cohort}/eqtl/nominal.parquet",
        egenes="results/{cohort}/eqtl/genes.tsv",
        concordance="results/{cohort}/concordance/{model}.tsv",
        drivers="results/{cohort}/concordance/{model}.drivers.tsv",
    output:
        # PDFs, written beside the PNGs below by the same calls
        "results/{cohort}/figures/{model}/deep_vs_linear.pdf",
        "results/{cohort}/figures/{model}/ism_vs_eqtl.pdf",
        "results/{cohort}/figures/{model}/ism_vs_eqtl_genes.pdf",
        "results/{cohort}/figures/{model}/supported_vs_r.pdf",
        "results/{cohort}/figures/{model}/driver_distance.pdf",
        deep_vs_linear_png=report(
            "results/{cohort}/figures/{model}/deep_vs_linear.png",
            caption="../report/deep_vs_linear.rst",
            category="{cohort}",
            subcategory="{model}",
        ),
        ism_vs_eqtl_png=report(
            "results/{cohort}/figures/{model}/ism_vs_eqtl.png",
            caption="../report/ism_vs_eqtl.rst",
            category="{cohort}",
            subcategory="{model}",
        ),
        ism_vs_eqtl_genes_png=report(
            "results/{cohort}/figures/{model}/ism_vs_eqtl_genes.png",
            caption="../report/ism_vs_eqtl_genes.rst",
            category="{cohort}",
            subcategory="{model}",
        ),
        supported_vs_r_png=report(
            "results/{cohort}/figures/{model}/supported_vs_r.png",
            caption="../report/supported_vs_r.rst",
            category="{cohort}",
            subcategory="{model}",
        ),
        driver_distance_png=report(
            "results/{cohort}/figures/{model}/driver_distance.png",
            caption="../report/driver_distance.rst",
            category="{cohort}",
            subcategory="{model}",
        ),
    log:
        "logs/{cohort}/figures/{model}.log",
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
        pvalues="results/{cohort}/null_check/pvalues.tsv",
    output:
        # the PDF, written beside the PNG below by the same call
        "results/{cohort}/figures/null_check_qq.pdf",
        png=report(
            "results/{cohort}/figures/null_check_qq.png",
            caption="../report/null_check_qq.rst",
            category="{cohort}",
            subcategory="all predictors",
        ),
    log:
        "logs/{cohort}/figures/null_check.log",
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../workflow/scripts/figures_null_check.py"
