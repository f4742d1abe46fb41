"""Normalization of the cohort's VCF/BCF with bcftools, and the REF check.

`normalize` is what every downstream reader uses: records restricted to the regions
around the genes, chromosome names optionally harmonized onto the FASTA's,
`bcftools norm -m -any -f ref` (split multi-allelics, left-align), then a
REF-vs-FASTA check (`RefCheck`, a consumer of the one scanner `hapexp.variants.scan`)
that fails with a count and the first examples.

Coordinates: VCF positions are 1-based; regions are 0-based half-open `[start0, end0)`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pysam

from hapexp.errors import InputError
from hapexp.variants.files import check_samples, check_vcf_file, contig_map, fasta_lengths, vcf_contigs
from hapexp.variants.scan import scan, write_regions

log = logging.getLogger(__name__)


def _run(cmds: list[list[str]], out_path) -> None:
    """Run a pipeline of commands (stdout → stdin), fail with the stderr of the failing one."""
    procs, prev = [], None
    errs = []
    for i, cmd in enumerate(cmds):
        last = i == len(cmds) - 1
        err = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the pipeline
        errs.append(err)
        stdout = open(out_path, "wb") if last else subprocess.PIPE  # noqa: SIM115
        p = subprocess.Popen(cmd, stdin=prev, stdout=stdout, stderr=err)
        if prev is not None:
            prev.close()
        prev = p.stdout
        procs.append((p, stdout if last else None))
    failed = []
    for (p, fh), err, cmd in zip(procs, errs, cmds, strict=True):
        rc = p.wait()
        if fh is not None:
            fh.close()
        err.seek(0)
        msg = err.read().decode(errors="replace")
        if msg.strip():
            for line in msg.strip().splitlines()[:20]:
                log.info("%s: %s", cmd[0] + " " + cmd[1], line)
        if rc != 0:
            failed.append((cmd, msg))
    if failed:
        cmd, msg = failed[0]
        raise RuntimeError(f"{' '.join(cmd)} failed: {msg.strip()[-2000:]}")


def _part_pipeline(vcf, i, fasta, fa_names, tmp: Path, regions, harmonize, samples_file) -> tuple:
    """Commands that turn one input file into a sorted, normalized BCF part (None: nothing to read)."""
    names = vcf_contigs(vcf)
    renames = contig_map(vcf, names, fasta, fa_names, harmonize)
    back = {v: k for k, v in renames.items()}
    # --no-version: no command line/date in the header, so reruns give identical files.
    view = ["bcftools", "view", "--no-version", "-Ou"]
    if samples_file is not None:
        # Only the cohort's people go through norm/sort and every later query
        # (1000 Genomes: 445 of 2,504).
        view += ["-S", str(samples_file)]
    if regions is not None:
        reg = regions.copy()
        reg["chrom"] = [back.get(c, c) for c in reg["chrom"]]
        reg = reg[reg["chrom"].isin(names)]
        if reg.empty:
            return None, 0
        rfile = tmp / f"regions{i}.tsv"
        write_regions(reg, rfile)
        view += ["-R", str(rfile)]
    cmds = [[*view, str(vcf)]]
    if renames:
        mfile = tmp / f"rename{i}.tsv"
        mfile.write_text("".join(f"{k}\t{v}\n" for k, v in renames.items()))
        cmds.append(["bcftools", "annotate", "--no-version", "--rename-chrs", str(mfile), "-Ou"])
    cmds.append(["bcftools", "norm", "--no-version", "-m", "-any", "-f", str(fasta), "-c", "w", "-Ou"])
    cmds.append(["bcftools", "sort", "-T", str(tmp / f"sort{i}"), "-Ob"])
    return cmds, len(renames)


def normalize(
    vcfs: list[str],
    fasta,
    out_bcf,
    regions: pd.DataFrame | None = None,
    harmonize: bool = True,
    threads: int = 1,
    samples: list[str] | None = None,
) -> dict:
    """Restrict, subset samples, harmonize contig names, split + left-align, check REF;
    write an indexed BCF.

    `regions` (chrom [FASTA names], start0, end0) limits the records to those
    overlapping them; `samples` keeps only those people, in that order (every input
    file must have them). Several files (e.g. one per chromosome, or one chromosome
    split in pieces) are normalized separately, `threads` at a time, each part
    indexed, then merged by position with `bcftools concat -a`. Returns counts for
    the log. Writes `out_bcf` and `out_bcf.csi` atomically (both or neither).
    """
    from concurrent.futures import ThreadPoolExecutor

    fa_len = fasta_lengths(fasta)
    out_bcf = Path(out_bcf)
    out_bcf.parent.mkdir(parents=True, exist_ok=True)
    threads = max(1, int(threads))
    stats: dict = {"input_files": len(vcfs)}
    with tempfile.TemporaryDirectory(dir=out_bcf.parent, prefix=".norm.") as tmp:
        tmp = Path(tmp)
        samples_file = None
        if samples is not None:
            samples = list(samples)
            if not samples:
                raise InputError(vcfs[0], "no sample left to normalize", "Check the cohort's samples.")
            samples_file = tmp / "samples.txt"
            samples_file.write_text("\n".join(samples) + "\n")
            stats["samples"] = len(samples)
        jobs = []
        for i, vcf in enumerate(vcfs):
            check_vcf_file(vcf)
            if samples is not None:
                check_samples(vcf, samples)
            cmds, n_renamed = _part_pipeline(
                vcf, i, fasta, list(fa_len), tmp, regions, harmonize, samples_file
            )
            if n_renamed:
                stats["renamed_contigs"] = stats.get("renamed_contigs", 0) + n_renamed
            if cmds is not None:
                jobs.append((cmds, tmp / f"part{i}.bcf"))

        def run_part(job):
            cmds, part = job
            _run(cmds, part)
            # concat -a merges by position through the parts' indexes
            subprocess.run(["bcftools", "index", "-f", str(part)], check=True, capture_output=True)
            return part

        # Each part is a 4-process pipeline; `threads` of them at a time.
        with ThreadPoolExecutor(max_workers=min(threads, max(1, len(jobs)))) as pool:
            parts = list(pool.map(run_part, jobs))
        if not parts:
            raise InputError(vcfs[0], "no VCF record lies in the gene regions", "Check genes vs VCF contigs.")
        final = tmp / "all.bcf"
        if len(parts) == 1:
            shutil.move(parts[0], final)
        else:
            _run(
                [
                    [
                        "bcftools", "concat", "--no-version", "-a", "--threads", str(threads),
                        "-Ob", *map(str, parts),
                    ]
                ],
                final,
            )  # fmt: skip
        subprocess.run(["bcftools", "index", "-f", str(final)], check=True, capture_output=True)
        stats.update(check_ref(final, fasta, source=vcfs[0] if len(vcfs) == 1 else ", ".join(vcfs)))
        os.replace(str(final) + ".csi", str(out_bcf) + ".csi")
        os.replace(final, out_bcf)
    return stats


class RefCheck:
    """REF of every record must equal the FASTA: counts records and mismatches, keeps the
    first examples; a consumer of `hapexp.variants.scan` blocks (sites CHROM, POS, REF).

    The FASTA is fetched in `block`-bp pieces (one fetch per record would be slow on
    chromosome-scale files); memory is one piece. `to_fasta` maps the file's contig
    names onto the FASTA's where they differ.
    """

    def __init__(
        self, fasta, to_fasta: dict[str, str] | None = None, max_examples: int = 5, block: int = 1 << 20
    ):
        self.fasta = fasta
        self.to_fasta = to_fasta or {}
        self.max_examples = max_examples
        self.block = block
        self.records, self.mismatches = 0, 0
        self.examples: list[str] = []
        self._fa = pysam.FastaFile(str(fasta))
        self._blk = (None, 0, b"")  # FASTA contig, 0-based start, upper-case bases

    def __enter__(self) -> RefCheck:
        return self

    def __exit__(self, *exc) -> None:
        self._fa.close()

    def update(self, sites) -> None:
        """Check records given as [CHROM, POS (1-based), REF, ...] (bytes)."""
        for chrom, pos, ref, *_ in sites:
            self.records += 1
            pos0 = int(pos) - 1
            c, s0, seq = self._blk
            fa_chrom = self.to_fasta.get(chrom.decode(), chrom.decode())
            if c != fa_chrom or not (s0 <= pos0 and pos0 + len(ref) <= s0 + len(seq)):
                c, s0 = fa_chrom, pos0
                seq = self._fa.fetch(c, s0, s0 + self.block + len(ref)).upper().encode()
                self._blk = (c, s0, seq)
            got = seq[pos0 - s0 : pos0 - s0 + len(ref)]
            if got != ref.upper():
                self.mismatches += 1
                if len(self.examples) < self.max_examples:
                    self.examples.append(
                        f"{chrom.decode()}:{pos0 + 1} REF={ref.decode()} FASTA={got.decode() or '(past end)'}"
                    )

    def raise_if_mismatched(self, source) -> None:
        if self.mismatches:
            raise InputError(
                source,
                f"{self.mismatches} of {self.records} records have a REF that differs from the FASTA "
                f"{self.fasta} (first: {'; '.join(self.examples)})",
                "Use the FASTA of the VCF's genome build (GRCh37 vs GRCh38?), or fix the records "
                "with `bcftools norm -c s -f FASTA`.",
                where=f"record {self.examples[0].split(' ')[0]}",
            )


def check_ref(bcf, fasta, source=None, max_examples: int = 5, block: int = 1 << 20) -> dict:
    """REF of every record of `bcf` must equal the FASTA; raise InputError with count +
    examples (`RefCheck` over the whole file)."""
    with (
        RefCheck(fasta, max_examples=max_examples, block=block) as ref,
        scan(bcf, ("CHROM", "POS", "REF")) as blocks,
    ):
        for b in blocks:
            ref.update(b.sites)
    ref.raise_if_mismatched(source or bcf)
    return {"records": ref.records, "ref_mismatch": 0}


def run_normalize_variants(genes, samples, vcf, fasta, bcf, half_width: int, gene_body_flank: int,
                           harmonize: bool, threads: int) -> None:  # fmt: skip
    """Rule `normalize_variants`: the cohort's records around its genes (TSS ± `half_width`,
    plus gene bodies ± `gene_body_flank` for gene-body cis windows), its samples only,
    contigs harmonized, split and left-aligned, REF checked."""
    from hapexp.inputs.genes import gene_body_regions, gene_regions

    table = pd.read_csv(genes, sep="\t", dtype={"chrom": str, "gene_id": str})
    half = int(half_width)
    regions = gene_regions(table, half)
    people = Path(samples).read_text().split()
    log.info("%d genes, regions TSS ± %d bp, %d samples", len(table), half, len(people))
    body = int(gene_body_flank)
    if body:  # gene-body windows (elasticnet/eqtl window: gene_body_1mb): start - flank .. end + flank
        regions = pd.concat([regions, gene_body_regions(table, body)], ignore_index=True)
        log.info("plus gene bodies ± %d bp", body)
    stats = normalize(
        list(vcf), fasta, bcf, regions=regions, harmonize=harmonize, threads=threads, samples=people
    )
    log.info("normalized: %s", ", ".join(f"{k}={v}" for k, v in stats.items()))
