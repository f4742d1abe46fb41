# Personal haplotypes: gene table, normalized variants, chunks, compact haplotype
# indexes (no sequences on disk) and an optional personal-FASTA export.


# The largest model window: every haplotype index covers it.
HAP_WINDOW = max(int(model_spec(m)["window"]) for m in config["models"].values())
# Regions kept by normalize_variants: that window plus a flank to re-fill deletions,
# or the eQTL / elastic-net cis windows if larger (TSS ± flank; gene-body windows
# add each gene's body ± their flank).
LINEAR_WINDOWS = [
    resolve_window(config[stage]["window"], config["models"])
    for stage in ("eqtl", "elasticnet")
]
VARIANT_HALF_WIDTH = max(
    HAP_WINDOW // 2 + max(4096, HAP_WINDOW // 4),
    *(window_flank(w) for w in LINEAR_WINDOWS if w[0] != "gene_body"),
)
GENE_BODY_FLANK = max([w[1] for w in LINEAR_WINDOWS if w[0] == "gene_body"], default=0)


rule genes:
    input:
        validated,
        fasta=config["reference"]["fasta"],
        exons=config["genes"].get("exons") or [],
        expression=lambda wildcards: config["cohorts"][wildcards.cohort]["expression"],
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
        genes=config["genes"],
        cohort=cohort_cfg,
        harmonize=config["variants"]["harmonize_chrom"],
    script:
        "../workflow/scripts/genes.py"


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


rule haplotypes:
    input:
        chunk="results/{cohort}/chunks/{chunk}.tsv",
        samples="results/{cohort}/samples.txt",
        bcf="results/{cohort}/variants/normalized.bcf",
        csi="results/{cohort}/variants/normalized.bcf.csi",
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
