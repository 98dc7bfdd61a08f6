"""Choose an exporter by the output file's name: one entry point for the CLI and the service."""

from __future__ import annotations

from pathlib import Path

from glucotwin.data.errors import DataError
from glucotwin.data.model import Recording

SUFFIXES = {
    ".parquet": "parquet",
    ".fhir.json": "fhir",
    ".json": "nightscout",
    ".csv": "csv",
}


def export_kind(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    raise DataError(
        f"cannot tell the output format from the name (use one of {', '.join(SUFFIXES)})",
        file=path,
    )


def write_any(recording: Recording, path: str | Path) -> Path:
    """Write ``recording`` as Parquet, generic CSV, Nightscout JSON or a FHIR CGM bundle."""
    path = Path(path)
    kind = export_kind(path)
    if kind == "parquet":
        from glucotwin.data.parquet import write_parquet

        return write_parquet(recording, path)
    if kind == "csv":
        from glucotwin.data.exporters import write_csv

        write_csv(recording, path)
    elif kind == "nightscout":
        from glucotwin.data.exporters import write_nightscout

        write_nightscout(recording, path)
    else:
        from glucotwin.data.fhir import write_fhir_bundle
        from glucotwin.metrics import compute_metrics

        if len(recording.subjects) > 1:
            raise DataError("a FHIR CGM bundle holds one person: choose one subject", file=path)
        write_fhir_bundle(recording, path, compute_metrics(recording))
    return path
