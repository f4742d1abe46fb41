# The headline numbers per cohort (summary.tsv, summary.md)
# (hapexp.verdict.summary.run_summary).


rule summary:
    input:
        # Not read here: asked for so that `all` builds them (the report's content).
        "results/{unit}/concordance/models.tsv",
        expand("results/{{unit}}/figures/{name}.png", name=COHORT_FIGURES)
        + expand(
            "results/{{unit}}/figures/{model}/{name}.png",
            model=MODELS,
            name=MODEL_FIGURES,
        ),
        performance="results/{unit}/performance.tsv",
        cross_gene="results/{unit}/cross_gene.tsv",
        mean_r="results/{unit}/mean_r.tsv",
        paired="results/{unit}/paired.tsv",
        concordance=expand("results/{{unit}}/concordance/{model}.tsv", model=MODELS),
        validation=from_cohort("results/{cohort}/validation.json"),
        egenes="results/{unit}/eqtl/egenes.json",
        covariates="results/{unit}/expression/covariates.tsv",
        prepared="results/{unit}/expression/prepared.tsv",
        precision=from_cohort("results/{cohort}/precision.tsv"),
        split_verdict="results/{unit}/splits/verdict.tsv",
        individuals=from_cohort("results/{cohort}/splits/individuals.tsv"),
        genes_split=from_cohort("results/{cohort}/splits/genes.tsv"),
        null_check=null_check_summary,
        # the causal-variant benchmark (rules/causal.smk; its figure is the same job's output)
        causal_headline="results/{unit}/causal/headline.tsv",
        causal_section="results/{unit}/causal/summary.md",
    output:
        tsv=report(
            "results/{unit}/summary.tsv",
            caption="../report/summary.rst",
            category="{unit}",
            subcategory="summary",
        ),
        md="results/{unit}/summary.md",
    log:
        "logs/{unit}/summary.log",
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
            "expression_corrected_upstream": unit_cfg(wildcards)[
                "expression_corrected_upstream"
            ],
            "covariates": bool(unit_cfg(wildcards).get("covariates")),
            "predictdb": bool(unit_cfg(wildcards).get("predictdb")),
            "expression": config["expression"],
            "splits_seed": config["splits"]["seed"],
            "variants": config["variants"],
            "variant_half_width": VARIANT_HALF_WIDTH,
            "gene_body_flank": GENE_BODY_FLANK,
        },
    script:
        "../workflow/scripts/summary.py"
