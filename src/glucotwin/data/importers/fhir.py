"""HL7 FHIR R4 continuous glucose monitoring (CGM) resources, as JSON.

Spec: the HL7 FHIR CGM implementation guide hl7.fhir.uv.cgm 1.0.0 (FHIR R4 4.0.1;
http://hl7.org/fhir/uv/cgm); codes and units in :mod:`glucotwin.data.fhir`. One file holds a
Bundle (``transaction``, ``batch``, ``collection``, ``searchset``, ``document`` or
``message``) or a single resource. Every resource is validated with the fhir.resources R4B
models (why R4B: see :mod:`glucotwin.data.fhir`) before anything is read from it, so a
structurally invalid resource is rejected with a :class:`DataError` naming the resource, its
``Bundle.entry`` index as ``line`` and the element path as ``field``. A JSON syntax error
names the text line instead.

Mapping:

- Observation 99504-3 (UCUM ``mg/dL``) or 105272-9 (``mmol/L``, converted at 18.0182) with
  ``valueQuantity`` -> one CGM reading. The unit is taken from ``valueQuantity.code`` (UCUM),
  not the display text (``mg/dl``); a unit that contradicts the LOINC code is an error.
  ``comparator`` ``<``/``<=`` or ``>``/``>=`` -> censored below/above at the stated value
  (the sensor's limit). ``effectiveDateTime`` (or ``effectiveInstant``) must be a full time;
  its UTC offset is kept in ``utc_offset_min``.
- Summary panel 107931-8 and its members (mean glucose 97507-8 / 105273-7, times in ranges
  106793-3 with its five components, GMI 97506-0, CV 104638-2, days of wear 104636-6, sensor
  active 104637-4) -> ``meta["fhir_summary"]``: one group per subject and ``effectivePeriod``,
  ``{"subject", "period": {"start", "end"}, "panel": bool, "values": {LOINC: {"name",
  "value", "unit"}}}`` (values as sent, in their own unit). A panel adds ``"members"`` (the
  references of its ``hasMember``) and ``"missing_members"`` (those not in the file); a panel
  alone (the IG's ``cgmSummaryExample``) is a group without values.
- DiagnosticReport 107931-8 (the IG's CGM summary report, a PDF) -> ``meta["fhir_reports"]``:
  ``{"id", "code", "status", "subject", "period"`` (or ``"effective"``), ``"issued",
  "results"`` (its ``result`` references), ``"presented_form": [{"content_type",
  "size_bytes", "sha256"}]}``: the document is described, never copied (the base64 is dropped;
  an attachment given by ``url`` keeps the url).
- Patient -> the subject: its ``official`` identifier, else its first identifier, else its
  id (``meta["fhir_patients"]``). Names, birth date, gender, address and telecom are never
  read. A subject reference to a Patient not in the file gives the referenced id.
- Device -> ``meta["fhir_devices"]`` (id, name, serial and model number, manufacturer,
  identifiers) and the ``device`` column: the user-friendly name (the IG's
  ``deviceName[cgmDeviceName]``), else another deviceName, model number or serial. Readings
  get the Device they reference; without a reference, the one Device of the file, if there is
  exactly one (the IG submits one CGM device per bundle).

Dropped and counted in ``meta["fhir_skipped"]``: Observations with status
``entered-in-error`` or ``cancelled``, readings with ``dataAbsentReason`` instead of a value,
Observations and DiagnosticReports with other codes, entries without a resource and every
other resource type. Readings whose status is not final/amended/corrected (e.g.
``preliminary``) are kept with ``flag`` ``status=<status>``.
``valueSampledData`` series (e.g. the German HDDT profile) are recognised and rejected as
unsupported. ``history`` and response Bundles are rejected: they hold versions or outcomes,
not a data set.

``source_line`` is ``i`` of ``Bundle.entry[i]`` (0-based, as FHIRPath counts), missing for a
lone resource. A file with no reading, summary, report, Patient or Device is rejected: nothing
would be imported. FHIR Shorthand source (``.fsh``, e.g. the IG's ``examples.fsh``) is not an
exchange format: it is recognised and rejected with the advice to compile it with SUSHI.
Validation costs about 60 µs per resource (pydantic), so a year of 5-minute readings (105,000
Observations) takes several seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fhir_core.types import DateTime, Decimal, Instant, Uri
from pydantic import ValidationError

from glucotwin.data.errors import DataError
from glucotwin.data.fhir import (
    LOINC,
    READING_UNITS,
    SUMMARY_MEMBERS,
    SUMMARY_PANEL,
    TIME_IN_RANGE_COMPONENTS,
    TIMES_IN_RANGES,
    UCUM,
    model_class,
    validation_field,
)
from glucotwin.data.formats import HEAD_BYTES, Format, ImportOptions
from glucotwin.data.jsonio import load_json
from glucotwin.data.model import MG_DL_PER_MMOL_L, Recording
from glucotwin.data.textio import read_text

ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR id; fhir_core's Id pattern, at most 64 long
RESOURCE_TYPE = re.compile(rb'"resourceType"\s*:\s*"[A-Z][A-Za-z]+"')
FULL_DATE_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
OFFSET = r"(Z|[+-]\d{2}:\d{2})$"
# "Patient/123", "https://server/fhir/Patient/123", ".../Patient/123/_history/2"
RELATIVE_REFERENCE = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
)
NOT_DATA_BUNDLES = {
    "history": "it holds past versions of resources",
    "transaction-response": "it holds a server's responses",
    "batch-response": "it holds a server's responses",
}
DROPPED_STATUSES = frozenset({"entered-in-error", "cancelled"})
FINAL_STATUSES = frozenset({"final", "amended", "corrected"})
CENSORING = {"<": "below", "<=": "below", ">": "above", ">=": "above"}
DEVICE_NAME_TYPES = ("user-friendly-name", "model-name", "manufacturer-name", "udi-label-name")
# FHIR Shorthand declarations (FSH spec, hl7.fhir.uv.shorthand: "Item declarations").
FSH_DECLARATION = re.compile(
    rb"^(?:Alias|Profile|Extension|Logical|Resource|Instance|Invariant|ValueSet|CodeSystem"
    rb"|RuleSet|Mapping):[ \t]*\S",
    re.MULTILINE,
)
FSH_KEYWORD = re.compile(rb"^(?:InstanceOf|Parent|Usage|Title|Description):", re.MULTILINE)


def _sniff(path: Path, head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"{") and RESOURCE_TYPE.search(text) is not None


def _shorthand(path: Path, head: bytes) -> str | None:
    """Why a FHIR Shorthand source file cannot be imported (None for any other file)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith((b"{", b"[", b"<")) or not FSH_DECLARATION.search(text):
        return None
    if path.suffix.lower() != ".fsh" and not FSH_KEYWORD.search(text):
        return None
    return (
        "this is FHIR Shorthand (FSH) source, not FHIR JSON: compile it with SUSHI "
        "(https://fshschool.org, `sushi build`) and import the JSON resources it writes"
    )


