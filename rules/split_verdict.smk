# Every predictor on the test people, training vs held-out genes, beside an elastic net
# fitted on the training people only: the elastic net per chunk, then the verdict over
# every gene (hapexp.verdict.split_verdict: run_split_verdict_elasticnet,
# run_split_verdict).


rule split_verdict_elasticnet:
    input:
        from_cohort("results/{cohort}/variants/normalized.bcf.csi"),  # the BCF's index (bcftools reads it)
        # fitted on the training people, applied to the others (rule prepare_split_expression)
        prepared="results/{unit}/expression/prepared_split.tsv",
        individuals=from_cohort("results/{cohort}/splits/individuals.tsv"),
        genes_split=from_cohort("results/{cohort}/splits/genes.tsv"),
        chunk=from_cohort("results/{cohort}/chunks/{chunk}.tsv"),
        vcf=from_cohort("results/{cohort}/variants/normalized.bcf"),
        # people per tissue and split: a tissue below splits.min_test_people is not fitted
        tissues=from_cohort("results/{cohort}/splits/tissues.tsv"),
    output:
        elasticnet="results/{unit}/splits/{chunk}.elasticnet_train_people.matrix.tsv",
    log:
        "logs/{unit}/split_verdict/{chunk}.log",
    benchmark:
        "benchmarks/{unit}/split_verdict/{chunk}.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        tissue=lambda wildcards: split_unit(wildcards.unit)[1] or "",
        cfg={
            "elasticnet": config["elasticnet"],
            "models": config["models"],
            "policies": config["variants"],
        },
    script:
        "../workflow/scripts/split_verdict_elasticnet.py"


rule split_verdict:
    input:
        # fitted on the training people, applied to the others (rule prepare_split_expression)
        prepared="results/{unit}/expression/prepared_split.tsv",
        covariates="results/{unit}/expression/covariates_split.tsv",
        individuals=from_cohort("results/{cohort}/splits/individuals.tsv"),
        genes_split=from_cohort("results/{cohort}/splits/genes.tsv"),
        elasticnet_chunks=per_chunk(
            "results/{unit}/splits/{chunk}.elasticnet_train_people.matrix.tsv"
        ),
        matrices=expand("results/{{unit}}/predict/{model}.matrix.tsv", model=MODELS),
        heads=expand(
            "results/{{unit}}/heads/{model}.{head}.matrix.tsv",
            model=HEADS,
            head=["gene", "crossgene"],
        ),
        # models not in strict fp32: the noise their predict jobs measured sets their constancy floor
        precision=reduced_precision_tables,
        # people per tissue and split: a tissue below splits.min_test_people is not scored
        tissues=from_cohort("results/{cohort}/splits/tissues.tsv"),
    output:
        performance="results/{unit}/splits/performance.tsv",
        verdict="results/{unit}/splits/verdict.tsv",
        elasticnet="results/{unit}/splits/elasticnet_train_people.matrix.tsv",
    log:
        "logs/{unit}/split_verdict.log",
    benchmark:
        "benchmarks/{unit}/split_verdict.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        tissue=lambda wildcards: split_unit(wildcards.unit)[1] or "",
        models=MODELS,
        head_names=[f"{m}_head_{h}" for m in HEADS for h in ("gene", "crossgene")],
        # heads fitted gene by gene: marked as per-gene models in the split tables
        per_gene=[f"{m}_head_gene" for m in HEADS],
        cfg={
            "floors": MODEL_FLOORS,
            "noise_z": config["precision_audit"]["noise_floor_z"],
            "residualize": config["performance"]["residualize_predictions"],
        },
    script:
        "../workflow/scripts/split_verdict.py"
