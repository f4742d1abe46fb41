# The expression every predictor is judged on: transformed and residualized on the
# covariates (+ genotype PCs, + expression PCs) (hapexp.inputs.expression.run_prepare_expression).


rule prepare_expression:
    input:
        # expression plus the optional covariates / sample list of the cohort
        unpack(
            lambda wc: {
                "validation": f"results/{cohort_of(wc)}/validation.json",
                "vcf": f"results/{cohort_of(wc)}/variants/normalized.bcf",
                **{
                    key: unit_cfg(wc)[key]
                    for key in ("expression", "covariates", "samples")
                    if unit_cfg(wc).get(key)
                },
                **genotype_pcs_input(wc),
            }
        ),
    output:
        prepared="results/{unit}/expression/prepared.tsv",
        covariates="results/{unit}/expression/covariates.tsv",
    log:
        "logs/{unit}/prepare_expression.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cohort=unit_cfg,
        transform=config["expression"]["transform"],
        n_pcs=config["expression"]["n_pcs"],
    script:
        "../workflow/scripts/prepare_expression.py"
