# SuSiE fine-mapping per chunk on the eQTL scan's problem (its people, cis variants, variant
# policy and covariates), then per-variant PIPs and 95 % credible sets per unit; a unit's
# external credible sets (cohorts.<c>[.tissues.<t>].credible_sets) in the same layout
# (hapexp.linear.finemap: run_finemap, run_gather_finemap, run_external_finemap).


rule finemap:
    input:
        from_cohort("results/{cohort}/variants/normalized.bcf.csi"),  # the BCF's index (bcftools reads it)
        prepared="results/{unit}/expression/prepared.tsv",
        covariates="results/{unit}/expression/covariates.tsv",
        vcf=from_cohort("results/{cohort}/variants/normalized.bcf"),
        chunk=from_cohort("results/{cohort}/chunks/{chunk}.tsv"),
    output:
        pips="results/{unit}/finemap/{chunk}.parquet",
        credible_sets="results/{unit}/finemap/{chunk}.cs.tsv",
    log:
        "logs/{unit}/finemap/{chunk}.log",
    benchmark:
        "benchmarks/{unit}/finemap/{chunk}.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        window=config["eqtl"]["window"],
        models=config["models"],
        maf=config["eqtl"]["maf"],
        policies=config["variants"],
        susie_options=config["finemap"],
    script:
        "../workflow/scripts/finemap.py"


rule gather_finemap:
    input:
        pips_chunks=per_chunk("results/{unit}/finemap/{chunk}.parquet"),
        cs_chunks=per_chunk("results/{unit}/finemap/{chunk}.cs.tsv"),
    output:
        pips="results/{unit}/finemap/pips.parquet",
        credible_sets="results/{unit}/finemap/credible_sets.tsv",
    log:
        "logs/{unit}/gather_finemap.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    script:
        "../workflow/scripts/gather_finemap.py"


# External fine-mapping (eQTL Catalogue, GTEx v8 DAP-G or SuSiE) of a unit with
# `credible_sets`: read on the cohort's build (REF checked against its FASTA), matched to its
# normalized variants, written on the eQTL scan's cis variants; the causal benchmark's PIPs.
rule external_finemap:
    input:
        from_cohort("results/{cohort}/variants/normalized.bcf.csi"),  # the BCF's index (bcftools reads it)
        credible_sets=credible_sets_file,
        vcf=from_cohort("results/{cohort}/variants/normalized.bcf"),
        genes=from_cohort("results/{cohort}/genes.tsv"),
        prepared="results/{unit}/expression/prepared.tsv",
        fasta=config["reference"]["fasta"],
    output:
        pips="results/{unit}/finemap/external.parquet",
        facts="results/{unit}/finemap/external.json",
    log:
        "logs/{unit}/external_finemap.log",
    benchmark:
        "benchmarks/{unit}/external_finemap.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        source=credible_sets_source,
        build=config["reference"].get("build"),
        unit_tissue=unit_tissue,
        window=config["eqtl"]["window"],
        models=config["models"],
        maf=config["eqtl"]["maf"],
        policies=config["variants"],
    script:
        "../workflow/scripts/external_finemap.py"
