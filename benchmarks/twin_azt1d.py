"""Personal twins on AZT1D: fit on a week, replay the next day out of sample, watch for drift.

    .venv/bin/python benchmarks/twin_azt1d.py [--subjects 1,2,3] [--days-fit 7]
        [--start first-cgm|first-basal] [--filter] [--json out.json]

For each AZT1D subject (``shared/data/azt1d``, imported with ``read_file``):

1. **Data.** Basal events the importer flags ``basal_out_of_range:...`` (rates of 9-4,127 that
   are not U/h; their ``rate_u_per_h`` is missing) are dropped, so that the previous rate
   holds; kept, :func:`~glucotwin.twin.inputs.minute_grid` would read them as a basal of 0.
2. **Days.** t0 is the first CGM reading at or after a reference time that falls in the first
   local hour (00:00-00:59) of a calendar day; day 1 is that day, so that day 1 is (nearly)
   complete. ``--start first-cgm`` (default): the reference is the first CGM reading (t0 is
   it for 18 subjects; subject 8 starts at 23:59 and subject 20 at 16:03, so their day 1 is
   the next day). ``--start first-basal``: the reference is the first basal record (in 19 of
   the 20 subjects the ``Basal`` column is empty for the first 1.5-3 weeks, so their
   first-cgm week has boluses only). The fit window is [t0, local midnight ending day
   ``--days-fit``), day 8 (the test day) is the next local calendar day. Local time is the
   first reading's UTC offset (Arizona, UTC-7, no daylight saving). Tables are cut at t0 (the
   basal rate running at t0 is restamped at t0; insulin and carbs before t0 are not seen)
   and at the window's end.
3. **Fit.** :func:`~glucotwin.twin.posterior.fit_posterior` on the fit window (MAP + Laplace).
4. **Replay.** :func:`~glucotwin.twin.posterior.predictive_band` (``--draws`` posterior draws,
   95 %) under the recorded carbs and insulin of days 1-8 from minute 0 of the fitted data, so
   day 8 starts from the twin's own simulated state (open loop: no CGM of day 8 or later is
   used). On day 8: RMSE and MARD of the band median, share of readings inside the band,
   median band half-width, and the drift monitor (:func:`glucotwin.twin.drift.check_drift`,
   alpha 0.01) on the whole day, with the residual autocorrelation rho of the fit window
   (``drift d8``) and with rho estimated from day 8 itself (``d8 own-rho``); in-sample, the
   monitor per local day of the fit window with the same rho (false-alarm context).
   Readings where the band is not finite (``predictive_band`` returns NaN quantiles when a
   posterior draw's replay diverges) are left out and counted in the table's note.
5. **Baseline** (same run): the mean CGM of the fit window as a constant prediction of day 8,
   with the 2.5-97.5 % quantiles of the fit window's CGM as its band.

``--filter``: the ensemble Kalman filter (:mod:`glucotwin.twin.filter`) over the whole
recording of the first fitted subject from t0, with the MAP twin of the fit window as its
parameters (the last fitted day's insulin sensitivity where the twin has per-day factors), for
each of :data:`FILTER_SETTINGS` (the CGM noise SD of the analysis: the fit's sigma, which also
absorbs model error, or a sensor-like 10 mg/dL; the process noise of G): per-update wall time
(median, p99, compilation excluded) and one-step-ahead (5-min) RMSE of the forecast glucose
against the next reading, next to persistence (the last reading) on the same pairs (readings
4-6 min after the previous one); and every 30 min a 30-min forecast (the filter run on without
readings under the recorded insulin and carbs, which a real-time forecaster would not all
know) against persistence over 30 min (the reading 28-32 min later).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

AZT1D = REPO.parent / "shared" / "data" / "azt1d" / "CGM Records"
MINUTE = pd.Timedelta(minutes=1)
DAY = pd.Timedelta(days=1)
LEVEL = 0.95


def subject_file(n: int) -> Path:
    return AZT1D / f"Subject {n}" / f"Subject {n}.csv"


def load_subject(n: int):
    """The subject's Recording without the importer-flagged basal outliers (module docstring)
    and the number of basal events dropped."""
    from glucotwin.data.formats import read_file
    from glucotwin.data.model import Recording

    recording = read_file(subject_file(n))
    insulin = recording.insulin
    outlier = (insulin["event"] == "basal") & insulin["flag"].fillna("").str.startswith(
        "basal_out_of_range"
    )
    cleaned = Recording.build(
        glucose=recording.glucose,
        insulin=insulin[~outlier.to_numpy(bool)],
        carbs=recording.carbs,
        activity=recording.activity,
        meta=recording.meta,
    )
    return cleaned, int(outlier.sum())


def cut(recording, t0: pd.Timestamp, t1: pd.Timestamp):
    """The recording's glucose, insulin and carbs in [t0, t1); the basal rate running at t0
    (the last basal event before it) is restamped at t0 when no basal event falls there."""
    from glucotwin.data.model import Recording

    def within(table):
        return table[(table["time"] >= t0) & (table["time"] < t1)]

    insulin = recording.insulin
    basal = insulin[insulin["event"] == "basal"]
    before = basal[basal["time"] < t0]
    kept = within(insulin)
    if len(before) and not ((kept["event"] == "basal") & (kept["time"] == t0)).any():
        kept = pd.concat([before.iloc[[-1]].assign(time=t0), kept], ignore_index=True)
    return Recording.build(
        glucose=within(recording.glucose), insulin=kept, carbs=within(recording.carbs),
        meta=recording.meta,
    )  # fmt: skip


def start_time(recording, rule: str) -> tuple[pd.Timestamp, pd.Timedelta]:
    """t0 (UTC) by ``rule`` (module docstring) and the local clock's UTC offset."""
    cgm = recording.cgm()
    cgm = cgm[cgm["glucose_mg_dl"].notna()]
    offsets = cgm["utc_offset_min"].dropna()
    offset = pd.Timedelta(minutes=int(offsets.iloc[0]) if len(offsets) else 0)
    if rule == "first-cgm":
        reference = cgm["time"].iloc[0]
    else:
        basal = recording.insulin
        basal = basal[(basal["event"] == "basal") & basal["rate_u_per_h"].notna()]
        if basal.empty:
            raise ValueError("no basal records")
        reference = basal["time"].iloc[0]
    times = cgm["time"][cgm["time"] >= reference]
    first_hour = times[((times + offset).dt.hour == 0).to_numpy(bool)]
    if first_hour.empty:
        raise ValueError(f"no CGM reading in a first local hour after {reference}")
    return first_hour.iloc[0], offset


