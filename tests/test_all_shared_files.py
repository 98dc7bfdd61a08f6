"""Every real file under ../shared/data imports, detected as the format of its folder.

The files are listed at collection time (``pytest -v`` shows each one checked); a test
walks the folder again through the ``shared_data`` fixture and fails on a file that no entry
of :data:`EXPECTED` covers, so a new dataset cannot slip in untested.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED_DATA

from glucotwin.data import DataError, Stream
from glucotwin.data.formats import detect_format, read_file

# Folder under shared/data -> the format every file in it (and below it) must be; the longest
# matching folder wins.
EXPECTED = {
    "azt1d": "azt1d",
    "formats/dexcom_clarity_csv": "dexcom_clarity",
    "formats/fhir_cgm": "fhir",
    "formats/glooko_csv": "glooko",
    "formats/libreview_csv": "libreview",
    "formats/medtronic_carelink_csv": "medtronic_carelink",
    "formats/nightscout_json": "nightscout",
    "formats/ohiot1dm_xml": "ohiot1dm",
    "formats/tidepool_json": "tidepool",
    "replaybg_example": "replaybg",
    "shanghai": "shanghai",
}
# reference/ holds simulator reference trajectories (simglucose outputs that the physiology
# tests compare against), not patient data in an exchange format: nothing there is imported.
NOT_DATA_FOLDERS = ("reference",)
NOT_DATA_NAMES = ("README.md", "SHA256SUMS")
# The one file that must not import: FHIR Shorthand source, compiled to the JSON next to it.
FHIR_SHORTHAND = "formats/fhir_cgm/hl7-cgm_examples.fsh"


def data_files(root: Path) -> list[str]:
    """Paths (relative, POSIX) of every data file under ``root``."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file()
        and path.relative_to(root).parts[0] not in NOT_DATA_FOLDERS
        and path.name not in NOT_DATA_NAMES
        and not path.name.startswith("LICENSE")
    )


def expected_format(name: str) -> str | None:
    folders = [f for f in EXPECTED if name.startswith(f"{f}/")]
    return EXPECTED[max(folders, key=len)] if folders else None


FILES = data_files(SHARED_DATA) if SHARED_DATA.is_dir() else []
IMPORTABLE = [name for name in FILES if name != FHIR_SHORTHAND]


def test_every_data_file_has_an_expected_format(shared_data):
    found = data_files(shared_data)
    assert found == FILES  # the walk at collection time saw the same files
    unknown = [name for name in found if expected_format(name) is None]
    assert unknown == [], f"add these files' folders to EXPECTED: {unknown}"
    assert FHIR_SHORTHAND in found
    assert len(IMPORTABLE) == len(found) - 1


@pytest.mark.parametrize("name", IMPORTABLE)
def test_file_is_detected_and_imports(shared_data, name):
    path = shared_data / name
    assert detect_format(path).name == expected_format(name)
    recording = read_file(path)
    assert recording.meta["format"] == expected_format(name)
    for stream in Stream:  # every row names the file it came from (a ZIP: file/member)
        source = recording.table(stream)["source_file"]
        assert source.str.startswith(path.name).all(), stream


def test_fhir_shorthand_source_is_refused_with_advice(shared_data):
    path = shared_data / FHIR_SHORTHAND
    with pytest.raises(DataError, match=r"FHIR Shorthand.*compile it with SUSHI"):
        detect_format(path)
    with pytest.raises(DataError, match=r"FHIR Shorthand.*compile it with SUSHI"):
        read_file(path)
