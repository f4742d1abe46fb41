"""The simulated demo cohort with a known answer.

In the order the simulation runs: `genome` (reference + msprime variants), `layout` (TSS
placement, h2, exons), `design` (motif planting, causal variants, ISM check),
`phenotype` (genetic value + noise, covariates, hidden factors), `writers` (files);
`readout` is the oracle read-out of personal windows they share; `simulate` runs them;
`files` names the outputs (one tissue, or several: `simulate.tissues`).
"""
