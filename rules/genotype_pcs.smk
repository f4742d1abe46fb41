# Genotype principal components of the cohort's people from its LD-pruned common SNVs
# (bcftools +prune), added to the covariates by rule prepare_expression when
# genotype_pcs.n_pcs > 0 (hapexp.variants.genotype_pcs.run_genotype_pcs).


rule genotype_pcs:
    input:
        "results/{cohort}/variants/normalized.bcf.csi",  # the BCF's index (bcftools reads it)
        bcf="results/{cohort}/variants/normalized.bcf",
    output:
        pcs="results/{cohort}/genotype_pcs.tsv",
    log:
        "logs/{cohort}/genotype_pcs.log",
    benchmark:
        "benchmarks/{cohort}/genotype_pcs.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        n_pcs=config["genotype_pcs"]["n_pcs"],
        maf=config["genotype_pcs"]["maf"],
        r2=config["genotype_pcs"]["r2"],
        window=config["genotype_pcs"]["window"],
    script:
        "../workflow/scripts/genotype_pcs.py"
