"""Personal sequences as FASTA (rule export_fasta), rendered from the haplotype indexes."""

from __future__ import annotations

from hapexp.io import atomic_output
from hapexp.sequences.index import HaplotypeIndex


def export_fasta(
    index_paths, out_path, genes=None, samples=None, length=None, rc_minus=True, width=60
) -> int:
    """Write personal sequences as FASTA with headers ``>sample|hap|gene`` (hap 1 or 2).

    `genes`/`samples` None = all; `length` None = each index's window. Returns the
    number of records. Genes or samples asked for but absent raise ValueError.
    """
    want_g = None if genes is None else list(map(str, genes))
    want_s = None if samples is None else list(map(str, samples))
    found_g, n = set(), 0
    with atomic_output(out_path) as tmp, open(tmp, "w") as f:
        for path in index_paths:
            idx = HaplotypeIndex.load(path)
            sel = [s for s in idx.samples if want_s is None or s in want_s]
            if want_s is not None:
                missing = set(want_s) - set(idx.samples)
                if missing:
                    raise ValueError(f"samples not in the cohort: {', '.join(sorted(missing))}")
            si = [idx.samples.index(s) for s in sel]
            for gid in idx.genes["gene_id"]:
                if want_g is not None and gid not in want_g:
                    continue
                found_g.add(gid)
                gh = idx.gene_haplotypes(gid, length or idx.window, rc_minus=rc_minus)
                for s, i in zip(sel, si, strict=True):
                    for h in (1, 2):
                        seq = gh.haplotype(i, h).tobytes().decode()
                        f.write(f">{s}|{h}|{gid}\n")
                        f.write("".join(seq[k : k + width] + "\n" for k in range(0, len(seq), width)))
                        n += 1
    if want_g is not None and set(want_g) - found_g:
        raise ValueError(f"genes not in the cohort's gene table: {', '.join(sorted(set(want_g) - found_g))}")
    return n
