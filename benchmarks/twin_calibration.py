"""Identifiability and calibration of the twin's posterior by simulation-based calibration
(Talts et al. 2018, arXiv:1804.06788; :mod:`glucotwin.twin.calibration`).

    .venv/bin/python benchmarks/twin_calibration.py [--n 50] [--days 1] [--seed 0]
        [--method map|nuts|svi] [--draws 999] [--json out.json] [--checkpoint fits.jsonl]

Each of ``--n`` virtual subjects draws its true parameters from the fitter's prior
(truncated to days whose noise-free glucose stays within 40-400 mg/dL), a day of meals,
boluses by a carb ratio with dosing error and basal = u2ss, and CGM every 5 min with noise of
the drawn SD; the twin is then fitted (:func:`glucotwin.twin.posterior.fit_posterior`: MAP +
Laplace by default, ``--method nuts`` or ``svi`` for draws) and every coordinate scored.
Printed per coordinate: coverage of the central 50, 90 and 95 % intervals ± the binomial SE
at the nominal rate, the chi-square p-value of the rank histogram's uniformity (and its
counts), and the contraction (median posterior SD / prior SD). ``flag``: 90 % coverage more
than 2 SE below (``under``) or above (``over``) nominal, ``ranks`` when the uniformity
p-value is below 0.01. Two tables: the posterior's draws truncated like the prior (the
consistent score), and the posterior as it is (for Laplace, its Gaussian marginals).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np

from glucotwin.twin.calibration import (
    LEVELS,
    Calibration,
    CalibrationRun,
    CoordinateScore,
    FitRecord,
    Scenario,
    calibration_table,
    run_calibration,
)
from glucotwin.twin.posterior import fit_posterior


def _row(name: str, cal: Calibration) -> str:
    cov = " | ".join(
        f"{c:.2f} ± {se:.2f}" for c, se in zip(cal.coverage, cal.coverage_se, strict=True)
    )
    i90 = cal.levels.index(0.9)
    flags = []
    if cal.coverage[i90] < 0.9 - 2 * cal.coverage_se[i90]:
        flags.append("under")
    if cal.coverage[i90] > 0.9 + 2 * cal.coverage_se[i90]:
        flags.append("over")
    if cal.uniformity.p_value < 0.01:
        flags.append("ranks")
    counts = " ".join(str(c) for c in cal.uniformity.counts)
    return (f"| {name} | {cov} | {cal.uniformity.p_value:.3f} | {counts} | "
            f"{cal.contraction:.2f} | {' '.join(flags)} |")  # fmt: skip


def _table(title: str, table: dict[str, Calibration]) -> str:
    levels = " | ".join(f"{100 * level:.0f} % cov." for level in LEVELS)
    lines = [
        f"{title}",
        "",
        f"| coordinate | {levels} | rank χ² p | rank counts | post/prior SD | flag |",
        "|---|" + "---:|" * len(LEVELS) + "---:|---|---:|---|",
    ]
    lines += [_row(name, cal) for name, cal in table.items()]
    return "\n".join(lines)


def _summary(run: CalibrationRun, wall_s: float) -> dict:
    facts = [r.facts for r in run.records]
    return {
        "fits": len(facts),
        "prior_acceptance": len(facts) / float(sum(f["prior_draws"] for f in facts)),
        "converged": int(sum(f["converged"] for f in facts)),
        "regularised": int(sum(f["regularised"] for f in facts)),
        "median_fit_s": float(np.median([f["seconds"] for f in facts])),
        "min_kept_mass": float(min(f["kept_mass"] for f in facts)),
        "mean_kept_mass": float(np.mean([f["kept_mass"] for f in facts])),
        "median_rmse_mg_dl": float(np.median([f["rmse_mg_dl"] for f in facts])),
        "raised_readings": int(sum(f["raised_readings"] for f in facts)),
        "wall_s": wall_s,
    }


def _record_json(record: FitRecord) -> dict:
    return {
        "index": record.index,
        "truth": record.truth,
        "as_is": {k: s._asdict() for k, s in record.as_is.items()},
        "truncated": {k: s._asdict() for k, s in record.truncated.items()},
        "facts": record.facts,
    }


def _record_from_json(row: dict) -> FitRecord:
    def scores(kind):
        return {k: CoordinateScore(**v) for k, v in row[kind].items()}

    return FitRecord(row["index"], row["truth"], scores("as_is"), scores("truncated"),
                     row["facts"])  # fmt: skip


def _json_table(table: dict[str, Calibration]) -> dict:
    return {
        name: {
            "coverage": dict(zip(map(str, cal.levels), cal.coverage.tolist(), strict=True)),
            "coverage_se": dict(zip(map(str, cal.levels), cal.coverage_se.tolist(), strict=True)),
            "rank_counts": cal.uniformity.counts.tolist(),
            "rank_chi2": cal.uniformity.statistic,
            "rank_p_value": cal.uniformity.p_value,
            "contraction": cal.contraction,
        }
        for name, cal in table.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50, help="virtual subjects (fits)")
    parser.add_argument("--days", type=int, default=1, help="days of data per subject")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", default="map", choices=("map", "nuts", "svi"))
    parser.add_argument("--draws", type=int, default=999, help="Laplace draws per fit")
    parser.add_argument("--json", help="write per-fit scores and the tables to this file")
    parser.add_argument(
        "--checkpoint",
        help="JSON-lines file of finished fits: appended after each fit, and fits already in it "
        "(same --seed, --days, --method) are not redone",
    )
    args = parser.parse_args()

    began = time.perf_counter()
    done = []
    if args.checkpoint and Path(args.checkpoint).exists():
        with open(args.checkpoint) as lines:
            done = [_record_from_json(json.loads(line)) for line in lines if line.strip()]
        print(f"resuming: {len(done)} fits from {args.checkpoint}", flush=True)

    def progress(record: FitRecord) -> None:
        facts = record.facts
        print(f"fit {record.index + 1}/{args.n}: {facts['seconds']:.1f} s, converged "
              f"{facts['converged']}, RMSE {facts['rmse_mg_dl']:.1f} mg/dL, kept mass "
              f"{facts['kept_mass']:.3f}, {time.perf_counter() - began:.0f} s so far",
              flush=True)  # fmt: skip
        if args.checkpoint:
            with open(args.checkpoint, "a") as out:
                out.write(json.dumps(_record_json(record)) + "\n")

    fit = functools.partial(fit_posterior, method=args.method)
    run = run_calibration(args.n, args.seed, Scenario(days=args.days), fit=fit,
                          n_draws=args.draws, progress=progress, done=done)  # fmt: skip
    wall_s = time.perf_counter() - began
    as_is = calibration_table([r.as_is for r in run.records], run.prior_sds)
    truncated = calibration_table([r.truncated for r in run.records], run.prior_sds)
    summary = _summary(run, wall_s)

    print()
    print(f"SBC of the twin posterior ({args.method}): {args.n} virtual subjects, {args.days} "
          f"day(s) each, seed {args.seed}")  # fmt: skip
    print(f"prior draws kept by the 40-400 mg/dL rule: {summary['prior_acceptance']:.2f}; "
          f"fits converged {summary['converged']}/{args.n}, Hessian regularised "
          f"{summary['regularised']}/{args.n}; posterior mass inside the rule: mean "
          f"{summary['mean_kept_mass']:.3f}, min {summary['min_kept_mass']:.3f}; median fit "
          f"{summary['median_fit_s']:.1f} s, median RMSE {summary['median_rmse_mg_dl']:.1f} "
          f"mg/dL; readings raised to 5 mg/dL: {summary['raised_readings']}; "
          f"wall {wall_s:.0f} s")  # fmt: skip
    print()
    print(_table("Posterior truncated like the prior (consistent score):", truncated))
    print()
    print(_table("Posterior as it is:", as_is))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "args": vars(args),
                    "summary": summary,
                    "truncated": _json_table(truncated),
                    "as_is": _json_table(as_is),
                    "prior_sd": run.prior_sds,
                    "fits": [_record_json(record) for record in run.records],
                },
                out,
                indent=1,
            )


if __name__ == "__main__":
    main()
