"""GlucoTwin's CGM metrics against iglu-python (the Python port of the R package iglu).

For every shared dataset in ``../shared/data`` (imported with
:func:`glucotwin.data.formats.read_file`; a file whose importer is not there yet is listed as
skipped) and a few synthetic generic-CSV records, the readings GlucoTwin's metrics use
(:func:`glucotwin.metrics.readings.cgm_readings`: one per instant, scans dropped) are written
to one CSV of ``id,time,gl`` (local wall-clock time), iglu-python computes its metrics on
that CSV in the peers venv (``benchmarks/peers.py``), and this script prints, per metric,
how many subject-files were compared, the largest absolute difference and how many agree
within the stated tolerance. Rows marked ``[variant]`` compare a GlucoTwin option chosen to
match iglu's definition (see ``docs/metrics.md``).

Run from the repository root::

    .venv/bin/python benchmarks/metrics_vs_iglu.py            # all datasets
    .venv/bin/python benchmarks/metrics_vs_iglu.py --quick    # AZT1D 1-4, ReplayBG, synthetic

The same file is the peer-side script: ``python metrics_vs_iglu.py --peer in.csv out.json``
runs in the peers venv and must only import the standard library, numpy, pandas and iglu.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

IGLU_REQUIREMENT = "iglu-python==0.4.*"
MAGE_DIRECTIONS = ("avg", "service", "plus", "minus")
DEVICE_FILE_SUFFIXES = {".csv", ".json", ".xml", ".xls", ".xlsx", ".zip"}
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GLUCOTWIN_SHARED_DATA", REPO.parent / "shared" / "data"))

# --------------------------------------------------------------------------------------
# Peer side (runs in the peers venv with iglu-python; stdlib, numpy, pandas and iglu only)
# --------------------------------------------------------------------------------------


def iglu_metrics(
    data, iglu, mage_directions: tuple[str, ...] = MAGE_DIRECTIONS
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """iglu-python's metrics of every subject of ``data`` (columns id, time, gl).

    Each function is called per subject, so that one that fails on one record (iglu raises
    on some edge cases) costs only that number; failures are returned as messages.
    """
    episode_names = {
        ("hypo", "lv1"): "hypo_events_level1",
        ("hypo", "lv2"): "hypo_events_level2",
        ("hypo", "extended"): "hypo_events_extended",
        ("hyper", "lv1"): "hyper_events_level1",
        ("hyper", "lv2"): "hyper_events_level2",
    }
    calls = {
        "mean_mg_dl": lambda d: iglu.mean_glu(d)["mean"],
        "sd_mg_dl": lambda d: iglu.sd_glu(d)["SD"],
        "cv_percent": lambda d: iglu.cv_glu(d)["CV"],
        "gmi_percent": lambda d: iglu.gmi(d)["GMI"],
        "j_index": lambda d: iglu.j_index(d)["J_index"],
        "tbr_below_54_percent": lambda d: iglu.below_percent(d, targets_below=[54])["below_54"],
        "tbr_below_70_percent": lambda d: iglu.below_percent(d, targets_below=[70])["below_70"],
        "tar_above_180_percent": lambda d: iglu.above_percent(d, targets_above=[180])["above_180"],
        "tar_above_250_percent": lambda d: iglu.above_percent(d, targets_above=[250])["above_250"],
        "tir_70_180_percent": lambda d: iglu.in_range_percent(d, target_ranges=[[70, 180]])[
            "in_range_70_180"
        ],
        "titr_70_140_percent": lambda d: iglu.in_range_percent(d, target_ranges=[[70, 140]])[
            "in_range_70_140"
        ],
        "lbgi": lambda d: iglu.lbgi(d)["LBGI"],
        "hbgi": lambda d: iglu.hbgi(d)["HBGI"],
        "adrr": lambda d: iglu.adrr(d)["ADRR"],
        "gri": lambda d: iglu.gri(d)["GRI"],
        "modd_mg_dl": lambda d: iglu.modd(d)["MODD"],
        "conga_1h_mg_dl": lambda d: iglu.conga(d, n=1)["CONGA"],
        "cgm_active_percent": lambda d: iglu.active_percent(d)["active_percent"],
        **{
            f"mage_{direction}": (
                lambda d, direction=direction: iglu.mage(d, direction=direction)["MAGE"]
            )
            for direction in mage_directions
        },
    }
    results: dict[str, dict[str, float]] = {}
    failures: list[str] = []
    for subject, frame in data.groupby("id", sort=False):
        values = results.setdefault(str(subject), {})
        for name, call in calls.items():
            try:
                values[name] = float(call(frame.reset_index(drop=True).copy()).iloc[0])
            except Exception as exc:
                failures.append(f"{subject} {name}: {type(exc).__name__}: {exc}")
        try:
            episodes = iglu.episode_calculation(frame.reset_index(drop=True).copy())
        except Exception as exc:
            failures.append(f"{subject} episodes: {type(exc).__name__}: {exc}")
            continue
        for _, row in episodes.iterrows():
            name = episode_names.get((row["type"], row["level"]))
            if name is not None:
                values[name] = float(row["total_episodes"])
    return results, failures


def peer_main(
    csv_path: str, out_path: str, repeats: int = 1, mage_directions: str = ",".join(MAGE_DIRECTIONS)
) -> None:
    """Read the CSV, compute iglu's metrics (best of ``repeats`` timed runs), write JSON.

    The CSV holds ``id,time,gl`` or is a GlucoTwin generic CSV (``timestamp,glucose_mg_dl``,
    one subject); reading it is part of the timed work.
    """
    import warnings

    started = time.perf_counter()
    import iglu_python as iglu
    import pandas as pd
    from iglu_python.utils import set_local_tz

    import_s = time.perf_counter() - started
    set_local_tz("UTC")
    warnings.simplefilter("ignore")
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        data = pd.read_csv(csv_path, dtype={"id": str})
        if "gl" not in data:
            data = data.rename(columns={"timestamp": "time", "glucose_mg_dl": "gl"})
            data.insert(0, "id", "1")
        data["time"] = pd.to_datetime(data["time"], format="ISO8601")
        results, failures = iglu_metrics(data, iglu, tuple(mage_directions.split(",")))
        best = min(best, time.perf_counter() - started)
    clean = {
        subject: {k: (v if math.isfinite(v) else None) for k, v in values.items()}
        for subject, values in results.items()
    }
    Path(out_path).write_text(
        json.dumps(
            {"metrics": clean, "failures": failures, "compute_s": best, "import_s": import_s}
        )
    )


# --------------------------------------------------------------------------------------
# GlucoTwin side
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One record to compare: a dataset label and the files that make it."""

    dataset: str
    label: str
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class Comparison:
    """One row of the table: a GlucoTwin value against an iglu value."""

    name: str
    ours: str
    theirs: str
    tolerance: float
    note: str