def _load(path: Path) -> dict[str, Any]:
    document = load_json(read_text(path), path)
    if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
        raise DataError(
            "not a FHIR resource: no top-level 'resourceType'", file=path, field="resourceType"
        )
    return document


def _label(resource: dict[str, Any]) -> str:
    kind = resource.get("resourceType")
    return f"{kind}/{resource['id']}" if isinstance(resource.get("id"), str) else str(kind)


class _Validator:
    """Validate resources with the R4B models, the model running once per resource *shape*.

    The readings of a bundle differ only in ``id``, time and value, and pydantic needs about
    a second for each 10,000 resources. A resource is valid exactly when its shape (the
    resource with those leaves replaced by a placeholder) is valid and each of those leaves
    is a valid FHIR primitive of its type, as such primitives are checked on their own. So a
    resource whose leaves pass the library's own patterns (``fhir_core.types``) and whose
    shape was validated before is accepted; any other goes through the model, which gives
    its own error message.
    """

    MASKED = ("id", "effectiveDateTime", "effectiveInstant")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.valid_shapes: set[str] = set()

    @staticmethod
    def _primitive_ok(name: str, value: Any) -> bool:
        if name == "id":
            return isinstance(value, str) and len(value) <= 64 and bool(ID.fullmatch(value))
        if not isinstance(value, str) or "T" not in value:
            return False
        pattern = Instant.pattern if name == "effectiveInstant" else DateTime.pattern
        if not pattern.fullmatch(value):
            return False
        try:  # the model also checks that the date exists (no 30 February)
            return datetime.fromisoformat(value).tzinfo is not None
        except ValueError:
            return False

    def _shape(self, resource: dict[str, Any]) -> str | None:
        """The resource with its varying leaves masked; None when it needs the model."""
        masked = dict(resource)
        for name in self.MASKED:
            if name in masked:
                if not self._primitive_ok(name, masked[name]):
                    return None
                masked[name] = ""
        quantity = masked.get("valueQuantity")
        if isinstance(quantity, dict) and "value" in quantity:
            value = quantity["value"]
            if not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and Decimal.pattern.fullmatch(str(value))
            ):
                return None
            masked["valueQuantity"] = {**quantity, "value": 0}
        return json.dumps(masked, sort_keys=True)

    def __call__(self, resource: Any, index: int | None) -> dict[str, Any]:
        """``resource`` unchanged when valid; else :class:`DataError` naming entry and field."""
        where = "the resource" if index is None else f"Bundle.entry[{index}].resource"
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise DataError(
                f"{where} has no resourceType", file=self.path, line=index, field="resourceType"
            )
        shape = self._shape(resource)
        if shape is not None and shape in self.valid_shapes:
            return resource
        kind = resource["resourceType"]
        try:
            model = model_class(kind)
        except ValueError:
            raise DataError(
                f"{where}: {kind!r} is not a FHIR R4 resource type",
                file=self.path,
                line=index,
                field="resourceType",
            ) from None
        try:
            model.model_validate(resource)
        except ValidationError as exc:
            raise DataError(
                f"{where} ({_label(resource)}) is not a valid FHIR R4 {kind}: "
                f"{exc.errors()[0]['msg']}",
                file=self.path,
                line=index,
                field=validation_field(exc),
            ) from exc
        if shape is not None:
            self.valid_shapes.add(shape)
        return resource


