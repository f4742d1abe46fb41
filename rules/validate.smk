# Up-front checks of a cohort's inputs (hapexp.inputs.validate.run_validate_inputs); the
# roots of the per-cohort DAG (normalize_variants, genes, prepare_expression) take its
# output as input, so every other rule waits for it.


rule validate_inputs:
    input:
        unpack(cohort_input_files),
    output:
        validation="results/{cohort}/validation.json",
    log:
        "logs/{cohort}/validate_inputs.log",
    conda:
        "../envs/variants.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=lambda wildcards: config,
        configfile=lambda wildcards: ", ".join(map(str, workflow.configfiles))
        or "config",
    script:
        "../workflow/scripts/validate_inputs.py"
