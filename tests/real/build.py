"""Build the real cohort of `make test-real` from Debian packages (provenance: tests/real/README.md).

    python -m tests.real.build [--out resources/real] [--force]

Geuvadis EUR people (fastqtl-doc) with their chr22 genotypes, hard-called from the
imputed dosages, alleles resolved on the real GRCh37 sequence and dbSNP (hisat2
examples), phased by SHAPEIT4 with the hg19 genetic map of bio-eagle-examples, written
as two bgzipped + indexed VCFs (the two sides of the 100 kb N gap, both contig `22`);
the reference on a full-length contig `22`; a GTF of the genes whose TSS lies in the
sequenced piece (TSS from the expression BED, strand and body from biovizBase); the
expression BED and covariates as shipped; the demo oracle's weights.

Cached: `manifest.json` records the sha256 of every output; a rerun whose outputs
all match does nothing. Deterministic: fixed inputs (checksums checked), SHAPEIT4
with a fixed seed on one thread, bgzip/tabix of fixed bytes, sorted outputs.
Coordinates: 1-based (VCF/GTF style) unless a name says `0`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from tests.real.annotation import genesymbol_table
from tests.real.debian import BuildError, Package, fetch, sha256

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "resources" / "real"
BUILD_VERSION = 1  # bump when the composition changes: the cache is rebuilt

CHROM = "22"
CHROM_LENGTH = 51_304_566  # GRCh37 chr22
PIECE_START, PIECE_END = 20_000_001, 21_000_000  # hisat2's `22:20000001-21000000`, 1-based inclusive
GAP_START, GAP_END = 20_509_432, 20_609_431  # the N run inside the piece, 1-based inclusive
SHAPEIT_SEED = 20260101

# Debian package -> {file inside the package: sha256 of the file we documented}.
FASTQTL_EXAMPLES = "usr/share/doc/fastqtl/examples/examples.tar.xz"
HISAT2_FA = "usr/share/doc/hisat2/examples/reference/22_20-21M.fa"
HISAT2_SNP = "usr/share/doc/hisat2/examples/reference/22_20-21M.snp"
BIOVIZ_RDB = "usr/lib/R/site-library/biovizBase/data/Rdata.rdb"
BIOVIZ_RDX = "usr/lib/R/site-library/biovizBase/data/Rdata.rdx"
EAGLE_MAP = "usr/share/doc/bio-eagle/examples/tables/genetic_map_hg19_example.txt.gz"
BEAGLE_TEST = "usr/share/doc/beagle/examples/test.vcf"
SOURCES = {
    "fastqtl-doc": {FASTQTL_EXAMPLES: "6e8845c9e169812ba1b7d12c1e062853a072e154141da97952166c900816cdfc"},
    "hisat2": {
        HISAT2_FA: "5f20f32cf4233e45f91ad3ca2e7928a8b6594040522fe4275b876856c1d9944d",
        HISAT2_SNP: "b7cc1336b2101775188641c369b05e9072883ccc832b703e9d39da513817792a",
    },
    "r-bioc-biovizbase": {
        BIOVIZ_RDB: "115104fb466c259a010ac9c9d38c5d69c3a25ae8df0ad9b843db89ceb53ec314",
        BIOVIZ_RDX: "d8094999ba5d54319f18a0a550eab7ab3f280d07b6365623984c6fa6865250ea",
    },
    "bio-eagle-examples": {EAGLE_MAP: "06fa6ac6ea08af5e6cff0a96a0540bc455193b65ae782b760c92667794a03b0c"},
    "beagle-doc": {BEAGLE_TEST: "3cd1ddd3f2d602dab0cffaab41af4db2a2571eadec568ccb6fb53ef9d840f34e"},
    "shapeit4": {},
    "fastqtl": {},
}
# Members of fastqtl-doc's examples.tar.xz.
FASTQTL_MEMBERS = {
    "genotypes.vcf.gz": "ad02670298b7a5bff6a4d7e5ff8478dc2637d8e2adfac7fab71838b9008ab2fa",
    "genotypes.vcf.gz.tbi": "0a84b3b6646d98d24d4b74d682f76f89dfd411e508e6f9ed821ea3b40779f253",
    "phenotypes.bed.gz": "cf9a4841c82b51064e62e863fb73894815e296beb0c39dda37effa817822710a",
    "phenotypes.bed.gz.tbi": "2d4625ec03e662722e80b3f34195d80b0a85a6d3522dc4360f11af457f7dd903",
    "covariates.txt.gz": "09965fa8439f78cc5b9d766af9b65f3c456e28c55603986d2f6fb3b73c793c49",
}
# Shared libraries of the shapeit4 and fastQTL binaries -> the Debian package that
# ships them (fetched and put on LD_LIBRARY_PATH only when the system lacks them).
TOOL_LIBS = {
    "libboost_iostreams.so.1.74.0": "libboost-iostreams1.74.0",
    "libboost_program_options.so.1.74.0": "libboost-program-options1.74.0",
    "libhts.so.3": "libhts3",
    "libRmath.so.1": "r-mathlib",
    "libgsl.so.27": "libgsl27",
    "libgslcblas.so.0": "libgslcblas0",
    "libblas.so.3": "libblas3",
}
EQTL_WINDOW = 250_000  # FastQTL's --window for the reference answer; tests/real/config.yaml's eqtl.window

OUTPUTS = [
    "reference.fa",
    "reference.fa.fai",
    "chr22.part1.vcf.gz",
    "chr22.part1.vcf.gz.tbi",
    "chr22.part2.vcf.gz",
    "chr22.part2.vcf.gz.tbi",
    "genes.gtf",
    "expression.bed.gz",
    "covariates.txt.gz",
    "oracle.pt",
    "fastqtl_dosages.vcf.gz",
    "fastqtl_dosages.vcf.gz.tbi",
    "fastqtl_nominal.txt.gz",
]


def log(msg: str) -> None:
    print(f"[real-cohort] {msg}", flush=True)


# ------------------------------------------------------------------ reference
def read_piece(fa: Path) -> bytes:
    lines = fa.read_bytes().splitlines()
    if lines[0].strip() != b">22:20000001-21000000":
        raise BuildError(f"{fa}: unexpected header {lines[0][:60]!r} (expected >22:20000001-21000000)")
    seq = b"".join(x.strip() for x in lines[1:]).upper()
    if len(seq) != PIECE_END - PIECE_START + 1:
        raise BuildError(f"{fa}: {len(seq)} bases, expected {PIECE_END - PIECE_START + 1}")
    return seq


def n_runs(seq: bytes, offset1: int) -> list[tuple[int, int]]:
    """1-based inclusive runs of N in `seq`, whose first base is at `offset1`."""
    a = np.frombuffer(seq, np.uint8) == ord("N")
    d = np.diff(np.r_[0, a.astype(np.int8), 0])
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(s) + offset1, int(e) - 1 + offset1) for s, e in zip(starts, ends, strict=True)]


def write_reference(piece: bytes, path: Path) -> None:
    """Contig `22` at full GRCh37 length: N everywhere except the hisat2 piece."""
    seq = bytearray(b"N" * CHROM_LENGTH)
    seq[PIECE_START - 1 : PIECE_END] = piece
    with open(path, "wb") as fh:
        fh.write(f">{CHROM}\n".encode())
        for i in range(0, CHROM_LENGTH, 60):
            fh.write(bytes(seq[i : i + 60]) + b"\n")
    import pysam

    pysam.faidx(str(path))


# ------------------------------------------------------------------ alleles
def read_dbsnp(path: Path) -> pd.DataFrame:
    """hisat2's `22_20-21M.snp`: rsid, type (single/deletion/insertion), piece offset (0-based), allele.

    Offsets are 0-based in the piece: a `single` SNV at offset o is at 1-based
    position 20,000,001 + o; a `deletion` of n bases removes offsets o..o+n-1 (VCF
    anchor: the base before, 1-based position 20,000,000 + o); an `insertion` puts its
    bases before offset o (same anchor).
    """
    df = pd.read_csv(
        path, sep="\t", header=None, names=["rsid", "type", "contig", "offset", "allele"], dtype=str
    )
    if set(df["contig"]) != {"22:20000001-21000000"}:
        raise BuildError(f"{path}: unexpected contig names {sorted(set(df['contig']))[:3]}")
    df["offset"] = df["offset"].astype(int)
    return df


def resolve(record_id: str, pos: int, piece: bytes, dbsnp: dict) -> tuple[str, str, str] | str:
    """(REF, ALT, rsid) of a fastqtl-doc record, or the reason it cannot be resolved.

    fastqtl-doc masks the alleles as the words REF/ALT; its ids say the kind:
    `snp_22_POS`, `indel:<n>D_22_POS` (deletion of n bases after the anchor POS),
    `indel:<n>I_22_POS` (insertion of n bases after POS), `sv:...` (structural).
    """
    o = pos - PIECE_START  # 0-based offset of POS in the piece
    if not 0 <= o < len(piece):
        return "outside the sequenced piece"
    kind = record_id.split("_", 1)[0]
    if kind == "snp":
        ref = chr(piece[o])
        hits = {(a, r) for a, r in dbsnp.get(("single", o), []) if a != ref}
        if ref == "N":
            return "reference is N"
        alts = {a for a, _ in hits}
        if not alts:
            return "SNV: no dbSNP allele at the position"
        if len(alts) > 1:
            return "SNV: several dbSNP alleles (multi-allelic)"
        return ref, alts.pop(), min(r for _, r in hits)
    if kind.startswith("indel:") and kind[-1] in "DI" and kind[6:-1].isdigit():
        n = int(kind[6:-1])
        anchor = chr(piece[o])
        if kind[-1] == "D":
            hits = [r for length, r in dbsnp.get(("deletion", o + 1), []) if int(length) == n]
            if not hits:
                return "deletion: no dbSNP deletion of that length after the anchor"
            ref = piece[o : o + n + 1].decode()
            if "N" in ref:
                return "reference is N"
            return ref, anchor, min(hits)
        ins = {(s, r) for s, r in dbsnp.get(("insertion", o + 1), []) if len(s) == n}
        if not ins:
            return "insertion: no dbSNP insertion of that length after the anchor"
        if len({s for s, _ in ins}) > 1:
            return "insertion: several dbSNP insertions of that length"
        seq, _ = next(iter(ins))
        return anchor, anchor + seq, min(r for _, r in ins)
    return "structural variant (no sequence-resolved alleles)"


def hard_call(ds: np.ndarray) -> np.ndarray:
    """Dosage -> allele count: [0, 0.5) -> 0, [0.5, 1.5) -> 1, [1.5, 2] -> 2 (the most likely genotype)."""
    return (ds >= 0.5).astype(np.int8) + (ds >= 1.5).astype(np.int8)


def read_dosages(vcf_gz: Path, piece: bytes, dbsnp_df: pd.DataFrame):
    """Records of the piece with resolved alleles and hard calls; counts of what was dropped."""
    import pysam

    dbsnp: dict = {}
    for rs, typ, off, allele in zip(
        dbsnp_df["rsid"], dbsnp_df["type"], dbsnp_df["offset"], dbsnp_df["allele"], strict=True
    ):
        dbsnp.setdefault((typ, off), []).append((allele, rs))
    tbx = pysam.TabixFile(str(vcf_gz))
    header = tbx.header[-1].split("\t")
    samples = header[9:]
    sites, calls, dosages = [], [], []
    dropped: Counter = Counter()
    kinds: Counter = Counter()
    for line in tbx.fetch(CHROM, PIECE_START - 1, PIECE_END):
        f = line.split("\t")
        pos, rid = int(f[1]), f[2]
        if f[3] != "REF" or f[4] != "ALT" or f[8] != "DS":
            raise BuildError(f"{vcf_gz}: record {CHROM}:{pos} is not in the documented masked layout")
        kinds[rid.split("_", 1)[0].split(":")[0]] += 1
        got = resolve(rid, pos, piece, dbsnp)
        if isinstance(got, str):
            dropped[got] += 1
            continue
        ds = np.array(f[9:], dtype=np.float64)
        if np.isnan(ds).any() or (ds < 0).any() or (ds > 2).any():
            raise BuildError(f"{vcf_gz}: record {CHROM}:{pos} has a dosage outside [0, 2]")
        ref, alt, rsid = got
        sites.append((pos, rsid, ref, alt, rid))
        calls.append(hard_call(ds))
        dosages.append(ds)
    tbx.close()
    sites = pd.DataFrame(sites, columns=["pos", "rsid", "ref", "alt", "source_id"])
    calls = np.array(calls, dtype=np.int8).reshape(len(sites), len(samples))
    dosages = np.array(dosages).reshape(len(sites), len(samples))
    counts = {"records_in_piece": int(sum(kinds.values())), "records_by_kind": dict(sorted(kinds.items()))}
    counts["dropped_unresolved"] = dict(sorted(dropped.items()))
    # Two fastqtl records resolving to one site (same position and alleles) would be
    # one VCF record twice: keep none of them (their dosages would disagree).
    dup = sites.duplicated(["pos", "ref", "alt"], keep=False).to_numpy()
    counts["dropped_duplicate_site"] = int(dup.sum())
    # Hard calls that leave no alternate allele in the cohort carry no information.
    mono = (calls.sum(axis=1) == 0) & ~dup
    counts["dropped_monomorphic_after_hard_call"] = int(mono.sum())
    keep = ~dup & ~mono
    sites, calls, dosages = sites[keep].reset_index(drop=True), calls[keep], dosages[keep]
    counts["kept"] = int(len(sites))
    counts["kept_snv"] = int(((sites.ref.str.len() == 1) & (sites.alt.str.len() == 1)).sum())
    counts["kept_indel"] = counts["kept"] - counts["kept_snv"]
    changed = np.abs(calls - dosages)
    counts["genotypes"] = int(calls.size)
    counts["hard_call_abs_diff_mean"] = round(float(changed.mean()), 6)
    counts["hard_calls_off_by_more_than_0.25"] = int((changed > 0.25).sum())
    return samples, sites, calls, dosages, counts


def check_against_1000g(sites, calls, dosages, samples, test_vcf: Path) -> dict:
    """Compare with beagle-doc's 1000 Genomes phase 1 calls for 22:20.00-20.10 Mb (independent source)."""
    import pysam

    out: Counter = Counter()
    pysam.set_verbosity(0)  # its header lacks the contig line and declares AF as Number=1: harmless here
    with pysam.VariantFile(str(test_vcf)) as vf:
        theirs_samples = list(vf.header.samples)
        shared = [s for s in samples if s in set(theirs_samples)]
        ours_ix = [samples.index(s) for s in shared]
        by_pos = {}
        for rec in vf.fetch() if vf.index is not None else vf:
            by_pos.setdefault(rec.pos, []).append(rec)
    out["shared_samples"] = len(shared)
    lo, hi = min(by_pos), max(by_pos)
    conc, total, ds_equal, ds_total = 0, 0, 0, 0
    for row, site in enumerate(sites.itertuples(index=False)):
        if not lo <= site.pos <= hi:
            continue
        out["our_sites_in_range"] += 1
        recs = [r for r in by_pos.get(site.pos, []) if r.ref == site.ref and site.alt in (r.alts or ())]
        if not recs:
            other = by_pos.get(site.pos, [])
            out["alleles_differ" if other else "absent_from_1000g"] += 1
            continue
        rec = recs[0]
        out["alleles_equal"] += 1
        if rec.id == site.rsid:
            out["rsid_equal"] += 1
        gts = np.array([sum(a is not None and a > 0 for a in rec.samples[s]["GT"]) for s in shared])
        conc += int((gts == calls[row, ours_ix]).sum())
        total += len(shared)
        ds = np.array([rec.samples[s]["DS"] for s in shared], dtype=float)
        ds_equal += int(np.isclose(ds, dosages[row, ours_ix], atol=1e-3).sum())
        ds_total += len(shared)
    res = dict(out)
    res["genotype_concordance"] = round(conc / total, 6) if total else None
    res["dosage_equal_fraction"] = round(ds_equal / ds_total, 6) if ds_total else None
    return res