def _validate_bundle_shell(document: dict[str, Any], entries: list[Any], path: Path) -> None:
    """Validate the Bundle without its entries' resources, one entry per shape (as in
    :class:`_Validator`; here ``fullUrl`` is the leaf that varies)."""
    picked: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            picked[f"#{i}"] = i
            continue
        shell = {k: v for k, v in entry.items() if k != "resource"}
        url = shell.get("fullUrl")
        if isinstance(url, str) and url and Uri.pattern.fullmatch(url):
            shell["fullUrl"] = ""
        picked.setdefault(json.dumps(shell, sort_keys=True, default=repr), i)
    positions = list(picked.values())
    bundle = {k: v for k, v in document.items() if k != "entry"}
    bundle["entry"] = [
        {k: v for k, v in entries[i].items() if k != "resource"}
        if isinstance(entries[i], dict)
        else entries[i]
        for i in positions
    ]
    try:
        model_class("Bundle").model_validate(bundle)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        index = positions[loc[1]] if len(loc) > 1 and loc[0] == "entry" else None
        field = validation_field(exc)
        if index is not None and field is not None:
            field = re.sub(r"^entry\[\d+\]", f"entry[{index}]", field)
        raise DataError(
            f"not a valid FHIR R4 Bundle: {exc.errors()[0]['msg']}",
            file=path,
            line=index,
            field=field,
        ) from exc


