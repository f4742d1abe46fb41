"""Phased VCF/BCF input: contig checks, normalization with bcftools, REF check, genotypes.

Coordinates: VCF positions are 1-based in files and in `bcftools query` output;
everything returned by this module is 0-based (`pos0`), regions are 0-based
half-open `[start0, end0)`.

Normalization (`normalize`) is what every downstream reader uses: records restricted
to the regions around the genes, chromosome names optionally harmonized onto the
FASTA's, `bcftools norm -m -any -f ref` (split multi-allelics, left-align), then a
REF-vs-FASTA check that fails with a count and the first examples.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from hapexp.errors import InputError
from hapexp.inputs.gtf import match_contigs

log = logging.getLogger(__name__)

MISSING = -1  # allele code of a missing allele ("." in GT)
_ALLELE_OK = np.zeros(256, bool)
_ALLELE_OK[np.frombuffer(b"0123456789.", np.uint8)] = True
_SEP_OK = np.zeros(256, bool)
_SEP_OK[np.frombuffer(b"|/", np.uint8)] = True


# ------------------------------------------------------------------ inputs
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


def _check_indexed(path) -> None:
    p = str(path)
    if not Path(p).is_file():
        raise InputError(p, "VCF/BCF not found", "Check the cohort's `vcf` in the config.")
    if not any(Path(p + s).is_file() for s in (".tbi", ".csi")):
        raise InputError(
            p,
            "VCF/BCF is not indexed (no .tbi/.csi next to it)",
            f"bgzip it and index it: `bcftools index -t {p}` (or -c for BCF).",
        )


def vcf_samples(path) -> list[str]:
    with pysam.VariantFile(str(path)) as f:
        return list(f.header.samples)


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


# ------------------------------------------------------------------ regions
def merge_regions(regions: pd.DataFrame) -> pd.DataFrame:
    """Merge overlapping 0-based half-open regions (columns chrom, start0, end0)."""
    out = []
    for chrom, df in regions.groupby("chrom", sort=False):
        df = df.sort_values("start0")
        cs, ce = None, None
        for s, e in zip(df["start0"], df["end0"], strict=True):
            if cs is None or s > ce:
                if cs is not None:
                    out.append((chrom, cs, ce))
                cs, ce = int(s), int(e)
            else:
                ce = max(ce, int(e))
        if cs is not None:
            out.append((chrom, cs, ce))
    return pd.DataFrame(out, columns=["chrom", "start0", "end0"])


def _write_regions(regions: pd.DataFrame, path) -> None:
    # bcftools -R with a 3-column file reads 1-based inclusive positions (tab-separated).
    r = merge_regions(regions)
    with open(path, "w") as f:
        for c, s, e in zip(r["chrom"], r["start0"], r["end0"], strict=True):
            f.write(f"{c}\t{max(int(s), 0) + 1}\t{max(int(e), 1)}\n")


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


def _check_samples(vcf, samples: list[str]) -> None:
    have = set(vcf_samples(vcf))
    missing = [x for x in samples if x not in have]
    if missing:
        raise InputError(
            vcf,
            f"{len(missing)} of the cohort's {len(samples)} samples are not in this file (first: {', '.join(missing[:3])})",
            "Give per-chromosome files with the same samples, or list the cohort's people in `samples`.",
        )


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
        _write_regions(reg, rfile)
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
            _check_indexed(vcf)
            if samples is not None:
                _check_samples(vcf, samples)
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


def check_ref(bcf, fasta, source=None, max_examples: int = 5, block: int = 1 << 20) -> dict:
    """REF of every record must equal the FASTA; raise InputError with count + examples.

    Streams `bcftools query` (memory bounded by one FASTA block per contig, whatever
    the number of records) and compares each REF with the FASTA, fetched in `block`-bp
    pieces (one fetch per record would be slow on chromosome-scale files).
    """
    source = source or bcf
    proc = subprocess.Popen(
        ["bcftools", "query", "-f", "%CHROM\t%POS\t%REF\n", str(bcf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    n, bad, examples = 0, 0, []
    blk_chrom, blk_start, blk = None, 0, b""
    try:
        with pysam.FastaFile(str(fasta)) as fa:
            for line in proc.stdout:
                chrom, pos, ref = line.rstrip(b"\n").split(b"\t")
                pos0 = int(pos) - 1
                n += 1
                if chrom != blk_chrom or not (blk_start <= pos0 and pos0 + len(ref) <= blk_start + len(blk)):
                    blk_chrom, blk_start = chrom, pos0
                    blk = fa.fetch(chrom.decode(), blk_start, blk_start + block + len(ref)).upper().encode()
                got = blk[pos0 - blk_start : pos0 - blk_start + len(ref)]
                if got != ref.upper():
                    bad += 1
                    if len(examples) < max_examples:
                        examples.append(
                            f"{chrom.decode()}:{pos0 + 1} REF={ref.decode()} FASTA={got.decode() or '(past end)'}"
                        )
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"bcftools query {bcf} failed: {err.strip()[-2000:]}")
    if bad:
        raise InputError(
            source,
            f"{bad} of {n} records have a REF allele that differs from the FASTA {fasta} (first: {'; '.join(examples)})",
            "Use the reference genome build the VCF was called against (GRCh37 vs GRCh38?).",
            where=f"record {examples[0].split(' ')[0]}",
        )
    return {"records": n, "ref_mismatch": 0}


# ------------------------------------------------------------------ genotypes
def _query(bcf, fmt: str, rpath: str, sample_args: list[str]) -> bytes:
    # --regions-overlap pos: a record comes once, from the region holding its POS (the
    # default also returns records reaching in from before a region, once per region).
    cmd = ["bcftools", "query", "-R", rpath, "--regions-overlap", "pos", *sample_args, "-f", fmt, str(bcf)]
    raw = subprocess.run(cmd, capture_output=True, check=False)
    if raw.returncode != 0:
        raise InputError(bcf, f"bcftools query failed: {raw.stderr.decode()[-500:]}", "Check the BCF.")
    return raw.stdout


def _parse_gt_block(raw: bytes, nv: int, ns: int):
    """Genotypes of `nv` records (one line each, `[\t%GT]` per sample) → arrays.

    Fast path: every call is 3 characters (``a|b``, ``a/b``, single-digit alleles),
    so the whole block is one fixed-width numpy array; other lines are parsed one by one.
    """
    alleles = np.zeros((nv, ns, 2), dtype=np.int8)
    phased = np.ones((nv, ns), dtype=bool)
    ploidy = np.full((nv, ns), 2, dtype=np.int8)
    if nv == 0 or ns == 0:
        return alleles, phased, ploidy
    width = 4 * ns + 1  # "\ta|b" per sample, then the newline
    if len(raw) == nv * width:
        buf = np.frombuffer(raw, dtype=np.uint8).reshape(nv, width)[:, : 4 * ns].reshape(nv, ns, 4)
        a1, sep, a2 = buf[:, :, 1], buf[:, :, 2], buf[:, :, 3]
        if _ALLELE_OK[a1].all() and _ALLELE_OK[a2].all() and _SEP_OK[sep].all():
            alleles[:, :, 0] = a1 - ord("0")
            alleles[:, :, 1] = a2 - ord("0")
            alleles[alleles == ord(".") - ord("0")] = MISSING
            phased[:] = sep == ord("|")
            return alleles, phased, ploidy
    for i, line in enumerate(raw.split(b"\n")[:nv]):
        for j, tok in enumerate(line[1:].split(b"\t")):
            alleles[i, j], phased[i, j], ploidy[i, j] = _parse_gt(tok.decode())
    return alleles, phased, ploidy


def read_genotypes(bcf, regions: pd.DataFrame, samples: list[str] | None = None, with_id: bool = False):
    """Records with POS inside `regions` and their genotypes.

    Returns (variants DataFrame [chrom, pos0, ref, alt, order (+ id: the ID column
    when `with_id`)], alleles int8
    [n_var, n_samples, 2] (MISSING = -1), phased bool [n_var, n_samples],
    ploidy int8 [n_var, n_samples]). Records are in file order; `order` is the
    index in that order (ties at one position keep it, as bcftools consensus does).
    """
    all_samples = vcf_samples(bcf)
    samples = list(all_samples if samples is None else samples)
    ns = len(samples)
    with tempfile.TemporaryDirectory() as tmp:
        rpath = os.path.join(tmp, "regions.tsv")
        _write_regions(regions, rpath)
        sample_args = []
        if samples != all_samples:
            spath = os.path.join(tmp, "samples.txt")
            with open(spath, "w") as f:
                f.write("\n".join(samples) + "\n")
            sample_args = ["-S", spath]
        # Two passes: site columns, then genotypes alone (fixed width → one numpy view).
        sites = _query(
            bcf, "%CHROM\t%POS\t%REF\t%ALT" + ("\t%ID" if with_id else "") + "\n", rpath, sample_args
        )
        gts = _query(bcf, "[\t%GT]\n", rpath, sample_args) if ns else b""
    df = (
        pd.read_csv(
            io.BytesIO(sites),
            sep="\t",
            header=None,
            names=["chrom", "pos", "ref", "alt", *(["id"] if with_id else [])],
            dtype={"chrom": str, "pos": np.int64, "ref": str, "alt": str, "id": str},
            keep_default_na=False,
        )
        if sites
        else pd.DataFrame({"chrom": [], "pos": [], "ref": [], "alt": [], **({"id": []} if with_id else {})})
    )
    nv_all = len(df)
    alleles, phased, ploidy = _parse_gt_block(gts, nv_all, ns)
    pos0 = df["pos"].to_numpy(np.int64) - 1
    # -R returns every record overlapping a region; keep only those that start inside one.
    keep = np.zeros(nv_all, dtype=bool)
    reg = merge_regions(regions)
    chrom = df["chrom"].to_numpy()
    for c, r in reg.groupby("chrom"):
        m = chrom == c
        st, en = r["start0"].to_numpy(), r["end0"].to_numpy()
        k = np.searchsorted(st, pos0[m], side="right") - 1
        keep[m] = (k >= 0) & (pos0[m] < en[np.maximum(k, 0)])
    # Identical records (e.g. two indels that left-align to the same one) are all kept:
    # bcftools consensus applies each, so the haplotypes must too.
    variants = pd.DataFrame(
        {
            "chrom": chrom[keep].astype(object),
            "pos0": pos0[keep],
            "ref": df["ref"].to_numpy()[keep],
            "alt": df["alt"].to_numpy()[keep],
        }
    )
    if with_id:
        variants["id"] = df["id"].to_numpy()[keep]
    variants["order"] = np.arange(len(variants))
    return variants, alleles[keep], phased[keep], ploidy[keep]


def _parse_gt(tok: str) -> tuple[tuple[int, int], bool, int]:
    """One GT string → ((allele1, allele2), phased, ploidy). Haploid: allele2 = 0.

    bcftools consensus -H 2 leaves a haploid call's second haplotype as reference.
    """
    if tok in (".", ""):
        return (MISSING, MISSING), True, 2
    parts = tok.replace("|", "/").split("/")
    al = [MISSING if x == "." else int(x) for x in parts]
    if len(al) == 1:
        return (al[0], 0), True, 1
    return (al[0], al[1]), "|" in tok, 2


def count_summary(counter: Counter) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(counter.items()))
