"""Variants: the cohort's VCF/BCF files, normalization, genotype/dosage reading, cis windows and the variant policy."""
