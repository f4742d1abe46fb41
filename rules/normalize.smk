# The cohort's variants near its genes (the largest model window, or the cis windows of
# the linear models), its samples only, split and left-aligned by bcftools, REF checked
# (hapexp.variants.normalize.run_normalize_variants).


rule normalize_variants:
    input:
        validated,
        genes="results/{cohort}/genes.tsv",
        samples="results/{cohort}/samples.txt",
        fasta=config["reference"]["fasta"],
        vcf=cohort_vcfs,
    output:
        bcf="results/{cohort}/variants/normalized.bcf",
        csi="results/{cohort}/variants/normalized.bcf.csi",
    log:
        "logs/{cohort}/normalize_variants.log",
    benchmark:
        "benchmarks/{cohort}/normalize_variants.tsv"
    conda:
        "../envs/variants.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        half_width=VARIANT_HALF_WIDTH,
        gene_body_flank=GENE_BODY_FLANK,
        harmonize=config["variants"]["harmonize_chrom"],
    script:
        "../workflow/scripts/normalize_variants.py"
