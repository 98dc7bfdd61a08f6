"""The registry of file formats: detection and dispatch to one importer per format.

An importer is a module in :mod:`glucotwin.data.importers` that defines ``FORMAT``, a
:class:`Format` with a ``sniff`` (does this file look like mine? given the path and its first
64 KiB) and a ``read`` (path, :class:`ImportOptions`) -> :class:`Recording`. Detection asks
the formats in registry order (most specific first, the generic CSV last). A format may also
``diagnose`` a file that no format claims but that belongs to its world (e.g. FHIR Shorthand
source next to FHIR JSON): its message replaces "format not recognised".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from glucotwin.data.errors import DataError, UnknownFormatError
from glucotwin.data.model import Recording

HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class ImportOptions:
    """What a user may tell an importer.

    ``timezone``: IANA zone of the device clock for sources that write local time without a
    zone (``None`` keeps floating local time). ``subject``: identifier to use instead of the
    one found in or derived from the file. ``column_map``: generic CSV header -> canonical
    column name (``timestamp``, ``glucose_mg_dl``, ``glucose_mmol_l``, ``insulin_u``,
    ``basal_u_per_h``, ``carbs_g``, ``subject``).
    """

    timezone: str | None = None
    subject: str | None = None
    column_map: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Format:
    """One importable format; ``diagnose(path, head)`` says what an unclaimed file is and
    what to do with it (None when the file is nothing to this format)."""

    name: str
    description: str
    sniff: Callable[[Path, bytes], bool]
    read: Callable[[Path, ImportOptions], Recording]
    extensions: Sequence[str] = ()
    diagnose: Callable[[Path, bytes], str | None] | None = None


# Most specific first; the generic CSV accepts any CSV with the right header, so it is last.
IMPORTER_MODULES = (
    "parquet",
    "dexcom_clarity",
    "libreview",
    "medtronic_carelink",
    "glooko",
    "nightscout",
    "tidepool",
    "fhir",
    "ohiot1dm",
    "azt1d",
    "shanghai",
    "replaybg",
    "generic_csv",
)


def _load_formats() -> dict[str, Format]:
    formats: dict[str, Format] = {}
    for module_name in IMPORTER_MODULES:
        module = importlib.import_module(f"glucotwin.data.importers.{module_name}")
        fmt: Format = module.FORMAT
        formats[fmt.name] = fmt
    return formats


_FORMATS: dict[str, Format] | None = None


def formats() -> dict[str, Format]:
    """Every known format by name, in detection order."""
    global _FORMATS
    if _FORMATS is None:
        _FORMATS = _load_formats()
    return _FORMATS


def detect_format(path: str | Path) -> Format:
    """The first format whose ``sniff`` accepts the file; :class:`UnknownFormatError` if none."""
    path = Path(path)
    head = _head(path)
    for fmt in formats().values():
        try:
            if fmt.sniff(path, head):
                return fmt
        except Exception:  # a sniffer must never stop detection; the next one may fit
            continue
    for fmt in formats().values():
        reason = fmt.diagnose(path, head) if fmt.diagnose is not None else None
        if reason:
            raise UnknownFormatError(f"{reason} (format {fmt.name})", file=path)
    names = ", ".join(formats())
    raise UnknownFormatError(
        f"format not recognised (known formats: {names}; use --format to force one)", file=path
    )


def read_file(
    path: str | Path,
    format: str | None = None,
    options: ImportOptions | None = None,
) -> Recording:
    """Import one file into a validated :class:`Recording`.

    Raises :class:`DataError` naming the file, line and field for bad input.
    """
    path = Path(path)
    options = options or ImportOptions()
    if format is None:
        fmt = detect_format(path)
    else:
        try:
            fmt = formats()[format]
        except KeyError:
            raise UnknownFormatError(
                f"unknown format {format!r} (known: {', '.join(formats())})", file=path
            ) from None
        _head(path)
    try:
        recording = fmt.read(path, options)
    except DataError as exc:
        raise exc.located(path) from exc
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise DataError(f"not a valid {fmt.name} file: {exc}", file=path) from exc
    recording.meta.setdefault("format", fmt.name)
    return recording


def read_files(
    paths: Sequence[str | Path],
    format: str | None = None,
    options: ImportOptions | None = None,
) -> Recording:
    """Import several files and merge them; any bad file stops the whole import."""
    recordings = [read_file(p, format=format, options=options) for p in paths]
    if len(recordings) == 1:
        return recordings[0]
    return Recording.concat(recordings)


def _head(path: Path) -> bytes:
    if not path.exists():
        raise DataError("file not found", file=path)
    if path.is_dir():
        raise DataError("is a folder, not a file", file=path)
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if not head:
        raise DataError("file is empty", file=path)
    return head
