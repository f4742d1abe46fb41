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