def local_midnight_after(t0: pd.Timestamp, offset: pd.Timedelta, days: int) -> pd.Timestamp:
    """UTC instant of the local midnight ``days`` after t0's local calendar date."""
    return (t0 + offset).floor("D") + days * DAY - offset


def evaluate_subject(n: int, days_fit: int, rule: str, draws: int, seed: int) -> dict:
    """Fit, replay and score one subject (module docstring); a dict of figures."""
    from glucotwin.twin.drift import check_drift, residual_autocorrelation, rolling_drift
    from glucotwin.twin.inputs import minute_grid
    from glucotwin.twin.posterior import fit_posterior, predictive_band

    recording, dropped = load_subject(n)
    row: dict = {"subject": n, "basal_outliers_dropped": dropped}
    t0, offset = start_time(recording, rule)
    t_fit = local_midnight_after(t0, offset, days_fit)
    t_end = t_fit + DAY
    fit_rec, all_rec = cut(recording, t0, t_fit), cut(recording, t0, t_end)
    row["start_local"] = str((t0 + offset).tz_localize(None))
    fit, seconds = fit_posterior(fit_rec, seed=seed)
    grid_fit, grid = minute_grid(fit_rec), minute_grid(all_rec)
    if grid.start != grid_fit.start:
        raise RuntimeError(f"minute 0 differs: fit {grid_fit.start}, replay {grid.start}")
    band = predictive_band(fit, grid.carbs_g_per_min, grid.insulin_u_per_min, n=draws,
                           seed=seed, level=LEVEL)  # fmt: skip
    day8_minute = int((t_fit - grid.start) / MINUTE)
    minutes, cgm = grid.cgm_minute, grid.cgm_mg_dl
    median, lower, upper = (a[minutes] for a in (band.median, band.lower, band.upper))
    finite = np.isfinite(median) & np.isfinite(lower) & np.isfinite(upper)
    row["band_nonfinite_readings"] = int((~finite).sum())
    if not finite.all():  # a posterior draw whose replay diverged poisons the quantiles
        row["band_nonfinite_from_minute"] = int(minutes[~finite][0])
        minutes, cgm, median, lower, upper = (
            a[finite] for a in (minutes, cgm, median, lower, upper)
        )
    row.update(
        fit_rmse_mg_dl=fit.metrics["rmse_mg_dl"],
        fit_converged=bool(fit.metrics["converged"]),
        fit_regularised=bool(fit.regularised),
        fit_seconds=seconds,
    )
    test = minutes >= day8_minute
    if not test.any():
        row["error"] = (
            f"band NaN at all {row['band_nonfinite_readings']} readings from minute "
            f"{row['band_nonfinite_from_minute']} (fit RMSE {row['fit_rmse_mg_dl']:.1f} in "
            f"{seconds:.0f} s, converged {row['fit_converged']}, Hessian floored "
            f"{row['fit_regularised']})"
        )
        return row
    train = ~test
    y = cgm[test]
    error = median[test] - y
    inside = (y >= lower[test]) & (y <= upper[test])
    fit_band = (minutes[train], cgm[train], median[train], lower[train], upper[train])
    rho = residual_autocorrelation(*fit_band, LEVEL)
    day8_band = (minutes[test], y, median[test], lower[test], upper[test])
    drift = check_drift(*day8_band, LEVEL, rho=rho)
    drift_own_rho = check_drift(*day8_band, LEVEL)
    day1_minute = day8_minute - days_fit * 1440
    in_sample = rolling_drift(*fit_band, LEVEL, origin_min=day1_minute, rho=rho)
    constant = float(np.mean(cgm[train]))
    low_q, high_q = np.quantile(cgm[train], [0.025, 0.975])
    insulin_u = float(np.sum(grid_fit.insulin_u_per_min))
    row.update(
        fit_readings=int(train.sum()),
        day8_readings=int(test.sum()),
        fit_mard_percent=fit.metrics["mard_percent"],
        noise_sd_mg_dl=fit.noise_sd_mg_dl,
        u2ss_mu_per_kg_per_min=fit.u2ss_mu_per_kg_per_min,
        basal_share_of_insulin=float(np.sum(grid_fit.basal_u_per_min)) / insulin_u
        if insulin_u > 0 else math.nan,
        fit_band_coverage=float(np.mean((cgm[train] >= lower[train])
                                        & (cgm[train] <= upper[train]))),
        day8_rmse_mg_dl=float(np.sqrt(np.mean(error**2))),
        day8_mard_percent=float(100.0 * np.mean(np.abs(error) / y)),
        day8_coverage=float(np.mean(inside)),
        day8_band_half_width_mg_dl=float(np.median((upper[test] - lower[test]) / 2.0)),
        fit_residual_rho=rho,
        day8_drifting=drift.drifting,
        day8_drift_reason=drift.reason,
        day8_n_effective=drift.n_effective,
        day8_drifting_window_rho=drift_own_rho.drifting,
        in_sample_days_flagged=sum(r.drifting for r in in_sample),
        in_sample_days_judged=sum(r.n_readings >= 36 for r in in_sample),
        constant_rmse_mg_dl=float(np.sqrt(np.mean((y - constant) ** 2))),
        constant_coverage=float(np.mean((y >= low_q) & (y <= high_q))),
        constant_half_width_mg_dl=float((high_q - low_q) / 2.0),
    )  # fmt: skip
    row["_fit"] = fit
    row["_t0"] = t0
    return row


