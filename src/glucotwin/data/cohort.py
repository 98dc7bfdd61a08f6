"""A virtual cohort as one Parquet file: one row per patient.

Columns: ``patient`` and ``group`` (strings), the 32 UVA/Padova parameters under their field
names (``BW``, ``Vg``, ...; units in :class:`~glucotwin.physiology.UvaPadovaParams`), the
initial state as ``x0_<state field>`` (``x0_gp_mg_per_kg``, ...) and the therapy settings
under their :class:`~glucotwin.physiology.TherapySettings` names, all float64. The schema
version travels in the Parquet key-value metadata under ``glucotwin``. Writing is atomic;
reading validates columns, values and parameters and raises :class:`DataError`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from glucotwin.data.errors import DataError
from glucotwin.physiology import TherapySettings, UvaPadovaParams, UvaPadovaState, VirtualCohort

META_KEY = b"glucotwin"
COHORT_SCHEMA = "virtual-cohort/1"
STATE_COLUMNS = tuple(f"x0_{field}" for field in UvaPadovaState._fields)
NUMERIC_COLUMNS = (*UvaPadovaParams._fields, *STATE_COLUMNS, *TherapySettings._fields)


def write_cohort(path: str | Path, cohort: VirtualCohort, groups: Sequence[str]) -> Path:
    """Write ``cohort`` with each patient's age ``groups`` entry; atomic (temporary file
    beside ``path``, then renamed)."""
    path = Path(path)
    if len(groups) != len(cohort):
        raise ValueError(f"{len(groups)} groups for {len(cohort)} patients")
    columns: dict[str, pa.Array] = {
        "patient": pa.array(list(cohort.names), pa.string()),
        "group": pa.array(list(groups), pa.string()),
    }
    trees = (cohort.params, cohort.x0, cohort.therapy)
    names = (UvaPadovaParams._fields, STATE_COLUMNS, TherapySettings._fields)
    for tree, labels in zip(trees, names, strict=True):
        for label, leaf in zip(labels, tree, strict=True):
            columns[label] = pa.array(np.asarray(leaf, np.float64))
    table = pa.table(columns).replace_schema_metadata(
        {META_KEY: json.dumps({"schema": COHORT_SCHEMA}).encode()}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_cohort(path: str | Path) -> tuple[VirtualCohort, tuple[str, ...]]:
    """Read a file written by :func:`write_cohort`: the cohort and each patient's group.

    Raises :class:`DataError` (file, row as line 2.. like a CSV, field) for an unreadable
    file, another schema, a missing column, a repeated patient, a non-finite value or
    parameters that fail :meth:`UvaPadovaParams.validate`.
    """
    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"not a readable Parquet file: {exc}", file=path) from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    schema = json.loads(raw).get("schema") if raw else None
    if schema != COHORT_SCHEMA:
        raise DataError(f"not a GlucoTwin virtual cohort (schema {schema!r})", file=path)
    for column in ("patient", "group", *NUMERIC_COLUMNS):
        if column not in table.column_names:
            raise DataError("column missing", file=path, field=column)
    names = tuple(str(v) for v in table.column("patient").to_pylist())
    groups = tuple(str(v) for v in table.column("group").to_pylist())
    seen: dict[str, int] = {}
    for row, name in enumerate(names):
        if name in seen:
            raise DataError(f"patient {name!r} repeats row {seen[name] + 2}", file=path,
                            line=row + 2, field="patient")  # fmt: skip
        seen[name] = row
    values = {}
    for column in NUMERIC_COLUMNS:
        array = table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise DataError(f"must be finite, got {array[bad[0]]!r}", file=path,
                            line=int(bad[0]) + 2, field=column)  # fmt: skip
        values[column] = array
    try:
        params = UvaPadovaParams.from_mapping(values, names=names)
    except ValueError as exc:
        raise DataError(str(exc), file=path) from None
    x0 = UvaPadovaState(*(jnp.asarray(values[c]) for c in STATE_COLUMNS))
    therapy = TherapySettings(*(jnp.asarray(values[c]) for c in TherapySettings._fields))
    return VirtualCohort(names, params, x0, therapy), groups
