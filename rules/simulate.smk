# Demo cohort: msprime haplotypes + expression drawn from the oracle model (see
# workflow/scripts/hapexp/demo/). Deterministic from config["simulate"]["seed"].


SIM = config.get("simulate", {})
SIM_OUTDIR = SIM.get("outdir", "resources/demo")


rule simulate_demo:
    output:
        fasta=f"{SIM_OUTDIR}/reference.fa",
        fai=f"{SIM_OUTDIR}/reference.fa.fai",
        vcf=f"{SIM_OUTDIR}/cohort.vcf.gz",
        tbi=f"{SIM_OUTDIR}/cohort.vcf.gz.tbi",
        genes=f"{SIM_OUTDIR}/genes.tsv",
        exons=f"{SIM_OUTDIR}/exons.tsv",
        expression=f"{SIM_OUTDIR}/expression.tsv",
        noiseless=f"{SIM_OUTDIR}/expression_noiseless.tsv",
        covariates=f"{SIM_OUTDIR}/covariates.tsv",
        truth=f"{SIM_OUTDIR}/truth.tsv",
        truth_genes=f"{SIM_OUTDIR}/truth_genes.tsv",
        oracle=f"{SIM_OUTDIR}/oracle.pt",
    log:
        "logs/simulate_demo.log",
    benchmark:
        "benchmarks/simulate_demo.tsv"
    conda:
        "../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seed=SIM.get("seed", 7),
        n_individuals=SIM.get("n_individuals", 100),
        n_chromosomes=SIM.get("n_chromosomes", 2),
        chromosome_length=SIM.get("chromosome_length", 400000),
        n_genes=SIM.get("n_genes", 30),
        window=SIM.get("window", 2048),
        fit_window=SIM.get("fit_window"),
    script:
        "../workflow/scripts/simulate_demo.py"
