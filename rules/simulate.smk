# The demo cohort: msprime haplotypes + expression drawn from the oracle model
# (hapexp.demo.simulate.run_simulate_demo). Deterministic from config["simulate"]["seed"].


# With simulate.tissues [a, b, ...] the per-tissue outputs (expression, noiseless,
# covariates, truth, truth_genes) are lists of expression_a.tsv, ... in tissue order, plus
# samples.tsv; without, the one-tissue files (hapexp.demo.files, the contract with the script).

from hapexp.demo.files import rule_outputs  # noqa: E402

SIM = config["simulate"]
SIM_OUTDIR = SIM["outdir"]
SIM_TISSUES = list(SIM.get("tissues") or [])


rule simulate_demo:
    output:
        **rule_outputs(SIM_OUTDIR, SIM_TISSUES),
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
        tissues=SIM_TISSUES,
    script:
        "../workflow/scripts/simulate_demo.py"