TOL_PERCENT = 0.1  # percentage points
TOL_MG_DL = 0.1  # mg/dL
TOL_INDEX = 0.01  # LBGI, HBGI, ADRR, J-index, GMI (%): 0.01 is below any reported precision

COMPARISONS = (
    Comparison("mean_mg_dl", "mean_mg_dl", "mean_mg_dl", TOL_MG_DL, "same definition"),
    Comparison("sd_mg_dl", "sd_mg_dl", "sd_mg_dl", TOL_MG_DL, "same (n − 1)"),
    Comparison("cv_percent", "cv_percent", "cv_percent", TOL_PERCENT, "same"),
    Comparison("gmi_percent", "gmi_percent", "gmi_percent", TOL_INDEX, "same (Bergenstal 2018)"),
    Comparison("j_index", "j_index", "j_index", TOL_INDEX, "same (Wojcicki 1995)"),
    Comparison("tbr_below_54_percent", "tbr_below_54_percent", "tbr_below_54_percent",
               TOL_PERCENT, "same (< 54)"),
    Comparison("tbr_below_70_percent", "tbr_below_70_percent", "tbr_below_70_percent",
               TOL_PERCENT, "same (< 70)"),
    Comparison("tir_70_180_percent", "tir_70_180_percent", "tir_70_180_percent",
               TOL_PERCENT, "same (70–180 incl.)"),
    Comparison("titr_70_140_percent", "titr_70_140_percent", "titr_70_140_percent",
               TOL_PERCENT, "same (70–140 incl.)"),
    Comparison("tar_above_180_percent", "tar_above_180_percent", "tar_above_180_percent",
               TOL_PERCENT, "same (> 180)"),
    Comparison("tar_above_250_percent", "tar_above_250_percent", "tar_above_250_percent",
               TOL_PERCENT, "same (> 250)"),
    Comparison("lbgi", "lbgi", "lbgi", TOL_INDEX, "same (Kovatchev)"),
    Comparison("hbgi", "hbgi", "hbgi", TOL_INDEX, "same (Kovatchev)"),
    Comparison("adrr", "adrr", "adrr", TOL_INDEX, "same; local calendar days"),
    Comparison("gri", "gri", "gri", TOL_PERCENT, "same (Klonoff 2023)"),
    Comparison("cgm_active_percent", "cgm_active_percent", "cgm_active_percent",
               TOL_PERCENT, "readings/expected vs iglu's gap count"),
    Comparison("modd_mg_dl", "modd_mg_dl", "modd_mg_dl", TOL_MG_DL,
               "same grid (interval, 45-min gaps)"),
    Comparison("conga_1h_mg_dl", "conga_1h_mg_dl", "conga_1h_mg_dl", TOL_MG_DL,
               "same grid (interval, 45-min gaps)"),
    Comparison("mage_mg_dl", "mage_mg_dl", "mage_avg", TOL_MG_DL,
               "Service (1-SD hysteresis, first direction) vs iglu ma/avg"),
    Comparison("mage_mg_dl [variant service]", "mage_mg_dl", "mage_service", TOL_MG_DL,
               "vs iglu ma, direction='service'"),
    Comparison("mage_mg_dl [variant avg]", "mage_avg", "mage_avg", TOL_MG_DL,
               "direction='avg' vs iglu ma/avg"),
    Comparison("mage_mg_dl [variant plus]", "mage_plus", "mage_plus", TOL_MG_DL,
               "MAGE+ vs iglu ma/plus"),
    Comparison("mage_mg_dl [variant minus]", "mage_minus", "mage_minus", TOL_MG_DL,
               "MAGE− vs iglu ma/minus"),
    Comparison("mage_mg_dl [moving_average, avg]", "mage_ma_avg", "mage_avg", TOL_MG_DL,
               "Fernandes 2022 port vs iglu ma/avg"),
    Comparison("mage_mg_dl [moving_average, service]", "mage_ma_service", "mage_service",
               TOL_MG_DL, "Fernandes 2022 port vs iglu ma/service"),
    Comparison("mage_mg_dl [moving_average, plus]", "mage_ma_plus", "mage_plus", TOL_MG_DL,
               "Fernandes 2022 port vs iglu ma/plus"),
    Comparison("mage_mg_dl [moving_average, minus]", "mage_ma_minus", "mage_minus",
               TOL_MG_DL, "Fernandes 2022 port vs iglu ma/minus"),
    Comparison("hypo_events_level1", "hypo_events_level1", "hypo_events_level1", 0,
               "consensus 2023, same grid"),
    Comparison("hypo_events_level2", "hypo_events_level2", "hypo_events_level2", 0,
               "consensus 2023, same grid"),
    Comparison("hypo_events_extended", "hypo_events_extended", "hypo_events_extended", 0,
               "> 120 min < 70"),
    Comparison("hyper_events_level1", "hyper_events_level1", "hyper_events_level1", 0,
               "consensus 2023, same grid"),
    Comparison("hyper_events_level2", "hyper_events_level2", "hyper_events_level2", 0,
               "consensus 2023, same grid"),
)  # fmt: skip


