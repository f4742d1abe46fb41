# cis-eQTL nominal scan and permutation pass per chunk, then eGenes and per-gene nominal
# thresholds per cohort: tensorQTL's statistics (hapexp.linear.eqtl: run_eqtl,
# run_gather_eqtl).


rule eqtl:
    input:
        "results/{cohort}/variants/normalized.bcf.csi",  # the BCF's index (bcftools reads it)
        prepared="results/{cohort}/expression/prepared.tsv",
        covariates="results/{cohort}/expression/covariates.tsv",
        vcf="results/{cohort}/variants/normalized.bcf",
        chunk="results/{cohort}/chunks/{chunk}.tsv",
    output:
        nominal="results/{cohort}/eqtl/{chunk}.parquet",
        top="results/{cohort}/eqtl/{chunk}.top.tsv",
    log:
        "logs/{cohort}/eqtl/{chunk}.log",
    benchmark:
        "benchmarks/{cohort}/eqtl/{chunk}.tsv"
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
        nominal_chunks=per_chunk("results/{cohort}/eqtl/{chunk}.parquet"),
        top_chunks=per_chunk("results/{cohort}/eqtl/{chunk}.top.tsv"),
    output:
        nominal="results/{cohort}/eqtl/nominal.parquet",
        genes="results/{cohort}/eqtl/genes.tsv",
        summary="results/{cohort}/eqtl/egenes.json",
    log:
        "logs/{cohort}/gather_eqtl.log",
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