def _entries(
    document: dict[str, Any], path: Path
) -> tuple[list[tuple[int | None, str | None, dict[str, Any]]], dict[str, Any], int]:
    """(index, fullUrl, resource) of every resource; bundle metadata; entries without one."""
    validate = _Validator(path)
    if document["resourceType"] != "Bundle":
        return [(None, None, validate(document, None))], {}, 0
    entries = document.get("entry") or []
    if not isinstance(entries, list):
        raise DataError("Bundle.entry is not a list", file=path, field="entry")
    _validate_bundle_shell(document, entries, path)
    kind = document.get("type")
    if kind in NOT_DATA_BUNDLES:
        raise DataError(
            f"a {kind!r} Bundle is not supported: {NOT_DATA_BUNDLES[kind]}",
            file=path,
            field="type",
        )
    found = [
        (i, e.get("fullUrl"), validate(e["resource"], i))
        for i, e in enumerate(entries)
        if e.get("resource") is not None
    ]
    meta = {
        "type": kind,
        "id": document.get("id"),
        "timestamp": document.get("timestamp"),
        "total": document.get("total"),
    }
    next_page = [
        link.get("url") for link in document.get("link") or [] if link.get("relation") == "next"
    ]
    if next_page:  # a searchset page: the rest of the search result is not in this file
        meta["next_page"] = next_page[0]
    return found, {k: v for k, v in meta.items() if v is not None}, len(entries) - len(found)


def _resolver(
    resources: list[tuple[int | None, str | None, dict[str, Any]]],
) -> Callable[[Any], dict[str, Any] | None]:
    """Resolve a Reference to a resource of this file: by fullUrl, else by ``Type/id``."""
    by_url: dict[str, dict[str, Any]] = {}
    by_key: dict[str, dict[str, Any]] = {}
    for _, full_url, resource in resources:
        if full_url:
            by_url[full_url] = resource
            match = RELATIVE_REFERENCE.search(full_url)
            if match:
                by_key[f"{match['type']}/{match['id']}"] = resource
        if isinstance(resource.get("id"), str):
            by_key[f"{resource['resourceType']}/{resource['id']}"] = resource

    def resolve(reference: Any) -> dict[str, Any] | None:
        target = (reference or {}).get("reference")
        if not target:
            return None
        if target in by_url:
            return by_url[target]
        match = RELATIVE_REFERENCE.search(target)
        return by_key.get(f"{match['type']}/{match['id']}") if match else None

    return resolve


def _patient_subject(patient: dict[str, Any]) -> str | None:
    identifiers = [i for i in patient.get("identifier") or [] if i.get("value")]
    for use in ("official", "usual"):
        for identifier in identifiers:
            if identifier.get("use") == use:
                return identifier["value"]
    if identifiers:
        return identifiers[0]["value"]
    return patient.get("id")


def _subject(reference: Any, resolve: Callable[[Any], dict[str, Any] | None]) -> str | None:
    if not reference:
        return None
    target = resolve(reference)
    if target is not None and target["resourceType"] == "Patient":
        return _patient_subject(target)
    text = reference.get("reference")
    if text:
        match = RELATIVE_REFERENCE.search(text)
        return match["id"] if match else text
    return (reference.get("identifier") or {}).get("value")


def _device_name(device: dict[str, Any]) -> str | None:
    names = {}
    for entry in device.get("deviceName") or []:
        names.setdefault(entry.get("type"), entry.get("name"))
    for kind in DEVICE_NAME_TYPES:
        if names.get(kind):
            return names[kind]
    if names:
        return next(iter(names.values()))
    return device.get("modelNumber") or device.get("serialNumber") or device.get("id")


def _device_meta(device: dict[str, Any]) -> dict[str, Any]:
    found = {
        "id": device.get("id"),
        "name": _device_name(device),
        "serial_number": device.get("serialNumber"),
        "model_number": device.get("modelNumber"),
        "manufacturer": device.get("manufacturer"),
        "identifiers": [
            {"system": i.get("system"), "value": i["value"]}
            for i in device.get("identifier") or []
            if i.get("value")
        ],
    }
    return {k: v for k, v in found.items() if v not in (None, [])}


def _loinc_codes(concept: Any) -> list[str]:
    return [
        c["code"]
        for c in (concept or {}).get("coding") or []
        if c.get("system") == LOINC and c.get("code")
    ]