# ------------------------------------------------------------------ phasing
def tool_env(binary: Path, cache: Path) -> dict:
    """Environment for an unpacked Debian binary; libraries the system lacks come from Debian too."""
    env = dict(os.environ)
    dirs: list[str] = []
    for _ in range(len(TOOL_LIBS) + 1):  # a fetched library may need another one
        ldd = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env).stdout
        missing = [line.split()[0] for line in ldd.splitlines() if "not found" in line]
        if not missing:
            return env
        for lib in missing:
            if lib not in TOOL_LIBS:
                raise BuildError(f"{binary.name} needs {lib}, which no known Debian package provides here")
            pkg = fetch(TOOL_LIBS[lib], cache)
            dirs += [str(p.parent) for p in pkg.root.rglob(lib)]
        env["LD_LIBRARY_PATH"] = ":".join(
            [*dict.fromkeys(dirs), os.environ.get("LD_LIBRARY_PATH", "")]
        ).rstrip(":")
    raise BuildError(f"{binary.name}: shared libraries still missing after fetching {dirs}")


def write_genetic_map(eagle_map: Path, path: Path) -> int:
    """Eagle's hg19 map (chr, position, rate, cM) -> SHAPEIT4's (pos, chr, cM) for chr22."""
    m = pd.read_csv(eagle_map, sep=" ")
    m = m[m["chr"].astype(str) == CHROM]
    out = pd.DataFrame({"pos": m["position"], "chr": CHROM, "cM": m["Genetic_Map(cM)"]})
    out.to_csv(path, sep="\t", index=False)
    return len(out)


