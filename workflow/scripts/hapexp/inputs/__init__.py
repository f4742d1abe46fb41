"""Inputs: annotation (GTF/GFF3), expression/covariate formats, gene tables, expression preparation, input validation, downloads."""
