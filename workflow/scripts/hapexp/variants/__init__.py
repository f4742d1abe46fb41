"""Variants: the cohort's VCF/BCF files (files), normalization and the REF check
(normalize), the one VCF scanner (scan), the one genotype/dosage reader (genotypes),
windows and regions (windows), the variant policy (policy) and the VCF content checks of
input validation (checks)."""