def vcf_header(samples: list[str], extra: list[str]) -> str:
    lines = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={CHROM},length={CHROM_LENGTH},assembly=GRCh37>",
        *extra,
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    return "\n".join(lines) + "\n"


def write_unphased(path_vcf: Path, samples, sites, calls) -> None:
    gt = np.array(["0/0", "0/1", "1/1"])[calls]
    with open(path_vcf, "w") as fh:
        fh.write(vcf_header(samples, []))
        for site, row in zip(sites.itertuples(index=False), gt, strict=True):
            fh.write(f"{CHROM}\t{site.pos}\t{site.rsid}\t{site.ref}\t{site.alt}\t.\tPASS\t.\tGT\t")
            fh.write("\t".join(row) + "\n")


def phase(shapeit: Package, cache: Path, work: Path, samples, sites, calls, genetic_map: Path):
    """SHAPEIT4 on the hard calls; returns the phased alleles (n_sites, n_samples, 2)."""
    vcf = work / "unphased.vcf"
    write_unphased(vcf, samples, sites, calls)
    subprocess.run(["bcftools", "view", "--no-version", "-Oz", "-o", f"{vcf}.gz", str(vcf)], check=True)
    subprocess.run(["bcftools", "index", "-f", f"{vcf}.gz"], check=True)
    out = work / "phased.bcf"
    cmd = [
        str(shapeit.root / "usr/bin/shapeit4.2"),
        *("--input", f"{vcf}.gz", "--map", str(genetic_map), "--region", CHROM),
        *(
            "--output",
            str(out),
            "--seed",
            str(SHAPEIT_SEED),
            "--thread",
            "1",
            "--log",
            str(work / "shapeit4.log"),
        ),
    ]
    proc = subprocess.run(cmd, env=tool_env(Path(cmd[0]), cache), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"shapeit4 failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")
    q = subprocess.run(
        ["bcftools", "query", "-f", "%POS\t%REF\t%ALT[\t%GT]\n", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    if len(q) != len(sites):
        raise BuildError(f"shapeit4 wrote {len(q)} records for {len(sites)} input sites")
    alleles = np.zeros((len(sites), len(samples), 2), dtype=np.int8)
    for i, (line, site) in enumerate(zip(q, sites.itertuples(index=False), strict=True)):
        f = line.split("\t")
        if (int(f[0]), f[1], f[2]) != (site.pos, site.ref, site.alt):
            raise BuildError(
                f"shapeit4 output record {i} is {f[:3]}, expected {site.pos} {site.ref} {site.alt}"
            )
        for j, g in enumerate(f[3:]):
            if len(g) != 3 or g[1] != "|":
                raise BuildError(f"shapeit4 left {site.pos} unphased for {samples[j]}: {g}")
            alleles[i, j] = (int(g[0]), int(g[2]))
    if not np.array_equal(alleles.sum(axis=2), calls):
        raise BuildError("shapeit4 changed genotypes (phasing must only order the alleles)")
    return alleles, proc


def write_part(path: Path, samples, sites, alleles, extra_header: list[str]) -> None:
    """bgzipped VCF + .tbi (htslib's bgzf: the same bytes for the same text)."""
    import pysam

    text = path.with_suffix("")  # .vcf
    gt = np.char.add(np.char.add(alleles[:, :, 0].astype(str), "|"), alleles[:, :, 1].astype(str))
    with open(text, "w") as fh:
        fh.write(vcf_header(samples, extra_header))
        for site, row in zip(sites.itertuples(index=False), gt, strict=True):
            fh.write(f"{CHROM}\t{site.pos}\t{site.rsid}\t{site.ref}\t{site.alt}\t.\tPASS\t.\tGT\t")
            fh.write("\t".join(row) + "\n")
    pysam.tabix_compress(str(text), str(path), force=True)
    text.unlink()
    pysam.tabix_index(str(path), preset="vcf", force=True)


# ------------------------------------------------------------------ reference answer
def fastqtl_nominal(fastqtl: Package, cache: Path, work: Path) -> dict:
    """FastQTL's nominal pass on the data as shipped: the independent eQTL answer of tests/real.

    The imputed dosages (DS) of the piece, the expression BED and covariates exactly as
    fastqtl-doc ships them (no hard calls, no phasing, no allele resolution), genes with
    a TSS in the piece, variants within EQTL_WINDOW of the TSS.
    """
    dosages = work / "fastqtl_dosages.vcf.gz"
    region = f"{CHROM}:{PIECE_START}-{PIECE_END}"
    subprocess.run(
        [
            "bcftools",
            "view",
            "--no-version",
            "-r",
            region,
            "-Oz",
            "-o",
            str(dosages),
            str(work / "genotypes.vcf.gz"),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(["tabix", "-f", "-p", "vcf", str(dosages)], check=True)
    binary = fastqtl.root / "usr/bin/fastQTL"
    cmd = [
        str(binary),
        *(
            "--vcf",
            str(dosages),
            "--bed",
            str(work / "phenotypes.bed.gz"),
            "--cov",
            str(work / "covariates.txt.gz"),
        ),
        *("--region", region, "--window", str(EQTL_WINDOW), "--out", str(work / "fastqtl_nominal.txt.gz")),
        *("--log", str(work / "fastqtl.log")),
    ]
    proc = subprocess.run(cmd, env=tool_env(binary, cache), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"fastQTL failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")
    nominal = pd.read_csv(
        work / "fastqtl_nominal.txt.gz",
        sep="\t",
        header=None,
        names=[
            "gene_id",
            "variant",
            "distance",
            "ma_samples",
            "ma_count",
            "maf",
            "pval",
            "slope",
            "slope_se",
        ],
    )
    return {"pairs": len(nominal), "genes": int(nominal["gene_id"].nunique())}


# ------------------------------------------------------------------ genes
def write_gtf(bed: Path, genesym: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, dict]:
    """Genes whose TSS is in the sequenced piece (outside the gap), with strand and body from biovizBase.

    TSS: the expression BED's `end` (GENCODE v12 gene TSS, 1-based). Strand: the
    biovizBase `genesymbol` ranges (UCSC knownGene hg19) of the same Ensembl id on
    chr22, which must agree. Body: the knownGene extent, extended to the BED TSS so
    that the GTF's TSS (start on +, end on -) is exactly the BED's.
    """
    ph = pd.read_csv(bed, sep="\t", usecols=[0, 1, 2, 3], dtype={0: str})
    ph.columns = ["chrom", "start0", "tss", "gene_id"]
    counts: dict = {"expression_genes": len(ph)}
    inside = ph[
        (ph.tss >= PIECE_START) & (ph.tss <= PIECE_END) & ~((ph.tss >= GAP_START) & (ph.tss <= GAP_END))
    ]
    counts["tss_in_piece"] = len(inside)
    gs = genesym[genesym["chrom"] == "chr22"].dropna(subset=["ensembl_id"])
    rows, dropped = [], Counter()
    for g in inside.itertuples(index=False):
        hits = gs[gs["ensembl_id"] == g.gene_id.split(".")[0]]
        if hits.empty:
            dropped["no chr22 range for the Ensembl id in biovizBase genesymbol"] += 1
            continue
        if hits["strand"].nunique() != 1 or hits["strand"].iloc[0] not in "+-":
            dropped["ranges of the Ensembl id disagree on strand"] += 1
            continue
        strand, start, end = hits["strand"].iloc[0], int(hits["start"].min()), int(hits["end"].max())
        five, three = (start, end) if strand == "+" else (end, start)
        if abs(g.tss - five) > abs(g.tss - three):
            dropped["BED TSS nearer the gene's 3' end than its 5' end (strand doubtful)"] += 1
            continue
        if strand == "+":
            start, end = g.tss, max(end, g.tss)
        else:
            start, end = min(start, g.tss), g.tss
        rows.append((CHROM, start, end, strand, g.gene_id, hits["symbol"].iloc[0], g.tss, g.tss - five))
    genes = pd.DataFrame(
        rows, columns=["chrom", "start", "end", "strand", "gene_id", "name", "tss", "tss_minus_ucsc"]
    )
    genes = genes.sort_values(["start", "gene_id"]).reset_index(drop=True)
    counts["dropped"] = dict(sorted(dropped.items()))
    counts["kept"] = len(genes)
    with open(path, "w") as fh:
        fh.write("#description: genes of the hapexp real cohort (tests/real/README.md)\n")
        fh.write(
            "#tss: GENCODE v12 (fastqtl-doc phenotypes.bed.gz); strand, body: UCSC knownGene hg19 (biovizBase)\n"
        )
        for g in genes.itertuples(index=False):
            attrs = f'gene_id "{g.gene_id}"; gene_name "{g.name}";'
            fh.write(f"{g.chrom}\thapexp_real\tgene\t{g.start}\t{g.end}\t.\t{g.strand}\t.\t{attrs}\n")
    return genes, counts


# ------------------------------------------------------------------ driver
def cached(out: Path) -> dict | None:
    mpath = out / "manifest.json"
    if not mpath.is_file():
        return None
    manifest = json.loads(mpath.read_text())
    if manifest.get("build_version") != BUILD_VERSION:
        return None
    for name in OUTPUTS:
        p = out / name
        if not p.is_file() or sha256(p) != manifest["outputs"].get(name):
            return None
    return manifest


def build(out: Path = DEFAULT_OUT, force: bool = False) -> dict:
    """Build the cohort into `out` (skipped when the manifest's checksums all match); return the manifest."""
    out = Path(out)
    if not force and (m := cached(out)) is not None:
        log(f"cached: {out} (outputs match manifest.json)")
        return m
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "debian"
    pkgs = {name: fetch(name, cache) for name in SOURCES}
    provenance = []
    for name, files in SOURCES.items():
        for rel, digest in files.items():
            pkgs[name].file(rel, digest)
        provenance.append({**pkgs[name].provenance(), "files": files})
    manifest: dict = {"build_version": BUILD_VERSION, "sources": provenance, "counts": {}}
    counts = manifest["counts"]
    with tempfile.TemporaryDirectory(dir=out, prefix=".build.") as tmp:
        work = Path(tmp)
        with tarfile.open(pkgs["fastqtl-doc"].file(FASTQTL_EXAMPLES)) as tar:
            for member, digest in FASTQTL_MEMBERS.items():
                tar.extract(member, work, filter="data")
                if sha256(work / member) != digest:
                    raise BuildError(f"fastqtl-doc examples.tar.xz: {member} changed (sha256 mismatch)")

        log("reference: hisat2 piece on a full-length contig 22")
        piece = read_piece(pkgs["hisat2"].file(HISAT2_FA))
        runs = n_runs(piece, PIECE_START)
        if runs != [(GAP_START, GAP_END)]:
            raise BuildError(f"the hisat2 piece's N runs are {runs}, expected one at {GAP_START}-{GAP_END}")
        counts["reference"] = {"contig": CHROM, "length": CHROM_LENGTH, "piece": [PIECE_START, PIECE_END]}
        counts["reference"]["n_gap"] = [GAP_START, GAP_END]
        write_reference(piece, work / "reference.fa")

        log("genotypes: resolve alleles, hard-call the dosages")
        dbsnp = read_dbsnp(pkgs["hisat2"].file(HISAT2_SNP))
        counts["dbsnp_entries"] = dict(Counter(dbsnp["type"]))
        samples, sites, calls, dosages, gcounts = read_dosages(work / "genotypes.vcf.gz", piece, dbsnp)
        counts["genotypes"] = gcounts
        counts["samples"] = len(samples)
        counts["check_1000g_phase1"] = check_against_1000g(
            sites, calls, dosages, samples, pkgs["beagle-doc"].file(BEAGLE_TEST)
        )
        log(f"  {gcounts['kept']} sites kept; 1000G check: {counts['check_1000g_phase1']}")

        log("phasing: SHAPEIT4")
        gmap = work / "chr22.gmap"
        counts["genetic_map_rows"] = write_genetic_map(pkgs["bio-eagle-examples"].file(EAGLE_MAP), gmap)
        alleles, proc = phase(pkgs["shapeit4"], cache, work, samples, sites, calls, gmap)
        het = calls == 1
        counts["phasing"] = {"heterozygous_genotypes": int(het.sum()), "seed": SHAPEIT_SEED, "threads": 1}
        header = [
            f"##source=hapexp tests/real/build.py v{BUILD_VERSION}: Geuvadis EUR dosages (fastqtl-doc {pkgs['fastqtl-doc'].version}) "
            f"hard-called, alleles from GRCh37 + dbSNP (hisat2 {pkgs['hisat2'].version}), "
            f"phased by SHAPEIT4 (shapeit4 {pkgs['shapeit4'].version}, seed {SHAPEIT_SEED})",
        ]
        before_gap = (sites["pos"] < GAP_START).to_numpy()
        for part, mask in (("chr22.part1.vcf.gz", before_gap), ("chr22.part2.vcf.gz", ~before_gap)):
            write_part(work / part, samples, sites[mask].reset_index(drop=True), alleles[mask], header)
            counts.setdefault("vcf_parts", {})[part] = int(mask.sum())

        log("genes: GTF from the expression BED + biovizBase genesymbol")
        sym = genesymbol_table(
            pkgs["r-bioc-biovizbase"].file(BIOVIZ_RDB), pkgs["r-bioc-biovizbase"].file(BIOVIZ_RDX)
        )
        genes, gcount = write_gtf(work / "phenotypes.bed.gz", sym, work / "genes.gtf")
        counts["genes"] = gcount
        counts["genes"]["table"] = genes.drop(columns=["chrom"]).to_dict(orient="records")

        shutil.copyfile(work / "phenotypes.bed.gz", work / "expression.bed.gz")
        with gzip.open(work / "covariates.txt.gz", "rt") as fh:
            counts["covariates"] = [line.split("\t", 1)[0] for line in fh][1:]

        log("reference answer: FastQTL nominal pass on the shipped dosages")
        counts["fastqtl_nominal"] = fastqtl_nominal(pkgs["fastqtl"], cache, work)

        sys.path.insert(0, str(REPO / "workflow" / "scripts"))
        from hapexp.models.oracle import Oracle

        Oracle().save(work / "oracle.pt")

        # Move the outputs in, then the manifest last: a crash leaves no valid cache.
        (out / "manifest.json").unlink(missing_ok=True)
        for name in OUTPUTS:
            os.replace(work / name, out / name)
        manifest["outputs"] = {name: sha256(out / name) for name in OUTPUTS}
        shutil.copyfile(work / "shapeit4.log", out / "shapeit4.log")
        shutil.copyfile(work / "fastqtl.log", out / "fastqtl.log")
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    log(f"built: {out}")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default resources/real)")
    ap.add_argument("--force", action="store_true", help="rebuild even when the cache is valid")
    args = ap.parse_args(argv)
    try:
        build(args.out, args.force)
    except BuildError as e:
        print(f"real cohort build failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