def shared_sources(quick: bool) -> list[Source]:
    """The shared datasets' files, as records to import (ReplayBG's two days as one)."""
    root = SHARED_DATA
    if not root.is_dir():
        return []

    def subject_number(path: Path) -> int:
        return int(path.stem.split()[-1])

    azt = sorted(root.glob("azt1d/CGM Records/*/*.csv"), key=subject_number)
    sources = [Source("AZT1D", p.stem, (p,)) for p in azt]
    sources.append(
        Source(
            "ReplayBG",
            "days 1+2",
            (root / "replaybg_example/data_day_1.csv", root / "replaybg_example/data_day_2.csv"),
        )
    )
    if quick:
        return sources[:4] + sources[-1:]
    for group in ("T1DM", "T2DM"):
        files = sorted(root.glob(f"shanghai/Shanghai_{group}/*.xls*"))
        sources += [Source(f"Shanghai {group}", p.name, (p,)) for p in files]
    for path in sorted(root.glob("formats/*/**/*")):
        if path.is_file() and path.suffix.lower() in DEVICE_FILE_SUFFIXES:
            sources.append(Source("device formats", str(path.relative_to(root)), (path,)))
    return sources


def synthetic_sources(folder: Path) -> list[Source]:
    """Generic-CSV records with known difficulties: jitter, 15-min sampling, gaps, lows."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(20240501)
    specs = {
        "14 days 5-min": dict(days=14, step_min=5.0, jitter_s=0.0, gaps=0),
        "30 days 5-min jittered, gaps": dict(days=30, step_min=5.0, jitter_s=3.0, gaps=6),
        "14 days 15-min, gaps": dict(days=14, step_min=15.0, jitter_s=0.0, gaps=3),
        "90 days 1-min": dict(days=90, step_min=1.0, jitter_s=0.0, gaps=2),
    }
    sources = []
    for name, spec in specs.items():
        n = int(spec["days"] * 1440 / spec["step_min"])
        minutes = np.arange(n) * spec["step_min"]
        glucose = synthetic_glucose(minutes, rng)
        keep = np.ones(n, dtype=bool)
        for start in rng.integers(0, n - 100, size=spec["gaps"]):
            keep[start : start + rng.integers(2, int(360 / spec["step_min"]))] = False
        times = pd.Timestamp("2024-03-01 00:03:00") + pd.to_timedelta(
            minutes * 60 + rng.normal(0, spec["jitter_s"], n) * (spec["jitter_s"] > 0), unit="s"
        )
        frame = pd.DataFrame(
            {
                "timestamp": times[keep].strftime("%Y-%m-%dT%H:%M:%S"),
                "glucose_mg_dl": np.round(glucose[keep], 1),
            }
        )
        path = folder / f"synthetic_{len(sources) + 1}.csv"
        frame.to_csv(path, index=False)
        sources.append(Source("synthetic", name, (path,)))
    return sources


def synthetic_glucose(minutes, rng):
    """Meals, a dawn rise, night lows and sensor noise, mg/dL within 40–400."""
    import numpy as np

    day_minute = minutes % 1440
    glucose = 130 + 25 * np.sin(2 * np.pi * (day_minute - 300) / 1440)
    for meal in (420, 750, 1140):
        after = (day_minute - meal) % 1440
        glucose += 110 * (after / 60) * np.exp(1 - after / 60) * (after < 360)
    drift = np.cumsum(rng.normal(0, 1.5, len(minutes)))
    drift -= np.convolve(drift, np.ones(721) / 721, mode="same")
    glucose += drift - 55 * np.exp(-(((day_minute - 180) / 60) ** 2)) * rng.random()
    return np.clip(glucose + rng.normal(0, 4, len(minutes)), 40, 400)


def records(sources: list[Source]) -> Iterator[tuple[Source, object | None, str]]:
    """Import each source: (source, recording or None, why skipped)."""
    from glucotwin.data.formats import read_files

    for source in sources:
        try:
            yield source, read_files(list(source.paths)), ""
        except Exception as exc:  # report and go on: an importer may still be in the works
            yield source, None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"


def glucotwin_side(sources: list[Source], csv_path: Path):
    """GlucoTwin's metrics per subject-file; writes the readings CSV for iglu."""
    import pandas as pd

    from glucotwin.metrics import compute_metrics
    from glucotwin.metrics.mage import mage_mg_dl, mage_moving_average_mg_dl
    from glucotwin.metrics.readings import cgm_readings
    from glucotwin.metrics.sampling import detect_interval_min, regular_grid

    ours: dict[str, dict] = {}
    labels: dict[str, Source] = {}
    frames = []
    skipped = []
    for source, recording, why in records(sources):
        if recording is None:
            skipped.append((source, why))
            continue
        cgm = recording.cgm()
        subjects = sorted(cgm["subject"].dropna().unique()) or [None]
        for subject in subjects:
            readings = cgm_readings(cgm, subject=subject)
            if len(readings) < 2:
                skipped.append((source, f"subject {subject}: fewer than 2 CGM readings"))
                continue
            key = f"{len(labels):04d}"
            labels[key] = source
            metrics = compute_metrics(cgm, subject=subject)
            grid = regular_grid(readings, detect_interval_min(readings.time_ns))
            for direction in ("avg", "plus", "minus"):
                metrics[f"mage_{direction}"] = mage_mg_dl(grid, metrics["sd_mg_dl"], direction)
            for direction in ("avg", "service", "plus", "minus"):
                metrics[f"mage_ma_{direction}"] = mage_moving_average_mg_dl(readings, direction)
            ours[key] = metrics
            frames.append(
                pd.DataFrame(
                    {
                        "id": key,
                        "time": readings.to_frame()["local_time"].dt.strftime(
                            "%Y-%m-%dT%H:%M:%S.%f"
                        ),
                        "gl": readings.glucose_mg_dl,
                    }
                )
            )
    pd.concat(frames, ignore_index=True).to_csv(csv_path, index=False)
    return ours, labels, skipped


