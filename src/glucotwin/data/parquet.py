"""Lossless persistence of a :class:`~glucotwin.data.model.Recording` as one Parquet file.

The four tables are stacked into one long table with a ``stream`` column (each stream's own
columns, the others null); the metadata and the schema version travel in the Parquet
key-value metadata under ``glucotwin``. Reading splits the streams again and restores the
canonical dtypes, so ``read_parquet(write_parquet(r)) == r`` exactly.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from glucotwin.data.errors import DataError
from glucotwin.data.model import SCHEMA_VERSION, Recording, Stream, stream_columns

META_KEY = b"glucotwin"
PARQUET_MAGIC = b"PAR1"


def _all_columns() -> dict[str, str]:
    columns: dict[str, str] = {"stream": "string"}
    for stream in Stream:
        for name, dtype in stream_columns(stream).items():
            known = columns.setdefault(name, dtype)
            if known != dtype:  # pragma: no cover - schema consistency guard
                raise AssertionError(f"column {name} has two dtypes: {known}, {dtype}")
    return columns


def to_table(recording: Recording) -> pa.Table:
    """The recording as one Arrow table with the metadata attached."""
    columns = _all_columns()
    frames = []
    for stream in Stream:
        table = recording.table(stream)
        frame = table.assign(stream=stream.value)
        frames.append(frame)
    stacked = pd.concat(frames, ignore_index=True)
    stacked = stacked.reindex(columns=list(columns)).astype(columns)
    arrow = pa.Table.from_pandas(stacked, preserve_index=False)
    payload = {"schema_version": SCHEMA_VERSION, "meta": recording.meta}
    metadata = dict(arrow.schema.metadata or {})
    metadata[META_KEY] = json.dumps(payload).encode()
    return arrow.replace_schema_metadata(metadata)


def write_parquet(recording: Recording, path: str | Path) -> Path:
    """Write atomically: a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(to_table(recording), tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_parquet(path: str | Path) -> Recording:
    """Read a file written by :func:`write_parquet`."""
    path = Path(path)
    try:
        arrow = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", file=path) from exc
    raw = (arrow.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise DataError("Parquet file was not written by GlucoTwin (no metadata)", file=path)
    payload = json.loads(raw)
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"schema version {version} is not supported (this GlucoTwin reads {SCHEMA_VERSION})",
            file=path,
        )
    frame = arrow.to_pandas()
    tables = {}
    for stream in Stream:
        columns = stream_columns(stream)
        part = frame[frame["stream"] == stream.value]
        tables[stream.value] = part[list(columns)].astype(columns).reset_index(drop=True)
    return Recording(**tables, meta=payload["meta"])


def looks_like_parquet(head: bytes) -> bool:
    return head.startswith(PARQUET_MAGIC)
