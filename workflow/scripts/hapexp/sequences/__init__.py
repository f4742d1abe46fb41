"""Sequences: the compact haplotype index (haplotypes: writing, the stage; index: reading), the edits a
haplotype carries (plan, with bcftools' replay for overlapping records), coordinate maps
(coords), rendering of personal windows (render, windows) and the FASTA export (fasta)."""
