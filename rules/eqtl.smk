# cis-eQTL nominal scan and permutation pass per chunk, then eGenes and per-gene nominal
# thresholds per cohort: tensorQTL's statistics (hapexp.linear.eqtl: run_eqtl,
# run_gather_eqtl).


rule eqtl:
    input:
        from_cohort("results/{cohort}/variants/normalized.bcf.csi"),  # the BCF's index (bcftools reads it)
        prepared="results/{unit}/expression/prepared.tsv",
        covariates="results/{unit}/expression/covariates.tsv",
        vcf=from_cohort("results/{cohort}/variants/normalized.bcf"),
        chunk=from_cohort("results/{cohort}/chunks/{chunk}.tsv"),
    output:
        nominal="results/{unit}/eqtl/{chunk}.parquet",
        top="results/{unit}/eqtl/{chunk}.top.tsv",
    log:
        "logs/{unit}/eqtl/{chunk}.log",
    benchmark:
        "benchmarks/{unit}/eqtl/{chunk}.tsv"
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
        permutations=config["eqtl"]["permutations"],
        seed=config["eqtl"]["seed"],
        policies=config["variants"],
    script:
        "../workflow/scripts/eqtl.py"


rule gather_eqtl:
    input:
        nominal_chunks=per_chunk("results/{unit}/eqtl/{chunk}.parquet"),
        top_chunks=per_chunk("results/{unit}/eqtl/{chunk}.top.tsv"),
    output:
        nominal="results/{unit}/eqtl/nominal.parquet",
        genes="results/{unit}/eqtl/genes.tsv",
        summary="results/{unit}/eqtl/egenes.json",
    log:
        "logs/{unit}/gather_eqtl.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        fdr=config["eqtl"]["fdr"],
    script:
        "../workflow/scripts/gather_eqtl.py"
