"""Which glucose readings the metrics use: one person's CGM readings, one per instant.

:func:`cgm_readings` turns a :class:`~glucotwin.data.model.Recording` or a glucose table of the
canonical schema into a :class:`CgmReadings` value (plain numpy arrays, sorted by time):

- **CGM only**: rows with ``source == "cgm"`` (fingersticks are not part of the consensus
  CGM metrics, Battelino 2019); rows without a ``source`` column are taken as CGM.
- **One person**: with several subjects a ``subject`` must be named; otherwise a
  :class:`ValueError` lists them.
- **LibreView scans**: a reading flagged ``scan`` (an on-demand scan of a FreeStyle Libre
  sensor) duplicates the sensor's own historic record, which the LibreView export also holds
  (every 15 min, or 5 min for newer sensors). Counting both would double-weight the scanned
  moments and push the active time over 100 %. A scan is therefore dropped when a historic
  (non-scan) CGM reading lies within one historic sampling interval (the median gap between
  historic readings) of it; scans that fall in a gap of the historic record (e.g. readings
  lost when the sensor memory overflowed) are kept.
- **Repeated instants**: rows at the same instant count as one reading, their mean (some
  exports repeat a reading on every event row of that time; the mean does not depend on row
  order).
- **Censored readings** (sensor "Low"/"High", ``censored == "below"/"above"``) count at
  their stored limit value (e.g. 40 or 400 mg/dL). Time below/above range is then exact (a
  "Low" at 40 is below 54), while mean, SD and risk indices are bounded estimates: the true
  glucose was at most (at least) the limit. Their numbers are reported so a reader can judge.

Times stay in two forms: the UTC instant (for sequence, gaps and lags) and the local wall
clock (:func:`glucotwin.data.model.local_time`, for days and times of day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from glucotwin.data.model import Recording, local_time

NS_PER_MIN = 60_000_000_000
NS_PER_DAY = 1440 * NS_PER_MIN
SCAN_FLAG = r"(?:^|[^a-z])scan(?:$|[^a-z])"
"""A ``flag`` holding the word "scan" marks an on-demand sensor scan (LibreView)."""


@dataclass(frozen=True)
class CgmReadings:
    """One person's CGM readings, sorted by time, one per instant.

    ``time_ns``: UTC instants, ns since the epoch (strictly increasing); ``local_ns``: the
    local wall clock of each reading, ns since the epoch as if it were UTC;
    ``utc_offset_min``: the offset of that clock (NaN = floating local time);
    ``glucose_mg_dl``: values, censored readings at their limit.
    """

    time_ns: np.ndarray
    local_ns: np.ndarray
    utc_offset_min: np.ndarray
    glucose_mg_dl: np.ndarray
    subject: str | None = None
    censored_below: int = 0
    censored_above: int = 0
    scans_dropped: int = 0

    def __len__(self) -> int:
        return len(self.time_ns)

    def to_frame(self) -> pd.DataFrame:
        """The readings as a table: ``time`` (UTC), ``local_time`` (naive), ``glucose_mg_dl``."""
        return pd.DataFrame(
            {
                "time": pd.to_datetime(self.time_ns, unit="ns", utc=True),
                "local_time": pd.to_datetime(self.local_ns, unit="ns"),
                "glucose_mg_dl": self.glucose_mg_dl,
            }
        )


def glucose_table(data: Recording | pd.DataFrame) -> pd.DataFrame:
    """The glucose table of a recording, or the table itself."""
    if isinstance(data, Recording):
        return data.glucose
    if isinstance(data, pd.DataFrame):
        return data
    raise TypeError(f"expected a Recording or a glucose DataFrame, got {type(data).__name__}")


def subjects_in(table: pd.DataFrame) -> list[str]:
    """Distinct named subjects of a glucose table, sorted."""
    if "subject" not in table:
        return []
    return sorted(str(s) for s in table["subject"].dropna().unique())


def cgm_readings(data: Recording | pd.DataFrame, *, subject: str | None = None) -> CgmReadings:
    """Select one person's CGM readings (see the module docstring for the rules)."""
    table = glucose_table(data)
    for column in ("time", "glucose_mg_dl"):
        if column not in table:
            raise ValueError(f"the glucose table needs a '{column}' column")
    table = _one_subject(table, subject)
    if "source" in table:
        table = table[(table["source"].fillna("cgm") == "cgm").to_numpy()]
    table = table[table["glucose_mg_dl"].notna().to_numpy()]
    table, scans_dropped = _without_covered_scans(table)
    time = pd.DatetimeIndex(pd.to_datetime(table["time"], utc=True)).as_unit("ns")
    time_ns = time.asi8
    offset = (
        table["utc_offset_min"].to_numpy(dtype=float, na_value=np.nan)
        if "utc_offset_min" in table
        else np.full(len(table), np.nan)
    )
    local = local_time(pd.DataFrame({"time": time, "utc_offset_min": offset}))
    local_ns = pd.DatetimeIndex(local).as_unit("ns").asi8
    glucose = table["glucose_mg_dl"].to_numpy(dtype=float)
    censored = (
        table["censored"].fillna("").to_numpy(dtype=object)
        if "censored" in table
        else np.full(len(table), "", dtype=object)
    )
    order = np.argsort(time_ns, kind="stable")
    time_ns, local_ns, offset = time_ns[order], local_ns[order], offset[order]
    glucose, censored = glucose[order], censored[order]
    first = np.ones(len(time_ns), dtype=bool)
    first[1:] = time_ns[1:] != time_ns[:-1]
    if not first.all():
        group = np.cumsum(first) - 1
        glucose = np.bincount(group, weights=glucose) / np.bincount(group)
        time_ns, local_ns, offset = time_ns[first], local_ns[first], offset[first]
    return CgmReadings(
        time_ns=time_ns,
        local_ns=local_ns,
        utc_offset_min=offset,
        glucose_mg_dl=glucose,
        subject=subject if subject is not None else _only(subjects_in(table)),
        censored_below=int(np.count_nonzero(censored == "below")),
        censored_above=int(np.count_nonzero(censored == "above")),
        scans_dropped=scans_dropped,
    )


