"""Rule genes: the cohort's gene table (in expression, on a VCF contig and in the FASTA)."""

import sys

sys.path.insert(0, snakemake.scriptdir)

from hapexp.log import setup_rule_logging

log = setup_rule_logging(snakemake)

from hapexp.inputs import exons as E
from hapexp.inputs import genes as G
from hapexp.inputs.formats import read_expression, read_sample_list
from hapexp.io import atomic_output, write_tsv
from hapexp.variants.files import fasta_lengths, vcf_contigs, vcf_paths, vcf_samples

gcfg = snakemake.params.genes
ccfg = snakemake.params.cohort
table = G.load_genes(gcfg)
expr = read_expression(ccfg["expression"], ccfg["expression_format"])
vcfs = vcf_paths(ccfg["vcf"], ccfg.get("chromosomes"))
contigs = [c for v in vcfs for c in vcf_contigs(v)]
fa_len = fasta_lengths(snakemake.input.fasta)
genes, counts = G.build_gene_table(
    table,
    expr.index,
    contigs,
    fa_len,
    harmonize=snakemake.params.harmonize,
    source=gcfg.get("gtf") or gcfg["table"],
)
log.info("genes: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
vs = vcf_samples(vcfs[0])
es = list(expr.columns)
if ccfg.get("samples"):
    wanted = set(read_sample_list(ccfg["samples"]))
    es = [s for s in es if s in wanted]
ov = G.sample_overlap(vs, es)
log.info(
    "samples: VCF=%(vcf)d expression=%(expression)d both=%(both)d VCF-only=%(vcf_only)d expression-only=%(expression_only)d",
    ov,
)
both = [s for s in es if s in set(vs)]
if not both:
    from hapexp.errors import InputError

    raise InputError(
        vcfs[0],
        "no sample is both in the VCF and in the expression matrix",
        "Check the sample ids of both files.",
    )
if genes.empty:
    from hapexp.errors import InputError

    raise InputError(
        gcfg.get("gtf") or gcfg["table"], "no gene left after matching", "See the counts in the log."
    )
exons = E.exon_table(E.load_exons(gcfg), genes)
n_with = exons["gene_id"].nunique()
log.info("exons: %d merged exons for %d of %d genes", len(exons), n_with, len(genes))
write_tsv(genes, snakemake.output.genes)
write_tsv(exons, snakemake.output.exons)
with atomic_output(snakemake.output.samples) as tmp:
    tmp.write_text("".join(f"{s}\n" for s in both))