FILTER_SETTINGS = ((None, 1.0), (10.0, 1.0), (10.0, 3.0))
"""(CGM noise SD of the analysis, mg/dL (None: the fit's sigma); process noise of G, mg/dL per
square-root minute) of the filter runs."""
HORIZON_MIN = 30


def _filter_params(fit):
    """The MAP twin; with per-day insulin sensitivities, the last fitted day's."""
    if "day" in inspect.signature(fit.params).parameters:
        return fit.params(day=-1)
    return fit.params()


def run_filter(
    recording,
    fit,
    t0: pd.Timestamp,
    members: int,
    seed: int,
    noise_sd_mg_dl: float | None = None,
    glucose_noise_mg_dl: float = 1.0,
) -> dict:
    """The ensemble Kalman filter over ``recording`` from t0 (module docstring): per-update
    timings, one-step-ahead RMSE against persistence, and every 30 min a 30-min open-loop
    forecast (the filter run on without readings, under the recorded inputs) against
    persistence. ``noise_sd_mg_dl``: the CGM noise SD of the analysis (None: the fit's
    sigma); ``glucose_noise_mg_dl``: process noise of G per square-root minute."""
    import jax
    import jax.numpy as jnp

    from glucotwin.twin.filter import init_filter, step
    from glucotwin.twin.inputs import minute_grid
    from glucotwin.twin.model import steady_state

    grid = minute_grid(cut(recording, t0, recording.glucose["time"].max() + MINUTE))
    params = _filter_params(fit)
    minutes, cgm = grid.cgm_minute, grid.cgm_mg_dl
    g0 = float(cgm[0])
    state0 = steady_state(params)._replace(G=jnp.asarray(g0), IG=jnp.asarray(g0))
    fs = init_filter(
        params, state0, n_members=members, seed=seed, glucose_noise_mg_dl=glucose_noise_mg_dl
    )
    noise = fit.noise_sd_mg_dl if noise_sd_mg_dl is None else noise_sd_mg_dl
    carbs, insulin, window = grid.carbs_g_per_min, grid.insulin_u_per_min, grid.meal_window
    reading_at = dict(zip(minutes.tolist(), cgm.tolist(), strict=False))

    def advance(fs, now: int, length: int, reading: float):
        span = slice(now, now + length)
        return step(fs, carbs[span], insulin[span], reading, noise, minutes=length,
                    meal_window=window[span])  # fmt: skip

    compiled: set[int] = set()
    seconds, pairs, long_pairs = [], [], []
    si_factor_weekly = []
    now, last = int(minutes[0]), float(cgm[0])
    for k, (minute, reading) in enumerate(zip(minutes[1:], cgm[1:], strict=True)):
        gap = int(minute) - now
        if gap <= 0:
            continue  # a second reading in the same minute
        regular = 4 <= gap <= 6
        while gap > 5:
            fs, _ = advance(fs, now, 5, math.nan)
            now, gap = now + 5, gap - 5
        began = time.perf_counter()
        fs, forecast = advance(fs, now, gap, float(reading))
        jax.block_until_ready((fs, forecast))
        if gap in compiled:
            seconds.append(time.perf_counter() - began)
        compiled.add(gap)
        now += gap
        if regular:
            pairs.append((float(forecast.glucose_mg_dl), float(reading), last))
        last = float(reading)
        target = next((reading_at.get(now + HORIZON_MIN + d) for d in (0, -1, 1, -2, 2)
                       if reading_at.get(now + HORIZON_MIN + d) is not None), None)  # fmt: skip
        if k % (HORIZON_MIN // 5) == 0 and target is not None and now + HORIZON_MIN < grid.minutes:
            ahead = fs
            for j in range(HORIZON_MIN // 5):
                ahead, _ = advance(ahead, now + 5 * j, 5, math.nan)
            estimate = float(jnp.mean(ahead.states.IG))
            long_pairs.append((estimate, target, last))
        if now // (7 * 1440) > len(si_factor_weekly):
            si_factor_weekly.append(float(jnp.exp(jnp.mean(fs.log_si))))
    ms = 1000.0 * np.asarray(seconds)
    one, ahead = np.asarray(pairs).reshape(-1, 3), np.asarray(long_pairs).reshape(-1, 3)
    finite = np.isfinite(one[:, 0])

    def rmse(a, b):  # over the pairs before the ensemble diverged, if it did
        ok = np.isfinite(a)
        return float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2)))

    return {
        "nonfinite_forecasts": int((~finite).sum()),
        "first_nonfinite_pair": int(np.argmin(finite)) if not finite.all() else None,
        "days": grid.minutes / 1440.0,
        "members": members,
        "noise_sd_mg_dl": noise,
        "glucose_noise_mg_dl": glucose_noise_mg_dl,
        "updates": len(ms),
        "update_ms_median": float(np.median(ms)),
        "update_ms_p99": float(np.percentile(ms, 99)),
        "pairs": len(one),
        "filter_rmse_mg_dl": rmse(one[:, 0], one[:, 1]),
        "persistence_rmse_mg_dl": rmse(one[:, 2], one[:, 1]),
        "pairs_30_min": len(ahead),
        "filter_rmse_30_min_mg_dl": rmse(ahead[:, 0], ahead[:, 1]),
        "persistence_rmse_30_min_mg_dl": rmse(ahead[:, 2], ahead[:, 1]),
        "si_factor_end_of_week": si_factor_weekly,
    }


