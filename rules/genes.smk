# The cohort's genes (in the expression, on a VCF contig and in the FASTA), their exons
# and samples, and their split into the fixed number of chunks every per-gene stage runs
# on (hapexp.inputs.genes: run_genes, run_chunk_genes).


rule genes:
    input:
        validated,
        fasta=config["reference"]["fasta"],
        exons=config["genes"].get("exons") or [],
        expression=lambda wildcards: cohort_input_files(wildcards)["expression"],
        vcf=cohort_vcfs,
    output:
        genes="results/{cohort}/genes.tsv",
        exons="results/{cohort}/exons.tsv",
        samples="results/{cohort}/samples.txt",
    log:
        "logs/{cohort}/genes.log",
    conda:
        "../envs/variants.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        genes_cfg=config["genes"],
        cohort_cfg=cohort_cfg,
        harmonize=config["variants"]["harmonize_chrom"],
    script:
        "../workflow/scripts/genes.py"


rule chunk_genes:
    input:
        genes="results/{cohort}/genes.tsv",
    output:
        expand("results/{{cohort}}/chunks/{chunk}.tsv", chunk=CHUNKS),
    log:
        "logs/{cohort}/chunk_genes.log",
    conda:
        "../envs/variants.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/chunk_genes.py"