def _quantity(
    holder: dict[str, Any],
    units: set[str],
    index: int | None,
    path: Path,
    element: str = "valueQuantity",
) -> tuple[float, str, str | None]:
    """(value, UCUM unit, comparator) of ``holder[valueQuantity]``, checked against ``units``."""
    quantity = holder.get("valueQuantity")
    if quantity is None:
        raise DataError("no valueQuantity", file=path, line=index, field=element)
    if quantity.get("value") is None:
        raise DataError(
            "the quantity has no value", file=path, line=index, field=f"{element}.value"
        )
    unit = quantity.get("code")
    if quantity.get("system") != UCUM or unit not in units:
        raise DataError(
            f"unknown unit {unit!r} (system {quantity.get('system')!r}); expected UCUM "
            f"{' or '.join(sorted(units))}",
            file=path,
            line=index,
            field=f"{element}.code",
        )
    return float(quantity["value"]), unit, quantity.get("comparator")


class _Summaries:
    """Summary values grouped by subject and reporting period."""

    def __init__(self) -> None:
        self.groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.panels: list[tuple[dict[str, Any], list[str]]] = []

    def group(
        self, subject: str | None, observation: dict[str, Any], index: int | None, path: Path
    ) -> dict[str, Any]:
        period = observation.get("effectivePeriod")
        if period is None:
            raise DataError(
                "a CGM summary needs effectivePeriod (the reporting period)",
                file=path,
                line=index,
                field="effectivePeriod",
            )
        key = (subject, period.get("start"), period.get("end"))
        return self.groups.setdefault(
            key,
            {
                "subject": subject,
                "period": {"start": period.get("start"), "end": period.get("end")},
                "panel": False,
                "values": {},
            },
        )

    def add(
        self,
        code: str,
        observation: dict[str, Any],
        subject: str | None,
        index: int | None,
        path: Path,
        resolve: Callable[[Any], dict[str, Any] | None],
    ) -> None:
        group = self.group(subject, observation, index, path)
        if code == SUMMARY_PANEL:
            group["panel"] = True
            members = observation.get("hasMember") or []
            group["members"] = [m.get("reference") for m in members]
            missing = [m.get("reference") for m in members if resolve(m) is None]
            self.panels.append((group, missing))
        elif code == TIMES_IN_RANGES:
            for position, component in enumerate(observation.get("component") or []):
                for loinc in _loinc_codes(component.get("code")):
                    if loinc in TIME_IN_RANGE_COMPONENTS:
                        value, unit, _ = _quantity(
                            component, {"%"}, index, path, f"component[{position}].valueQuantity"
                        )
                        group["values"][loinc] = {
                            "name": TIME_IN_RANGE_COMPONENTS[loinc],
                            "value": value,
                            "unit": unit,
                        }
        else:
            name, unit = SUMMARY_MEMBERS[code]
            value, unit, _ = _quantity(observation, {unit}, index, path)
            group["values"][code] = {"name": name, "value": value, "unit": unit}

    def result(self) -> list[dict[str, Any]]:
        for group, missing in self.panels:
            if missing:
                group["missing_members"] = missing
        return list(self.groups.values())


READING_FIELDS = (
    "source_line",
    "time_text",
    "value",
    "unit",
    "censored",
    "subject",
    "device",
    "flag",
)


