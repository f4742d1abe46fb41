# Personal haplotypes: compact haplotype indexes per chunk (no sequences on disk) and an
# optional personal-FASTA export (hapexp.sequences.haplotypes: run_haplotypes,
# run_export_fasta).


rule haplotypes:
    input:
        "results/{cohort}/variants/normalized.bcf.csi",  # the BCF's index (bcftools reads it)
        chunk="results/{cohort}/chunks/{chunk}.tsv",
        samples="results/{cohort}/samples.txt",
        bcf="results/{cohort}/variants/normalized.bcf",
        fasta=config["reference"]["fasta"],
    output:
        index="results/{cohort}/haplotypes/{chunk}.npz",
        stats="results/{cohort}/haplotypes/{chunk}.stats.tsv",
    log:
        "logs/{cohort}/haplotypes/{chunk}.log",
    benchmark:
        "benchmarks/{cohort}/haplotypes/{chunk}.tsv"
    conda:
        "../envs/variants.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        window=HAP_WINDOW,
        policies=config["variants"],
    script:
        "../workflow/scripts/haplotypes.py"


rule export_fasta:
    input:
        index=per_chunk("results/{cohort}/haplotypes/{chunk}.npz"),
    output:
        fasta="results/{cohort}/export/haplotypes.fa",
    log:
        "logs/{cohort}/export_fasta.log",
    conda:
        "../envs/variants.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        genes=config["export"]["genes"],
        samples=config["export"]["samples"],
        length=config["export"]["window"],
        rc_minus=config["export"]["rc_minus"],
    script:
        "../workflow/scripts/export_fasta.py"
