"""The cohort's VCF/BCF files and the reference FASTA: paths, format and index checks,
samples, contigs, contig lengths, contig-name harmonization.

`vcf_paths` is the one expansion of a cohort's `vcf` (a path, or a pattern with
``{chrom}`` filled from `chromosomes`): the rules (rules/common.smk) and the code call it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pysam

from hapexp.errors import InputError
from hapexp.inputs.gtf import match_contigs


def vcf_paths(vcf: str, chromosomes=None) -> list[str]:
    """One file, or the per-chromosome files of a pattern containing ``{chrom}``."""
    if "{chrom}" not in vcf:
        return [vcf]
    if not chromosomes:
        raise InputError(
            vcf,
            "the VCF path contains {chrom} but no chromosomes are listed",
            "Add `chromosomes: [...]` to the cohort in the config.",
        )
    return [vcf.replace("{chrom}", str(c)) for c in chromosomes]


def check_vcf_file(path) -> None:
    """VCF/BCF exists, is BGZF-compressed (BCF is BGZF too) and has a .tbi/.csi index."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "VCF not found", "Check the cohort's `vcf` (and `chromosomes`) in the config.")
    with open(path, "rb") as fh:
        head = fh.read(18)
    # BGZF = gzip member with the 'BC' extra subfield (SAM spec §4.1).
    if not (head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"):
        raise InputError(
            path,
            "VCF is not bgzip-compressed (plain text or plain gzip)",
            f"Recompress and index it: `bcftools view -Oz -o out.vcf.gz {path} && tabix -p vcf out.vcf.gz`.",
        )
    if not any(Path(str(path) + s).exists() for s in (".tbi", ".csi")):
        raise InputError(
            path,
            "VCF is not indexed: no index (.tbi or .csi) beside it",
            f"Index it: `tabix -p vcf {path}` (or `bcftools index {path}`; -c for BCF).",
        )


def vcf_samples(path) -> list[str]:
    """Sample ids of a VCF/BCF header, in file order."""
    with pysam.VariantFile(str(path)) as f:
        return list(f.header.samples)


def check_samples(vcf, samples: list[str]) -> None:
    """Every one of `samples` is in the file's header."""
    have = set(vcf_samples(vcf))
    missing = [x for x in samples if x not in have]
    if missing:
        raise InputError(
            vcf,
            f"{len(missing)} of the cohort's {len(samples)} samples are not in this file (first: {', '.join(missing[:3])})",
            "Give per-chromosome files with the same samples, or list the cohort's people in `samples`.",
        )


def vcf_contigs(path) -> list[str]:
    """Contigs that hold records (from the index), in index order."""
    out = subprocess.run(["bcftools", "index", "-s", str(path)], capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        return [line.split("\t")[0] for line in out.stdout.strip().splitlines()]
    with pysam.VariantFile(str(path)) as f:
        return list(f.header.contigs)


def fasta_lengths(fasta) -> dict[str, int]:
    if not Path(fasta).is_file():
        raise InputError(fasta, "reference FASTA not found", "Check `reference.fasta` in the config.")
    with pysam.FastaFile(str(fasta)) as fa:
        return dict(zip(fa.references, fa.lengths, strict=True))


def contig_map(vcf_path, vcf_names, fasta, fasta_names, harmonize: bool) -> dict[str, str]:
    """Map VCF contig names onto FASTA names; fail clearly when they don't match.

    Returns {vcf_name: fasta_name} for the contigs that need renaming (empty when the
    names already agree). Contigs absent from the FASTA are left to the caller.
    """
    fasta_set = set(fasta_names)
    direct = [c for c in vcf_names if c in fasta_set]
    m = match_contigs(vcf_names, fasta_names)
    renames = {k: v for k, v in m.items() if v is not None and v != k and k not in fasta_set}
    if renames and not harmonize:
        ex = ", ".join(f"{k}→{v}" for k, v in list(renames.items())[:3])
        raise InputError(
            vcf_path,
            f"chromosome names differ from the FASTA {fasta} ({ex})",
            "Set `variants.harmonize_chrom: true` to rename them, or rename the VCF with "
            "`bcftools annotate --rename-chrs`",
        )
    if not direct and not renames:
        raise InputError(
            vcf_path,
            f"no VCF contig matches a FASTA contig (VCF: {', '.join(vcf_names[:5])}; FASTA: {', '.join(list(fasta_names)[:5])})",
            "Use the reference genome the VCF was called against.",
        )
    return renames
