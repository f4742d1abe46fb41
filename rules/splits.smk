# People into train/validation/test and genes into train/test, for everything trained
# on the cohort (hapexp.training.splits.run_splits).


rule splits:
    input:
        genes="results/{cohort}/genes.tsv",
        # every tissue's people (one split for the cohort: a test person is a test person in every tissue)
        prepared=lambda wc: [
            f"results/{u}/expression/prepared.tsv"
            for u in cohort_units(config["cohorts"], wc.cohort)
        ],
        sample_sheet=config["splits"]["sample_sheet"] or [],
    output:
        individuals="results/{cohort}/splits/individuals.tsv",
        genes_split="results/{cohort}/splits/genes.tsv",
        tissues_out="results/{cohort}/splits/tissues.tsv",
    log:
        "logs/{cohort}/splits.log",
    conda:
        "../envs/stats.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=config["splits"],
        tissues=lambda wc: [
            split_unit(u)[1] or "" for u in cohort_units(config["cohorts"], wc.cohort)
        ],
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
                "individuals": f"results/{cohort_of(wc)}/splits/individuals.tsv",
                **{
                    key: unit_cfg(wc)[key]
                    for key in ("expression", "covariates")
                    if unit_cfg(wc).get(key)
                },
                **genotype_pcs_input(wc),
            }
        ),
    output:
        prepared_split="results/{unit}/expression/prepared_split.tsv",
        covariates_split="results/{unit}/expression/covariates_split.tsv",
    log:
        "logs/{unit}/prepare_split_expression.log",
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
        "../workflow/scripts/prepare_split_expression.py"
