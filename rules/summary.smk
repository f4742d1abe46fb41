# The headline numbers per cohort (summary.tsv, summary.md)
# (hapexp.verdict.summary.run_summary).


rule summary:
    input:
        # Not read here: asked for so that `all` builds them (the report's content).
        "results/{cohort}/concordance/models.tsv",
        expand("results/{{cohort}}/figures/{name}.png", name=COHORT_FIGURES)
        + expand(
            "results/{{cohort}}/figures/{model}/{name}.png",
            model=MODELS,
            name=MODEL_FIGURES,
        ),
        performance="results/{cohort}/performance.tsv",
        cross_gene="results/{cohort}/cross_gene.tsv",
        mean_r="results/{cohort}/mean_r.tsv",
        paired="results/{cohort}/paired.tsv",
        concordance=expand("results/{{cohort}}/concordance/{model}.tsv", model=MODELS),
        validation="results/{cohort}/validation.json",
        egenes="results/{cohort}/eqtl/egenes.json",
        covariates="results/{cohort}/expression/covariates.tsv",
        prepared="results/{cohort}/expression/prepared.tsv",
        precision="results/{cohort}/precision.tsv",
        split_verdict="results/{cohort}/splits/verdict.tsv",
        individuals="results/{cohort}/splits/individuals.tsv",
        genes_split="results/{cohort}/splits/genes.tsv",
        null_check=null_check_summary,
    output:
        tsv=report(
            "results/{cohort}/summary.tsv",
            caption="../report/summary.rst",
            category="{cohort}",
            subcategory="summary",
        ),
        md="results/{cohort}/summary.md",
    log:
        "logs/{cohort}/summary.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=MODELS,
        finetuned=FINETUNED,
        finetune_init=FINETUNE_INIT,
        fdr=lambda wildcards: float(config["concordance"]["fdr"]),
        context={
            "residualize": config["performance"]["residualize_predictions"],
            "eqtl_significance": config["concordance"]["eqtl_significance"],
            "predictdb_exclusions": config["elasticnet"]["predictdb_exclusions"],
            "permutations": config["eqtl"]["permutations"],
        },
        # what summary.md states about the split-aware preparation, the gene split and the
        # PredictDB predictor's rules (splits_lines, predictdb_lines)
        stated=lambda wildcards: {
            "expression_corrected_upstream": config["cohorts"][wildcards.cohort][
                "expression_corrected_upstream"
            ],
            "covariates": bool(config["cohorts"][wildcards.cohort].get("covariates")),
            "predictdb": bool(config["cohorts"][wildcards.cohort].get("predictdb")),
            "expression": config["expression"],
            "splits_seed": config["splits"]["seed"],
            "variants": config["variants"],
            "variant_half_width": VARIANT_HALF_WIDTH,
            "gene_body_flank": GENE_BODY_FLANK,
        },
    script:
        "../workflow/scripts/summary.py"
