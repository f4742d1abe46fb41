"""The one VCF scanner: `bcftools query` streamed in blocks of records, genotypes parsed
as fixed-width blocks.

The genotype/dosage reader (`hapexp.variants.genotypes`), the REF check of
normalization (`hapexp.variants.normalize.RefCheck`) and the per-record checks of input
validation (`hapexp.variants.checks.scan_vcf`) are consumers of `scan`. Memory is
bounded by one block, whatever the number of records; no Python object is made per
sample and record.

Coordinates: `bcftools query` prints 1-based POS/END; regions given to `scan` are
0-based half-open `[start0, end0)` and written to bcftools as 1-based inclusive.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hapexp.errors import InputError
from hapexp.variants.files import vcf_samples
from hapexp.variants.windows import merge_regions

MISSING = -1  # allele code of a missing allele ("." in GT)
_ALLELE_OK = np.zeros(256, bool)
_ALLELE_OK[np.frombuffer(b"0123456789.", np.uint8)] = True
_SEP_OK = np.zeros(256, bool)
_SEP_OK[np.frombuffer(b"|/", np.uint8)] = True


def parse_gt(tok: str) -> tuple[tuple[int, int], bool, int]:
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


def parse_gt_block(raw: bytes, nv: int, ns: int):
    """Genotypes of `nv` records (one line each, `[\t%GT]` per sample) → arrays:
    alleles int8 [nv, ns, 2] (MISSING = -1), phased bool [nv, ns], ploidy int8 [nv, ns].

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
            alleles[i, j], phased[i, j], ploidy[i, j] = parse_gt(tok.decode())
    return alleles, phased, ploidy


def write_regions(regions: pd.DataFrame, path) -> None:
    """Merged `regions` (chrom, start0, end0) as a bcftools -R file."""
    # bcftools -R with a 3-column file reads 1-based inclusive positions (tab-separated).
    r = merge_regions(regions)
    with open(path, "w") as f:
        for c, s, e in zip(r["chrom"], r["start0"], r["end0"], strict=True):
            f.write(f"{c}\t{max(int(s), 0) + 1}\t{max(int(e), 1)}\n")


@dataclass
class Block:
    """Consecutive records: `sites` = one list of the asked fields (bytes) per record;
    with genotypes, their arrays (see `parse_gt_block`), else None."""

    sites: list[list[bytes]]
    alleles: np.ndarray | None = None
    phased: np.ndarray | None = None
    ploidy: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sites)


@contextmanager
def scan(
    path,
    fields: tuple[str, ...],
    regions: pd.DataFrame | None = None,
    samples: list[str] | None = None,
    genotypes: bool = False,
    overlap: str = "record",
    batch: int = 4096,
):
    """Stream `bcftools query` of `path`: yields an iterator of `Block`s of `batch` records.

    `fields`: bcftools tags without the % (e.g. ("CHROM", "POS", "REF")). `regions`
    (chrom, start0, end0; None: the whole file) select records by `overlap`: "record",
    any record overlapping a region (bcftools' default for -R; each record once), or
    "pos", records whose POS lies in one. `samples`: their genotypes, in that order
    (-S; None: all). Records come in file order. A failure of bcftools raises
    InputError once the stream is read to its end.
    """
    if overlap not in ("record", "pos"):
        raise ValueError(f"overlap must be 'record' or 'pos', got {overlap!r}")
    fmt = "\t".join(f"%{f}" for f in fields) + ("[\t%GT]" if genotypes else "") + "\n"
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as err:
        cmd = ["bcftools", "query"]
        if regions is not None:
            rpath = os.path.join(tmp, "regions.tsv")
            write_regions(regions, rpath)
            cmd += ["-R", rpath, *(["--regions-overlap", "pos"] if overlap == "pos" else [])]
        if samples is not None:
            spath = os.path.join(tmp, "samples.txt")
            with open(spath, "w") as f:
                f.write("\n".join(samples) + "\n")
            cmd += ["-S", spath]
        # stderr to a file: a pipe read only at the end could fill up and stall bcftools
        proc = subprocess.Popen([*cmd, "-f", fmt, str(path)], stdout=subprocess.PIPE, stderr=err)
        done = [False]
        ns = len(samples) if samples is not None else None
        try:
            yield _blocks(proc.stdout, len(fields), genotypes, ns, path, batch, done)
        finally:
            proc.stdout.close()
            rc = proc.wait()
        # a stream left early ends bcftools with SIGPIPE: only a stream read to its end says
        # whether bcftools succeeded
        if rc != 0 and done[0]:
            err.seek(0)
            msg = err.read().decode(errors="replace")
            raise InputError(path, f"bcftools query failed: {msg.strip()[-1000:]}", "Check the file.")


def _blocks(stream, n_fields: int, genotypes: bool, ns, path, batch: int, done: list) -> Iterator[Block]:
    if genotypes and ns is None:
        ns = len(vcf_samples(path))
    lines: list[bytes] = []
    for line in stream:
        lines.append(line)
        if len(lines) == batch:
            yield _block(lines, n_fields, genotypes, ns)
            lines = []
    if lines:
        yield _block(lines, n_fields, genotypes, ns)
    done[0] = True


def _block(lines: list[bytes], n_fields: int, genotypes: bool, ns) -> Block:
    if not genotypes or ns == 0:
        sites = [line.rstrip(b"\n").split(b"\t") for line in lines]
        return Block(sites, *parse_gt_block(b"", len(sites), 0)) if genotypes else Block(sites)
    sites, gts = [], []
    for line in lines:
        k = -1
        for _ in range(n_fields):  # the tab that ends the site fields
            k = line.index(b"\t", k + 1)
        sites.append(line[:k].split(b"\t"))
        gts.append(line[k:])
    return Block(sites, *parse_gt_block(b"".join(gts), len(sites), ns))