COLUMNS = (
    ("subject", "subj", "{:d}"),
    ("fit_readings", "n fit", "{:d}"),
    ("day8_readings", "n d8", "{:d}"),
    ("fit_rmse_mg_dl", "fit RMSE", "{:.1f}"),
    ("fit_seconds", "fit s", "{:.0f}"),
    ("noise_sd_mg_dl", "sigma", "{:.1f}"),
    ("basal_share_of_insulin", "basal%", "{:.0%}"),
    ("day8_rmse_mg_dl", "d8 RMSE", "{:.1f}"),
    ("day8_mard_percent", "d8 MARD%", "{:.1f}"),
    ("day8_coverage", "d8 cov95", "{:.1%}"),
    ("day8_band_half_width_mg_dl", "half-w", "{:.0f}"),
    ("constant_rmse_mg_dl", "const RMSE", "{:.1f}"),
    ("constant_coverage", "const cov", "{:.1%}"),
    ("fit_residual_rho", "rho", "{:.3f}"),
    ("day8_drifting", "drift d8", "{}"),
    ("day8_drifting_window_rho", "d8 own-rho", "{}"),
    ("in_sample_days_flagged", "drift d1-7", "{}"),
)


def format_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " | note |",
             "|" + "---:|" * len(COLUMNS) + "---|"]  # fmt: skip
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['subject']} |" + " |" * (len(COLUMNS) - 1) + f" {row['error']} |")
            continue
        cells = []
        for key, _, fmt in COLUMNS:
            value = row[key]
            if key == "in_sample_days_flagged":
                value = f"{value}/{row['in_sample_days_judged']}"
            cells.append(fmt.format(value) if not isinstance(value, str) else value)
        notes = [] if row["fit_converged"] else ["not converged"]
        if row["fit_regularised"]:
            notes.append("Hessian floored")
        if row["band_nonfinite_readings"]:
            notes.append(f"band NaN at {row['band_nonfinite_readings']} readings from minute "
                         f"{row['band_nonfinite_from_minute']}, left out")  # fmt: skip
        note = "; ".join(notes)
        lines.append("| " + " | ".join(cells) + f" | {note} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return {"subjects_fitted": 0, "subjects_failed": len(rows)}
    median = lambda key: float(np.median([r[key] for r in ok]))  # noqa: E731
    return {
        "subjects_fitted": len(ok),
        "subjects_failed": len(rows) - len(ok),
        "median_fit_rmse_mg_dl": median("fit_rmse_mg_dl"),
        "median_fit_seconds": median("fit_seconds"),
        "median_day8_rmse_mg_dl": median("day8_rmse_mg_dl"),
        "median_day8_mard_percent": median("day8_mard_percent"),
        "median_day8_coverage": median("day8_coverage"),
        "median_day8_band_half_width_mg_dl": median("day8_band_half_width_mg_dl"),
        "median_constant_rmse_mg_dl": median("constant_rmse_mg_dl"),
        "median_constant_coverage": median("constant_coverage"),
        "twin_beats_constant": sum(r["day8_rmse_mg_dl"] < r["constant_rmse_mg_dl"] for r in ok),
        "day8_flagged": sum(r["day8_drifting"] for r in ok),
        "day8_flagged_window_rho": sum(r["day8_drifting_window_rho"] for r in ok),
        "in_sample_days_flagged": sum(r["in_sample_days_flagged"] for r in ok),
        "in_sample_days_judged": sum(r["in_sample_days_judged"] for r in ok),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--subjects",
        default=",".join(map(str, range(1, 21))),
        help="comma-separated AZT1D subject numbers (default 1-20)",
    )
    parser.add_argument("--days-fit", type=int, default=7, help="local calendar days to fit")
    parser.add_argument(
        "--start",
        choices=("first-cgm", "first-basal"),
        default="first-cgm",
        help="where day 1 begins (module docstring)",
    )
    parser.add_argument("--draws", type=int, default=200, help="posterior draws of the band")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--filter",
        action="store_true",
        help="also run the online filter over the first subject's recording",
    )
    parser.add_argument("--members", type=int, default=64, help="filter ensemble size")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()  # fmt: skip
    if not AZT1D.is_dir():
        sys.exit(f"AZT1D not found at {AZT1D}")
    subjects = [int(s) for s in args.subjects.split(",") if s.strip()]

    import jax

    print(f"twin on AZT1D: subjects {subjects}, fit {args.days_fit} days from --start "
          f"{args.start}, test on the next day; {args.draws} draws; jax {jax.__version__}, "
          f"{jax.devices()[0].platform}", flush=True)  # fmt: skip
    began = time.perf_counter()
    rows = []
    for n in subjects:
        try:
            row = evaluate_subject(n, args.days_fit, args.start, args.draws, args.seed)
        except Exception as exc:  # one subject's failure is a result, not the end of the run
            row = {"subject": n, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        if "error" in row:
            print(f"subject {n}: {row['error']}", flush=True)
        else:
            print(f"subject {n}: start {row['start_local']}, fit RMSE "
                  f"{row['fit_rmse_mg_dl']:.1f} in {row['fit_seconds']:.0f} s; day 8 RMSE "
                  f"{row['day8_rmse_mg_dl']:.1f} (constant {row['constant_rmse_mg_dl']:.1f}), "
                  f"coverage {row['day8_coverage']:.1%}; {row['day8_drift_reason']}",
                  flush=True)  # fmt: skip
    print()
    print(format_table(rows))
    totals = summary(rows)
    print()
    print(json.dumps(totals, indent=1))
    filtered = []
    if args.filter:
        first = next((r for r in rows if "error" not in r), None)
        if first is None:
            print("filter: no subject was fitted")
        recording = load_subject(first["subject"])[0] if first else None
        for noise_sd, glucose_noise in FILTER_SETTINGS if first else ():
            f = run_filter(recording, first["_fit"], first["_t0"], args.members, args.seed,
                           noise_sd, glucose_noise)  # fmt: skip
            f["subject"] = first["subject"]
            filtered.append(f)
            print(f"\nfilter, subject {f['subject']} ({f['days']:.1f} days, {f['members']} "
                  f"members, CGM noise SD {f['noise_sd_mg_dl']:.1f} mg/dL, G process noise "
                  f"{f['glucose_noise_mg_dl']:.1f} mg/dL/sqrt(min)): {f['updates']} updates, "
                  f"{f['update_ms_median']:.2f} ms median, {f['update_ms_p99']:.2f} ms p99 per "
                  f"update; one-step (5-min) RMSE {f['filter_rmse_mg_dl']:.2f} mg/dL vs "
                  f"persistence {f['persistence_rmse_mg_dl']:.2f} on {f['pairs']} pairs; "
                  f"30-min RMSE {f['filter_rmse_30_min_mg_dl']:.2f} vs persistence "
                  f"{f['persistence_rmse_30_min_mg_dl']:.2f} on {f['pairs_30_min']} pairs; SI "
                  f"factor at the end of each week "
                  f"{[round(x, 2) for x in f['si_factor_end_of_week']]}", flush=True)  # fmt: skip
            if f["nonfinite_forecasts"]:
                print(f"  the ensemble diverged (non-finite) from pair {f['first_nonfinite_pair']}"
                      f": {f['nonfinite_forecasts']} non-finite one-step forecasts; RMSEs are over "
                      "the finite ones", flush=True)  # fmt: skip
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    if args.json:
        public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        args.json.write_text(json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "subjects": public,
             "summary": totals, "filter": filtered}, indent=1, default=float))  # fmt: skip


if __name__ == "__main__":
    main()
