# The demo cohort: msprime haplotypes + expression drawn from the oracle model
# (hapexp.demo.simulate.run_simulate_demo). Deterministic from config["simulate"]["seed"].


SIM = config["simulate"]
SIM_OUTDIR = SIM["outdir"]


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
        seed=SIM["seed"],
        n_individuals=SIM["n_individuals"],
        n_chromosomes=SIM["n_chromosomes"],
        chromosome_length=SIM["chromosome_length"],
        n_genes=SIM["n_genes"],
        window=SIM["window"],
        fit_window=SIM["fit_window"],
    script:
        "../workflow/scripts/simulate_demo.py"
