"""Gene strands and bodies for the real cohort: biovizBase's `genesymbol` (GRCh37).

The expression BED of fastqtl-doc places each gene at its TSS (GENCODE v12) but
has no strand and no gene body. Debian's `r-bioc-biovizbase` ships `genesymbol`,
a GRanges of hg19 (= GRCh37) gene extents from UCSC knownGene with strand, HGNC
symbol and Ensembl gene id (built by biovizBase from
TxDb.Hsapiens.UCSC.hg19.knownGene + org.Hs.eg.db). It sits in the package's
lazy-load database `data/Rdata.rdb` (index `Rdata.rdx`): the index is a gzipped
R serialization mapping each object to (offset, length) in the `.rdb`, where the
object is a 4-byte big-endian length followed by a zlib stream of its R
serialization. `rdata` (PyPI) parses R serializations.
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd


def _parse(raw: bytes):
    import rdata

    with warnings.catch_warnings():
        # rdata warns about the missing file magic of lazy-load chunks and about
        # S4 classes it has no constructor for (GRanges, Rle, ...): both are expected.
        warnings.simplefilter("ignore")
        parsed = rdata.parser.parse_data(raw)
        return rdata.conversion.SimpleConverter(default_encoding="utf8").convert(parsed)


def lazyload_object(rdb: Path, rdx: Path, name: str):
    """One object of an R lazy-load database, converted by `rdata`."""
    index = _parse(gzip.decompress(Path(rdx).read_bytes()))
    variables = {str(k): v for k, v in index["variables"].items()}
    if name not in variables:
        raise KeyError(f"{rdb}: no object {name!r} (has {', '.join(sorted(variables))})")
    offset, length = (int(x) for x in variables[name])
    with open(rdb, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read(length)
    return _parse(zlib.decompress(chunk[4:]))


def _rle(rle) -> np.ndarray:
    return np.repeat(np.asarray(rle.values, dtype=object).astype(str), np.asarray(rle.lengths))


def genesymbol_table(rdb: Path, rdx: Path) -> pd.DataFrame:
    """biovizBase `genesymbol` as a table: chrom, start, end (1-based, inclusive), strand, symbol, ensembl_id."""
    gr = lazyload_object(rdb, rdx, "genesymbol")
    start = np.asarray(gr.ranges.start, dtype=np.int64)
    width = np.asarray(gr.ranges.width, dtype=np.int64)
    meta = gr.elementMetadata.listData
    table = pd.DataFrame(
        {
            "chrom": _rle(gr.seqnames),
            "start": start,  # IRanges: 1-based start, width in bases
            "end": start + width - 1,
            "strand": _rle(gr.strand),
            "symbol": np.asarray(meta["symbol"], dtype=object),
            "ensembl_id": np.asarray(meta["ensembl_id"], dtype=object),
        }
    )
    if len(table) != len(start):
        raise ValueError(f"{rdb}: genesymbol's seqnames/strand runs do not match its {len(start)} ranges")
    return table
