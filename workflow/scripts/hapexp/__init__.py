"""hapexp: personal-genome sequence-to-expression benchmarking.

All logic of the workflow lives here; `workflow/scripts/*.py` are thin wrappers
that read `snakemake.input/output/params` and call into this package.
"""

__version__ = "0.1.0"
