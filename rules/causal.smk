# Causal-variant benchmark per unit: every model's |ISM| ranks the variants fine-mapping
# calls causal (PIP >= causal.pip_positive: the in-cohort SuSiE's, or the unit's external
# credible sets when it has `credible_sets`) against distance/MAF-matched non-causal ones of
# the same genes, on the variants every model's ISM holds; beside the distance and
# elastic-net baselines; AUROC/AUPRC with bootstrap intervals over genes, sign agreement
# with the posterior effects; fine-tuned models on the held-out genes; the PIPs'
# calibration against a known truth (causal.truth: the demo's truth.tsv)
# (hapexp.verdict.causal: run_causal_benchmark).


rule causal_benchmark:
    input:
        # the known causal variants when causal.truth is set (the simulated demo)
        unpack(causal_truth),
        # the in-cohort SuSiE's PIPs, or the unit's external credible sets (and what was matched)
        unpack(causal_pips),
        ism=expand("results/{{unit}}/ism/{model}.parquet", model=MODELS),
        weights="results/{unit}/elasticnet/weights.db",
        genes_split=from_cohort("results/{cohort}/splits/genes.tsv"),
    output:
        # the PDF, written beside the PNG below by the same call
        "results/{unit}/figures/causal_curves.pdf",
        table="results/{unit}/causal/benchmark.tsv",
        matched="results/{unit}/causal/matched.tsv",
        calibration="results/{unit}/causal/calibration.tsv",
        # what rule summary reads: summary.tsv's columns per predictor, summary.md's section
        headline="results/{unit}/causal/headline.tsv",
        section="results/{unit}/causal/summary.md",
        curves=report(
            "results/{unit}/figures/causal_curves.png",
            caption="../report/causal_curves.rst",
            category="{unit}",
            subcategory="all predictors",
        ),
    log:
        "logs/{unit}/causal_benchmark.log",
    benchmark:
        "benchmarks/{unit}/causal_benchmark.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        models=MODELS,
        # each model's input length: ISM exists only inside it (the common window is the smallest)
        windows={m: int(resolved_model(m)["window"]) for m in MODELS},
        # models fine-tuned on this cohort: scored on the held-out genes only
        finetuned=finetuned_here,
        cfg=config["causal"],
    script:
        "../workflow/scripts/causal_benchmark.py"
