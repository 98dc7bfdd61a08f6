"""Reading JSON exports: the document, and one field of many records as a pandas column.

Shared by the JSON importers (Nightscout, Tidepool, FHIR) so that each reports a syntax error
at its text line the same way; numbers in those fields are read with
:func:`glucotwin.data.textio.parse_number_cells`, which names the record of a bad one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from glucotwin.data.errors import DataError


def malformed(exc: json.JSONDecodeError, file: Path | str | None) -> DataError:
    """The :class:`DataError` for a JSON syntax error, at its text line."""
    return DataError(
        f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        file=file,
        line=exc.lineno,
    )


def load_json(text: str, file: Path | str | None) -> Any:
    """Parse one JSON document; a syntax error is a :class:`DataError` at its line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise malformed(exc, file) from exc


def field_values(records: pd.DataFrame, name: str) -> pd.Series:
    """Values of field ``name`` of each record (a frame of records), None where absent."""
    if name in records:
        return records[name]
    return pd.Series(None, index=records.index, dtype=object)


def field_text(records: pd.DataFrame, name: str) -> pd.Series:
    """Field ``name`` as stripped strings (missing stays missing)."""
    return field_values(records, name).astype("string").str.strip()
