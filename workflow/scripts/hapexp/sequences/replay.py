"""A port of bcftools 1.16 consensus' record application, for clusters of overlapping
records (the rare case: non-overlapping records are applied as independent edits by
`hapexp.sequences.plan`). Coordinates are 0-based."""

from __future__ import annotations


def replay(buf: bytearray, ori: int, recs, region_end: int) -> tuple[bytearray, int, tuple]:
    """Apply `recs` [(pos0, REF, ALT), ...] to `buf` (reference from 0-based `ori`) like bcftools.

    A literal port of apply_variant() of bcftools 1.16 consensus.c for the overlap
    cases (frozen position, prev_base special case, insertion `ibeg`), and of its
    chain output (`push_chain_gap`, `-c chain.txt`): which reference bases stay
    aligned to which bases of the result. `buf` ends at `region_end` when a record
    may run past it. Returns (buffer, records skipped, aligned blocks) with blocks
    ((ref_off, alt_off, length), ...) relative to `ori` and the buffer start.
    """
    frz, prev_is_insert, prev_base_pos, prev_base = -1, False, -1, 0
    mod_off, skipped = 0, 0
    ref_len0 = len(buf)
    # chain state (absolute coordinates): gaps after each block, start of the next block
    gaps: list[list[int]] = []  # [block_length, ref_gap, alt_gap]
    ref_last = ori
    for pos, ref, alt in recs:
        rlen = len(ref)
        indel = len(ref) != len(alt)
        trim_beg = 1 if (indel and ref[0] == alt[0]) else 0
        if pos <= frz and (pos < frz or not trim_beg or prev_is_insert):
            skipped += 1
            continue
        idx = pos - ori + mod_off
        if idx < 0:
            skipped += 1
            continue
        if rlen > len(buf) - idx:
            rlen = len(buf) - idx
            if len(alt) > rlen:
                alt = alt[:rlen]
        if buf[idx : idx + rlen] != ref[:rlen]:
            ok = (
                prev_base_pos == pos
                and ref[0] == prev_base
                and (rlen == 1 or ref[1:rlen] == buf[idx + 1 : idx + rlen])
            )
            if not ok:  # bcftools aborts here; skip the record instead
                skipped += 1
                continue
        alen = len(alt)
        len_diff = alen - rlen
        if len_diff <= 0:
            prev_base = buf[idx + rlen - 1]
            prev_base_pos = pos + rlen - 1
            prev_is_insert = False
            buf[idx + trim_beg : idx + rlen] = alt[trim_beg:]
        else:
            prev_is_insert = True
            prev_base_pos = pos
            ibeg = 1 if ref[0] == alt[0] else 0
            buf[idx + ibeg : idx + rlen] = alt[ibeg:]
        if len_diff:
            # push_chain_gap: an indel sharing its first base with ALT keeps that base aligned
            if alt[:1] == ref[:1]:
                g_ref, g_rlen, g_alen = pos + 1, rlen - 1, alen - 1
            else:
                g_ref, g_rlen, g_alen = pos, rlen, alen
            if gaps and g_ref <= ref_last:  # back to back with the previous gap: one gap
                gaps[-1][1] += g_rlen
                gaps[-1][2] += g_alen
            else:
                gaps.append([g_ref - ref_last, g_rlen, g_alen])
            ref_last = g_ref + g_rlen
        mod_off += len_diff
        frz = pos + rlen - 1
    blocks, r, q = [], 0, 0
    for n, rg, ag in gaps:
        blocks.append((r, q, n))
        r, q = r + n + rg, q + n + ag
    blocks.append((r, q, ref_len0 - r))
    return buf, skipped, tuple(blocks)
