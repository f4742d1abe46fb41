# Downloads of public inputs listed in the config's `download:` section (see
# config/README.md and config/geuvadis.yaml). Each entry's `path` is produced by
# rule `download` (resumable, checksummed, atomic: hapexp.inputs.download); entries with
# `faidx: true` also get `<path>.fai` from rule `download_faidx`. All run on the
# submitting host (`localrule`): cluster compute nodes are often offline.
# `snakemake download_all --configfile ...` fetches everything up front.

import hapexp.inputs.download as dl

DOWNLOAD_BY_PATH = {e["path"]: e for e in dl.download_entries(config).values()}


rule download_all:
    input:
        dl.all_targets(DOWNLOAD_BY_PATH),
    localrule: True


rule download:
    input:
        # order only (ancient: a placed data/index pair is never refetched)
        lambda wc: [ancient(p) for p in [dl.index_of(wc.dlpath, DOWNLOAD_BY_PATH)] if p],
    output:
        "{dlpath}",
    log:
        "logs/download/{dlpath}.log",
    wildcard_constraints:
        dlpath=dl.paths_regex(DOWNLOAD_BY_PATH),
    localrule: True
    conda:
        "../envs/variants.yaml"
    resources:
        mem_mb=1000,
        runtime=24 * 60,
    params:
        entry=lambda wc: DOWNLOAD_BY_PATH[wc.dlpath],
    script:
        "../workflow/scripts/download.py"


rule download_faidx:
    input:
        "{dlfasta}",
    output:
        "{dlfasta}.fai",
    log:
        "logs/download/{dlfasta}.faidx.log",
    wildcard_constraints:
        dlfasta=dl.paths_regex(p for p, e in DOWNLOAD_BY_PATH.items() if e.get("faidx")),
    localrule: True
    conda:
        "../envs/variants.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    script:
        "../workflow/scripts/download_faidx.py"
