"""Sequences: the compact haplotype index, bcftools' replay of records, coordinate maps and rendering of personal windows."""