def _reading(
    resource: dict[str, Any], code: str, index: int | None, path: Path, device: str | None
) -> dict[str, Any] | None:
    """The row of one CGM reading Observation (None when it has no value, with a reason)."""
    if "valueSampledData" in resource:
        raise DataError(
            "valueSampledData series (e.g. the German HDDT profile) are not supported; "
            "only one Observation per reading with valueQuantity",
            file=path,
            line=index,
            field="valueSampledData",
        )
    if resource.get("valueQuantity") is None and resource.get("dataAbsentReason"):
        return None
    value, unit, comparator = _quantity(resource, {"mg/dL", "mmol/L"}, index, path)
    if unit != READING_UNITS[code]:
        raise DataError(
            f"LOINC {code} is glucose in {READING_UNITS[code]}, but the unit is {unit}",
            file=path,
            line=index,
            field="valueQuantity.code",
        )
    when = resource.get("effectiveDateTime") or resource.get("effectiveInstant")
    if when is None:
        raise DataError(
            "a CGM reading needs effectiveDateTime",
            file=path,
            line=index,
            field="effectiveDateTime",
        )
    status = resource["status"]
    return {
        "source_line": index,
        "time_text": when,
        "value": value,
        "unit": unit,
        "censored": CENSORING.get(comparator or "", ""),
        "device": device,
        "flag": None if status in FINAL_STATUSES else f"status={status}",
    }


