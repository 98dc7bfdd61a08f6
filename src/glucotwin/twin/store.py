"""A fitted twin (:class:`~glucotwin.twin.posterior.TwinPosterior`) as a JSON file.

Layout (``format_version`` 3: four meal routes B, L, D, S)::

    {"format": "glucotwin-twin", "format_version": 3, "glucotwin_version": "...",
     "disclaimer": "...", "model": "replaybg_twin",
     "parameters": {"Gb": {"value": 119.0, "unit": "mg/dL"}, ...},    # MAP, fixed, subject
     "initial_glucose_mg_dl": ..., "noise_sd_mg_dl": ...,
     "start_local": "2027-05-11T06:00:00",                            # replay minute 0
     "meal_delay_min": {"B": ..., "L": ..., "D": ..., "S": ...},      # MAP
     "si_day_factor": [1.0, ...],                                     # MAP, per fitted day
     "posterior": {"space": "unconstrained", "coordinates": [...], "mean": [...],
                   "cov": [[...]], "draws": [[...]] or null, "regularised": false},
     "fit": {"method": "map", "seed": 0, "rmse_mg_dl": ..., ...},
     "data": {"minutes": ..., "cgm_readings": ..., ...}}

Floats are written as shortest round-trip decimals and keys in a fixed order, so the same fit
gives the same bytes; the write is atomic. Loading checks every field it uses and raises
:class:`~glucotwin.data.errors.DataError` naming the file and field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from glucotwin import DISCLAIMER, __version__
from glucotwin.data.errors import DataError
from glucotwin.data.exporters import _write_atomically
from glucotwin.twin.fit import coordinate_names, days_of
from glucotwin.twin.model import FIXED_VALUES, REPLAYBG_TWIN, ROUTES
from glucotwin.twin.posterior import METHODS, TwinPosterior

FORMAT = "glucotwin-twin"
FORMAT_VERSION = 3
UNITS = {
    "Gb": "mg/dL", "SG": "1/min", "SI_B": "mL/(uU*min)", "SI_L": "mL/(uU*min)",
    "SI_D": "mL/(uU*min)", "p2": "1/min", "kd": "1/min", "ka2": "1/min", "kempt": "1/min",
    "kabs_B": "1/min", "kabs_L": "1/min", "kabs_D": "1/min", "kabs_S": "1/min", "BW": "kg",
    "u2ss": "mU/(kg*min)", "VG": "dL/kg", "VI": "L/kg", "ke": "1/min", "f": "1",
    "alpha": "min",
}  # fmt: skip
"""Units of the twin parameters (:class:`~glucotwin.twin.model.TwinParams`)."""


def twin_document(posterior: TwinPosterior, seed: int = 0) -> dict:
    """The JSON document of a fitted twin (layout in the module docstring)."""
    params = posterior.params()
    values = posterior.values()
    draws = posterior.draws
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "glucotwin_version": __version__,
        "disclaimer": DISCLAIMER,
        "model": REPLAYBG_TWIN.name,
        "parameters": {
            name: {"value": float(getattr(params, name)), "unit": unit}
            for name, unit in UNITS.items()
        },
        "initial_glucose_mg_dl": posterior.initial_glucose_mg_dl,
        "noise_sd_mg_dl": posterior.noise_sd_mg_dl,
        "start_local": pd.Timestamp(posterior.start_local).isoformat(),
        "meal_delay_min": dict(zip(ROUTES, map(float, values.meal_delay_min), strict=True)),
        "si_day_factor": [float(v) for v in np.exp(np.asarray(values.si_day_log))],
        "posterior": {
            "space": "unconstrained",
            "coordinates": list(posterior.coordinates),
            "mean": [float(v) for v in posterior.mean],
            "cov": [[float(v) for v in row] for row in posterior.cov],
            "draws": None if draws is None else [[float(v) for v in row] for row in draws],
            "regularised": posterior.regularised,
        },
        "fit": {"method": posterior.method, "seed": seed, **posterior.metrics},
        "data": posterior.data,
    }


def save_twin(path: str | Path, posterior: TwinPosterior, seed: int = 0):
    """Write a fitted twin as JSON, atomically; returns the path."""
    text = json.dumps(twin_document(posterior, seed), indent=2, allow_nan=False)
    _write_atomically(path, lambda stream: stream.write(text + "\n"))
    return Path(path)


def _get(doc: dict, key: str, kind, path: Path, field: str | None = None):
    field = field or key
    if not isinstance(doc, dict) or key not in doc:
        raise DataError("missing", file=path, field=field)
    value = doc[key]
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value):
            raise DataError(f"must be a finite number, got {value!r}", file=path, field=field)
        return float(value)
    if not isinstance(value, kind):
        raise DataError(f"must be a {kind.__name__}, got {value!r}", file=path, field=field)
    return value


def _matrix(value, shape: tuple[int, ...], path: Path, field: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("must be numbers", file=path, field=field) from None
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise DataError(f"must be finite numbers of shape {shape}", file=path, field=field)
    return array


def load_twin(path: str | Path) -> TwinPosterior:
    """Read a twin written by :func:`save_twin`. Raises :class:`DataError` naming the file
    and field for unreadable JSON, another format or model, or a missing or bad field (a
    covariance that is not symmetric positive semi-definite included)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror}", file=path) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not a JSON twin file: {exc}", file=path) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"not a GlucoTwin twin file (expected format {FORMAT!r})", file=path,
                        field="format")  # fmt: skip
    if _get(doc, "format_version", int, path) != FORMAT_VERSION:
        raise DataError(f"unsupported version (this GlucoTwin reads {FORMAT_VERSION}; refit "
                        "the twin with `glucotwin twin fit`)",
                        file=path, field="format_version")  # fmt: skip
    model = _get(doc, "model", str, path)
    if model != REPLAYBG_TWIN.name:
        raise DataError(f"unknown model {model!r} (expected {REPLAYBG_TWIN.name!r})", file=path,
                        field="model")  # fmt: skip
    parameters = _get(doc, "parameters", dict, path)
    values = {}
    for name in ("BW", "u2ss", *FIXED_VALUES):
        entry = _get(parameters, name, dict, path, f"parameters.{name}")
        values[name] = _get(entry, "value", float, path, f"parameters.{name}.value")
    for name, value in FIXED_VALUES.items():
        if values[name] != value:
            raise DataError(f"must be GlucoTwin's fixed value {value}", file=path,
                            field=f"parameters.{name}.value")  # fmt: skip
    if not values["BW"] > 0 or values["u2ss"] < 0:
        raise DataError("BW must be > 0 and u2ss >= 0", file=path, field="parameters")
    posterior = _get(doc, "posterior", dict, path)
    coordinates = _get(posterior, "coordinates", list, path, "posterior.coordinates")
    expected = coordinate_names(days_of(coordinates)) if all(
        isinstance(name, str) for name in coordinates) else None  # fmt: skip
    if coordinates != list(expected or ()):
        raise DataError(
            f"must be {list(coordinate_names(1))} followed by si_day_2, si_day_3, ...",
            file=path, field="posterior.coordinates",
        )  # fmt: skip
    size = len(coordinates)
    mean = _matrix(_get(posterior, "mean", list, path, "posterior.mean"), (size,), path,
                   "posterior.mean")  # fmt: skip
    cov = _matrix(_get(posterior, "cov", list, path, "posterior.cov"), (size, size), path,
                  "posterior.cov")  # fmt: skip
    if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() < -1e-10:
        raise DataError("must be a symmetric positive semi-definite matrix", file=path,
                        field="posterior.cov")  # fmt: skip
    draws = posterior.get("draws")
    if draws is not None:
        rows = len(draws) if isinstance(draws, list) else 0
        draws = _matrix(draws, (rows, size), path, "posterior.draws")
        if rows < 2:
            raise DataError("must hold at least 2 draws", file=path, field="posterior.draws")
    fit = dict(_get(doc, "fit", dict, path))
    method = fit.get("method", "map")
    if method not in METHODS:
        raise DataError(f"must be one of {', '.join(METHODS)}", file=path, field="fit.method")
    start = _get(doc, "start_local", str, path)
    try:
        start_local = pd.Timestamp(start)
    except ValueError:
        raise DataError(
            f"not an ISO date-time: {start!r}", file=path, field="start_local"
        ) from None
    if start_local.tzinfo is not None:
        raise DataError("must be a local wall-clock time without a zone", file=path,
                        field="start_local")  # fmt: skip
    return TwinPosterior(
        mean=mean,
        cov=cov,
        bw_kg=values["BW"],
        u2ss_mu_per_kg_per_min=values["u2ss"],
        start_local=start_local,
        regularised=bool(posterior.get("regularised", False)),
        metrics={k: v for k, v in fit.items() if k not in ("method", "seed")},
        data=dict(_get(doc, "data", dict, path)),
        coordinates=tuple(coordinates),
        draws=draws,
        method=method,
    )
