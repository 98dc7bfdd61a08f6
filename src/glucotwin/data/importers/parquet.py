"""GlucoTwin's own Parquet files (written by ``glucotwin import``)."""

from __future__ import annotations

from pathlib import Path

from glucotwin.data.formats import Format, ImportOptions
from glucotwin.data.model import Recording
from glucotwin.data.parquet import looks_like_parquet, read_parquet


def _read(path: Path, options: ImportOptions) -> Recording:
    return read_parquet(path)


FORMAT = Format(
    name="parquet",
    description="GlucoTwin canonical Parquet",
    sniff=lambda path, head: looks_like_parquet(head),
    read=_read,
    extensions=(".parquet",),
)
