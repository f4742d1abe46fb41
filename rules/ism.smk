# In-silico mutagenesis: every variant of a gene's window (MAF filter; SNVs unless
# ism.indels) inserted alone into the reference; score = read-out(alt) - read-out(ref)
# with predict's read-out; models that support reference reuse (Enformer: each variant's
# receptive field of the conv tower, hapexp.models.enformer.ism_reuse) recompute only what
# the variant changes. GPU like predict. Scores below the
# measured noise floor are NaN (hapexp.engine.precision). hapexp.engine.ism: run_ism,
# run_gather_ism.


rule ism:
    input:
        # the model's files (weights, targets table; a hub id is not a file)
        lambda wildcards: model_input_files(model_cfg(wildcards)),
        index="results/{cohort}/haplotypes/{chunk}.npz",
        exons="results/{cohort}/exons.tsv",
    output:
        table="results/{cohort}/ism/{model}/{chunk}.parquet",
        # Precision budget and noise floor of a reduced-precision run (header only in fp32).
        precision="results/{cohort}/ism/{model}/{chunk}.precision.tsv",
    log:
        "logs/{cohort}/ism/{model}/{chunk}.log",
    benchmark:
        "benchmarks/{cohort}/ism/{model}/{chunk}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: model_threads
    resources:
        gpu=model_resources,
        mem_mb=16000,
        runtime=240,
    params:
        spec=model_cfg,
        ism_cfg=config["ism"],
        audit_cfg=config["precision_audit"],
    script:
        "../workflow/scripts/ism.py"


rule gather_ism:
    input:
        chunks=per_chunk("results/{cohort}/ism/{model}/{chunk}.parquet"),
    output:
        table="results/{cohort}/ism/{model}.parquet",
    log:
        "logs/{cohort}/ism/gather_{model}.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../workflow/scripts/gather_ism.py"


# A multi-tissue cohort's ISM as one tissue reads it: the score of its tracks (the
# column score:<tissue> of the cohort's one ISM run).
rule tissue_ism:
    input:
        table="results/{cohort}/ism/{model}.parquet",
    output:
        ism="results/{cohort}/{tissue}/ism/{model}.parquet",
    log:
        "logs/{cohort}/{tissue}/ism/{model}.log",
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        tissue=lambda wildcards: wildcards.tissue,
    script:
        "../workflow/scripts/tissue_ism.py"