def compare(ours: dict, theirs: dict, comparison: Comparison) -> tuple[int, float, int, str]:
    """(subject-files compared, max |difference|, within tolerance, worst subject-file)."""
    diffs = differences(ours, theirs, comparison)
    if not diffs:
        return 0, 0.0, 0, ""
    worst_key = max(diffs, key=diffs.__getitem__)
    within = sum(d <= comparison.tolerance + 1e-9 for d in diffs.values())
    return len(diffs), diffs[worst_key], within, worst_key if diffs[worst_key] > 0 else ""


def differences(ours: dict, theirs: dict, comparison: Comparison) -> dict[str, float]:
    """|GlucoTwin − iglu| per subject-file where both computed the metric."""
    diffs = {}
    for key, metrics in ours.items():
        a, b = metrics.get(comparison.ours), theirs.get(key, {}).get(comparison.theirs)
        if a is not None and b is not None:
            diffs[key] = abs(float(a) - float(b))
    return diffs


def format_table(ours: dict, theirs: dict, labels: dict[str, Source]) -> str:
    """The per-metric agreement table (Markdown)."""
    lines = [
        "| metric | compared | max abs diff | median abs diff | within tol | tolerance "
        "| definition | worst |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in COMPARISONS:
        n, worst, within, key = compare(ours, theirs, c)
        median = statistics.median(differences(ours, theirs, c).values()) if n else 0.0
        where = f"{labels[key].dataset}: {labels[key].label}" if key else ""
        lines.append(
            f"| {c.name} | {n} | {worst:.3g} | {median:.3g} | {within}/{n} | {c.tolerance:g} "
            f"| {c.note} | {where} |"
        )
    return "\n".join(lines)


def run(sources: list[Source], log: Callable[[str], None] = print) -> tuple[dict, dict, dict]:
    """Compare on ``sources``: returns (ours, theirs, labels) keyed by subject-file id."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peers import run_peer

    with tempfile.TemporaryDirectory() as tmp:
        csv_path, out_path = Path(tmp) / "readings.csv", Path(tmp) / "iglu.json"
        ours, labels, skipped = glucotwin_side(sources, csv_path)
        for source, why in skipped:
            log(f"skipped {source.dataset}: {source.label}: {why}")
        run_peer(
            Path(__file__).resolve(),
            "--peer",
            str(csv_path),
            str(out_path),
            packages=[IGLU_REQUIREMENT],
        )
        answer = json.loads(out_path.read_text())
    for failure in answer["failures"]:
        key = failure.split()[0]
        log(f"iglu failed on {labels[key].dataset}: {labels[key].label}: {failure[5:][:160]}")
    return ours, answer["metrics"], labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="AZT1D 1-4, ReplayBG, synthetic")
    parser.add_argument("--json", type=Path, help="also write every value compared to this file")
    parser.add_argument("--peer", nargs=2, metavar=("CSV", "JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument(
        "--mage-directions", default=",".join(MAGE_DIRECTIONS), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.peer:
        peer_main(*args.peer, repeats=args.repeats, mage_directions=args.mage_directions)
        return
    sys.path.insert(0, str(REPO / "src"))
    with tempfile.TemporaryDirectory() as tmp:
        sources = shared_sources(args.quick) + synthetic_sources(Path(tmp))
        started = time.perf_counter()
        messages: list[str] = []
        ours, theirs, labels = run(sources, log=messages.append)
        elapsed = time.perf_counter() - started
    without_cgm = [m for m in messages if m.endswith("fewer than 2 CGM readings")]
    for message in messages:
        if message not in without_cgm:
            print(message)
    print(f"skipped {len(without_cgm)} files without CGM readings (treatments, profiles, ...)")
    counts: dict[str, int] = {}
    for source in labels.values():
        counts[source.dataset] = counts.get(source.dataset, 0) + 1
    print("subject-files compared: " + ", ".join(f"{d} {n}" for d, n in counts.items()))
    devices = sorted({s.label for s in labels.values() if s.dataset == "device formats"})
    if devices:
        print("device-format files compared: " + ", ".join(devices))
    print(format_table(ours, theirs, labels))
    print(f"({elapsed:.0f} s)")
    if args.json:
        records = {
            key: {"dataset": labels[key].dataset, "record": labels[key].label,
                  "glucotwin": ours[key], "iglu": theirs.get(key, {})}
            for key in ours
        }  # fmt: skip
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
