# The expression every predictor is judged on: transformed and residualized on the
# covariates (+ genotype PCs, + expression PCs) (hapexp.inputs.expression.run_prepare_expression).


rule prepare_expression:
    input:
        # expression plus the optional covariates / sample list of the cohort
        unpack(
            lambda wc: {
                "validation": f"results/{wc.cohort}/validation.json",
                "vcf": f"results/{wc.cohort}/variants/normalized.bcf",
                **{
                    key: config["cohorts"][wc.cohort][key]
                    for key in ("expression", "covariates", "samples")
                    if config["cohorts"][wc.cohort].get(key)
                },
                **genotype_pcs_input(wc),
            }
        ),
    output:
        prepared="results/{cohort}/expression/prepared.tsv",
        covariates="results/{cohort}/expression/covariates.tsv",
    log:
        "logs/{cohort}/prepare_expression.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cohort=cohort_cfg,
        transform=config["expression"]["transform"],
        n_pcs=config["expression"]["n_pcs"],
    script:
        "../workflow/scripts/prepare_expression.py"
