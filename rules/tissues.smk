# A multi-tissue cohort's verdict across tissues: the tissue × predictor table, each
# tissue's own tracks against the other tissues' tracks, and the mean r figure
# (hapexp.verdict.tissues.run_tissue_summary). Per-tissue stages write results/{cohort}/{tissue}/.


rule tissue_summary:
    input:
        unpack(tissue_summary_inputs),
    output:
        tsv=report(
            "results/{cohort}/tissues.tsv",
            caption="../report/tissues.rst",
            category="{cohort}",
            subcategory="tissues",
        ),
        md="results/{cohort}/summary.md",
        matched="results/{cohort}/tissues/matched.tsv",
        matched_genes="results/{cohort}/tissues/matched_genes.tsv",
        # the PDF, written beside the PNG below by the same call
        pdf="results/{cohort}/figures/tissues_mean_r.pdf",
        figure=report(
            "results/{cohort}/figures/tissues_mean_r.png",
            caption="../report/tissues_mean_r.rst",
            category="{cohort}",
            subcategory="tissues",
        ),
    log:
        "logs/{cohort}/tissue_summary.log",
    wildcard_constraints:
        cohort=_alternatives(MULTI_TISSUE),
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cohort=lambda wildcards: wildcards.cohort,
        tissues=lambda wildcards: tissues(config["cohorts"][wildcards.cohort]),
        models=MODELS,
        fdr=float(config["concordance"]["fdr"]),
        residualize=config["performance"]["residualize_predictions"],
        exclude=finetuned_here,
    script:
        "../workflow/scripts/tissue_summary.py"