def _report(
    resource: dict[str, Any], subject: str | None, index: int | None, path: Path
) -> dict[str, Any]:
    """What a CGM summary report says about itself; its documents by type, size and hash."""
    forms = []
    for position, form in enumerate(resource.get("presentedForm") or []):
        described: dict[str, Any] = {"content_type": form.get("contentType")}
        if form.get("data") is not None:
            try:
                content = base64.b64decode(form["data"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise DataError(
                    f"the attachment is not base64: {exc}",
                    file=path,
                    line=index,
                    field=f"presentedForm[{position}].data",
                ) from exc
            described["size_bytes"] = len(content)
            described["sha256"] = hashlib.sha256(content).hexdigest()
        elif form.get("url"):
            described["url"] = form["url"]
            described["size_bytes"] = form.get("size")
        forms.append({k: v for k, v in described.items() if v is not None})
    found = {
        "id": resource.get("id"),
        "code": SUMMARY_PANEL,
        "status": resource.get("status"),
        "subject": subject,
        "period": resource.get("effectivePeriod"),
        "effective": resource.get("effectiveDateTime"),
        "issued": resource.get("issued"),
        "results": [r.get("reference") for r in resource.get("result") or []],
        "presented_form": forms,
    }
    return {k: v for k, v in found.items() if v not in (None, [])}


def _read(path: Path, options: ImportOptions) -> Recording:
    with path.open("rb") as handle:
        shorthand = _shorthand(path, handle.read(HEAD_BYTES))
    if shorthand is not None:
        raise DataError(shorthand, file=path)
    document = _load(path)
    resources, bundle, empty_entries = _entries(document, path)
    resolve = _resolver(resources)
    skipped: Counter[str] = Counter()
    if empty_entries:
        skipped["entry without resource"] = empty_entries
    patients = [r for _, _, r in resources if r["resourceType"] == "Patient"]
    devices = [r for _, _, r in resources if r["resourceType"] == "Device"]
    lone_device = _device_name(devices[0]) if len(devices) == 1 else None
    summaries = _Summaries()
    rows: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    summary_codes = {SUMMARY_PANEL, TIMES_IN_RANGES, *SUMMARY_MEMBERS}

    for index, _, resource in resources:
        kind = resource["resourceType"]
        if kind in ("Patient", "Device"):
            continue
        codes = _loinc_codes(resource.get("code"))
        if kind == "DiagnosticReport" and SUMMARY_PANEL in codes:
            subject = _subject(resource.get("subject"), resolve)
            reports.append(_report(resource, subject, index, path))
            continue
        reading = [c for c in codes if c in READING_UNITS]
        summary = [c for c in codes if c in summary_codes]
        if kind != "Observation" or not (reading or summary):
            skipped[" ".join([kind, *codes])] += 1
            continue
        if resource["status"] in DROPPED_STATUSES:
            skipped[f"Observation {(reading or summary)[0]} {resource['status']}"] += 1
            continue
        subject = _subject(resource.get("subject"), resolve)
        if summary:
            summaries.add(summary[0], resource, subject, index, path, resolve)
            continue
        device = resolve(resource.get("device"))
        if device is not None and device["resourceType"] == "Device":
            device_name = _device_name(device)
        elif resource.get("device"):
            device_name = resource["device"].get("display")
        else:
            device_name = lone_device
        row = _reading(resource, reading[0], index, path, device_name)
        if row is None:
            skipped[f"Observation {reading[0]} without value (dataAbsentReason)"] += 1
        else:
            rows.append({**row, "subject": subject})

    summary_groups = summaries.result()
    if not (rows or summary_groups or reports or patients or devices):
        raise DataError(_nothing_message(resources), file=path)

    glucose = _glucose({k: [r[k] for r in rows] for k in READING_FIELDS}, path, options)
    if options.subject is None:
        glucose["subject"] = glucose["subject"].fillna(path.stem)
    meta: dict[str, Any] = {"format": "fhir", "fhir_models": "R4B"}
    if bundle:
        meta["fhir_bundle"] = bundle
    else:
        meta["fhir_resource"] = _label(document)
    if patients:
        meta["fhir_patients"] = [
            {"id": p.get("id"), "subject": _patient_subject(p)} for p in patients
        ]
    if devices:
        meta["fhir_devices"] = [_device_meta(d) for d in devices]
    if summary_groups:
        meta["fhir_summary"] = summary_groups
    if reports:
        meta["fhir_reports"] = reports
    if skipped:
        meta["fhir_skipped"] = dict(sorted(skipped.items()))
    return Recording.build(glucose=glucose, meta=meta, file=path.name)


def _nothing_message(resources: list[tuple[int | None, str | None, dict[str, Any]]]) -> str:
    found = Counter(
        " ".join([r["resourceType"], *_loinc_codes(r.get("code"))]) for _, _, r in resources
    )
    listed = ", ".join(f"{n} × {what}" for what, n in found.items()) or "no resources"
    return (
        f"nothing to import: no CGM reading, summary, summary report, Patient or Device ({listed})"
    )


def _glucose(rows: dict[str, list[Any]], path: Path, options: ImportOptions) -> pd.DataFrame:
    """The glucose table from the collected readings (times parsed as a column)."""
    lines = pd.array(rows["source_line"], dtype="Int64")
    text = pd.Series(rows["time_text"], dtype="string")
    full = text.str.fullmatch(FULL_DATE_TIME).fillna(False).to_numpy(dtype=bool)
    if not full.all():
        position = int(np.flatnonzero(~full)[0])
        line = lines[position]
        raise DataError(
            f"a CGM reading needs a full date-time with seconds and UTC offset, not "
            f"{text.iloc[position]!r}",
            file=path,
            line=None if pd.isna(line) else int(line),
            field="effectiveDateTime",
        )
    time = pd.to_datetime(text, utc=True, format="ISO8601")
    suffix = text.str.extract(OFFSET, expand=False).str.replace("Z", "+00:00", regex=False)
    sign = np.where(suffix.str[0] == "-", -1, 1)
    offset = sign * (
        pd.to_numeric(suffix.str[1:3]).to_numpy() * 60 + pd.to_numeric(suffix.str[4:6]).to_numpy()
    )
    value = np.asarray(rows["value"], dtype=float)
    mmol = np.asarray(rows["unit"], dtype=object) == "mmol/L"
    subject = (
        pd.Series(options.subject, index=text.index, dtype="string")
        if options.subject is not None
        else pd.Series(rows["subject"], dtype="string")
    )
    return pd.DataFrame(
        {
            "time": time,
            "utc_offset_min": pd.array(offset, dtype="Int16"),
            "subject": subject,
            "device": pd.Series(rows["device"], dtype="string"),
            "source_line": lines,
            "flag": pd.Series(rows["flag"], dtype="string"),
            "glucose_mg_dl": np.where(mmol, value * MG_DL_PER_MMOL_L, value),
            "source": "cgm",
            "censored": pd.Series(rows["censored"], dtype="string"),
        }
    )


FORMAT = Format(
    name="fhir",
    description="HL7 FHIR R4 CGM resources and Bundles (hl7.fhir.uv.cgm 1.0.0), JSON",
    sniff=_sniff,
    read=_read,
    extensions=(".json",),
    diagnose=_shorthand,
)
