# People into train/validation/test and genes into train/test, for everything trained
# on the cohort (hapexp.training.splits.run_splits).


rule splits:
    input:
        genes="results/{cohort}/genes.tsv",
        prepared="results/{cohort}/expression/prepared.tsv",
        sample_sheet=config["splits"]["sample_sheet"] or [],
    output:
        individuals="results/{cohort}/splits/individuals.tsv",
        genes_split="results/{cohort}/splits/genes.tsv",
    log:
        "logs/{cohort}/splits.log",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=config["splits"],
    script:
        "../workflow/scripts/splits.py"


# The expression everything trained on the cohort fits on (fine-tuning, the heads, the split
# verdict): transform, expression PCs and covariate regression fitted on the training people,
# applied to the validation and test people (hapexp.training.splits.run_prepare_split_expression).
# The main verdict keeps rule prepare_expression's all-people preparation.
rule prepare_split_expression:
    input:
        # the people and their split, plus the cohort's expression and optional covariates
        unpack(
            lambda wc: {
                "individuals": f"results/{wc.cohort}/splits/individuals.tsv",
                **{
                    key: config["cohorts"][wc.cohort][key]
                    for key in ("expression", "covariates")
                    if config["cohorts"][wc.cohort].get(key)
                },
                **genotype_pcs_input(wc),
            }
        ),
    output:
        prepared_split="results/{cohort}/expression/prepared_split.tsv",
        covariates_split="results/{cohort}/expression/covariates_split.tsv",
    log:
        "logs/{cohort}/prepare_split_expression.log",
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
        "../workflow/scripts/prepare_split_expression.py"
