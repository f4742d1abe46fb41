"""The verdict: cross-individual and cross-gene performance, ISM/eQTL concordance, the split verdict, summary and figures."""