def _only(names: list[str]) -> str | None:
    return names[0] if len(names) == 1 else None


def _one_subject(table: pd.DataFrame, subject: str | None) -> pd.DataFrame:
    names = subjects_in(table)
    if subject is None:
        if len(names) > 1:
            raise ValueError(
                f"the data hold {len(names)} subjects ({', '.join(names)}); name one (subject=...)"
            )
        return table
    if subject not in names:
        known = ", ".join(names) if names else "none named"
        raise ValueError(f"subject {subject!r} not in the data (subjects: {known})")
    return table[(table["subject"] == subject).fillna(False).to_numpy()]


def _without_covered_scans(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop scans that lie within one historic interval of a historic reading."""
    if "flag" not in table or len(table) == 0:
        return table, 0
    is_scan = (
        (table["flag"].astype("string").str.lower().str.contains(SCAN_FLAG, regex=True))
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    if not is_scan.any() or is_scan.all():
        return table, 0
    time_ns = pd.DatetimeIndex(pd.to_datetime(table["time"], utc=True)).as_unit("ns").asi8
    historic = np.sort(time_ns[~is_scan])
    gaps_ns = np.diff(historic)
    if not (gaps_ns > 0).any():
        return table, 0
    interval_ns = np.median(gaps_ns[gaps_ns > 0])
    scans = time_ns[is_scan]
    after = np.clip(np.searchsorted(historic, scans), 0, len(historic) - 1)
    before = np.clip(after - 1, 0, len(historic) - 1)
    nearest = np.minimum(np.abs(historic[after] - scans), np.abs(scans - historic[before]))
    covered = np.zeros(len(table), dtype=bool)
    covered[np.flatnonzero(is_scan)[nearest <= interval_ns]] = True
    return table[~covered], int(covered.sum())
