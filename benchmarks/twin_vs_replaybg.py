"""GlucoTwin's personal twin against ReplayBG, side by side on ReplayBG's own example data.

Both tools twin the same recording of ``shared/data/replaybg_example`` (one person with type 1
diabetes; ``data_day_1.csv``, ``data_day_2.csv`` and, on request, the two days joined in
``data_day_1_extended.csv``; body weight and u2ss from ``patient_info.csv``) and this script
prints, per dataset, the wall time, the fit RMSE and MARD of each tool's replay of the twinned
data against the CGM readings, the ratio of ReplayBG's time to GlucoTwin's, and the issue's
targets (GlucoTwin RMSE and MARD <= ReplayBG's; at least 50x faster than ReplayBG's MCMC and
10x faster than its MAP).

GlucoTwin runs as a user runs it: ``glucotwin twin fit <csv> --out twin.json --seed S
--method M`` in a subprocess, timed from outside (interpreter start, imports and JAX
compilation included); the ``seconds`` it prints (the fit alone) is listed too. Each method
runs twice with the same seed: first with an empty JAX compilation cache (cold, the figure the
targets use), then again with the cache it filled (warm, a user's repeat run); the two twin
JSON files must be byte-identical. A method whose CLI answers "not implemented" is skipped.

ReplayBG (``py-replay-bg``, pinned in :data:`REPLAYBG`) runs in ``benchmarks/.peers-venv``
(``peers.run_peer``), one subprocess per twinning, in a temporary working directory (it writes
``results/`` folders there), following its examples ``twin_mcmc.py``/``twin_map.py``:
``ReplayBG(blueprint='multi-meal', yts=5, seed=S)``, ``rbg.twin(..., twinning_method=M,
parallelize=True, u2ss=u2ss)``, then ``rbg.replay(...)`` of the twinned data and
``Analyzer.analyze_replay_results(...)['median']['twin']``: RMSE and MARD of the pointwise
median of the replayed (noise-free, interstitial) glucose traces, sampled every 5 min, against
the CGM readings (MAP: one replay; MCMC: the median of ReplayBG's default 1000 replays of
posterior draws). ReplayBG's wall time is its ``twin()`` call alone (imports, replay and
analysis excluded), so the ratios favour ReplayBG. Its MAP runs twice with the same seed to
check reproducibility.

ReplayBG's MCMC (emcee, 50 walkers per parameter) runs a fixed 10,000-step burn-in, then
``n_steps`` (default 50,000) production steps; ``twin()`` offers no burn-in setting, so a
shorter burn-in (``--mcmc-burn-in``) is set by wrapping its ``MCMC`` class with that keyword
(nothing else changes). The peer also records emcee's integrated autocorrelation time of the
production chain and a split-half drift of the kept half, the convergence evidence printed
under the tables.

Run from the repository root::

    .venv/bin/python benchmarks/twin_vs_replaybg.py --quick          # development (~10 min)
    .venv/bin/python benchmarks/twin_vs_replaybg.py --mcmc-burn-in 1000 --mcmc-steps 2000 \\
        --json twin_vs_replaybg.json                                  # recorded run

The same file is the peer-side script (``--peer SPEC.json``): that part runs in the peers venv
and imports only the standard library, numpy, pandas, emcee and py_replay_bg.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import pickle
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPLAYBG = "py-replay-bg==1.4.0"
"""The ReplayBG release compared (1.4.0 is what ``py-replay-bg==1.4.*`` installs)."""
BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
SHARED_DATA = Path(os.environ.get("GLUCOTWIN_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLE = SHARED_DATA / "replaybg_example"
DATASETS = {
    "day1": "data_day_1.csv",
    "day2": "data_day_2.csv",
    "two_days": "data_day_1_extended.csv",
}
"""Datasets by name. ``two_days`` is the joined file twinned as one recording by both tools
(ReplayBG's plain twinning, not its "extended" burn-out workflow, which twins day 1 only)."""
REPLAYBG_DEFAULT_STEPS = 50_000
REPLAYBG_DEFAULT_BURN_IN = 10_000
QUICK_STEPS = 200
QUICK_BURN_IN = 100
PEER_RUNS = ("map", "map_repeat", "mcmc", "mcmc_repeat")
TARGET_MCMC_SPEEDUP = 50.0
TARGET_MAP_SPEEDUP = 10.0
PEER_TIMEOUT_S = 6 * 3600.0
LEGEND = (
    "wall s: GlucoTwin, the whole `glucotwin twin fit` process (start-up, import, JAX compile, "
    "fit, Laplace posterior, writing the twin); ReplayBG, its `twin()` call alone. CPU s: user + "
    "system seconds of the whole process of either tool (ReplayBG's with its import, replay, "
    "analysis and pool workers), less sensitive to other load on the machine. RMSE and MARD: "
    "each tool's replay of the twinned data against every CGM reading of the file (ReplayBG: "
    "`Analyzer.analyze_replay_results(...)['median']['twin']`, the pointwise median of its "
    "noise-free interstitial glucose replays sampled every 5 min). Targets use wall time and "
    "GlucoTwin's cold-cache run."
)


# --------------------------------------------------------------------------------------
# Peer side (runs in the peers venv: stdlib, numpy, pandas, emcee and py_replay_bg only)
# --------------------------------------------------------------------------------------


def _convergence(sampler, n_steps: int) -> dict:
    """Convergence evidence of emcee's production chain (ReplayBG keeps its second half).

    ``tau``: integrated autocorrelation time per parameter (steps; emcee's estimator, run with
    ``quiet=True`` so a short chain gives an estimate instead of an error); ``steps_per_tau``:
    production steps over the largest tau (emcee's guideline asks for >= 50).
    ``split_drift_sd``: the largest change, over parameters, between the posterior medians of
    the third and the fourth quarter of the chain, in posterior SDs of the kept half.
    ``log_prob_quarters``: mean log posterior over walkers in each quarter of the chain.
    """
    import numpy as np

    tau = np.asarray(sampler.get_autocorr_time(quiet=True), dtype=float)
    chain = sampler.get_chain()
    log_prob = sampler.get_log_prob()
    quarter = max(n_steps // 4, 1)
    kept = chain[n_steps // 2 :].reshape(-1, chain.shape[-1])
    third = chain[n_steps // 2 : 3 * n_steps // 4].reshape(-1, chain.shape[-1])
    fourth = chain[3 * n_steps // 4 :].reshape(-1, chain.shape[-1])
    sd = kept.std(axis=0)
    drift = np.abs(np.median(third, axis=0) - np.median(fourth, axis=0)) / np.where(sd > 0, sd, 1)
    quarters = [float(np.mean(log_prob[i * quarter : (i + 1) * quarter])) for i in range(4)]
    return {
        "tau": [round(float(t), 2) for t in tau],
        "tau_max": float(np.max(tau)),
        "steps_per_tau": float(n_steps / np.max(tau)),
        "split_drift_sd": float(np.max(drift)),
        "acceptance": float(np.mean(sampler.acceptance_fraction)),
        "log_prob_quarters": quarters,
        "walkers": int(sampler.nwalkers),
        "dims": int(sampler.ndim),
    }


def peer_main(spec_path: str) -> None:
    """Twin one dataset with ReplayBG as ``spec_path`` (JSON) says; write the result JSON.

    Spec: ``csv``, ``patient_info``, ``method`` (``mcmc``/``map``), ``seed``, ``n_steps``,
    ``n_burn_in``, ``workdir``, ``out``.
    """
    spec = json.loads(Path(spec_path).read_text())
    os.chdir(spec["workdir"])
    began = time.perf_counter()
    import inspect
    from importlib.metadata import version

    import emcee
    import numpy as np
    import pandas as pd
    import py_replay_bg.py_replay_bg as core
    from py_replay_bg.analyzer import Analyzer

    import_s = time.perf_counter() - began

    samplers: list = []

    class TimedSampler(emcee.EnsembleSampler):
        """emcee's sampler, unchanged, remembered and timed (for the convergence figures)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.chain_seconds = 0.0
            self.steps_run = 0
            samplers.append(self)

        def run_mcmc(self, initial_state, nsteps, **kwargs):
            start = time.perf_counter()
            state = super().run_mcmc(initial_state, nsteps, **kwargs)
            self.chain_seconds += time.perf_counter() - start
            self.steps_run += nsteps
            return state

    emcee.EnsembleSampler = TimedSampler  # ReplayBG looks it up as emcee.EnsembleSampler
    mcmc_defaults = inspect.signature(core.MCMC.__init__).parameters
    default_burn_in = mcmc_defaults["n_burn_in"].default
    if spec["method"] == "mcmc" and spec["n_burn_in"] != default_burn_in:
        core.MCMC = functools.partial(core.MCMC, n_burn_in=spec["n_burn_in"])

    data = pd.read_csv(spec["csv"])  # as ReplayBG's example utils.load_test_data
    data.t = pd.to_datetime(data["t"])
    info = pd.read_csv(spec["patient_info"])
    bw, u2ss = float(info.bw.values[0]), float(info.u2ss.values[0])
    rbg = core.ReplayBG(
        blueprint="multi-meal", save_folder=spec["workdir"], yts=5, exercise=False,
        seed=spec["seed"], verbose=False, plot_mode=False,
    )  # fmt: skip
    save_name = Path(spec["csv"]).stem
    twin_kwargs = {"n_steps": spec["n_steps"]} if spec["method"] == "mcmc" else {}
    start = time.perf_counter()
    rbg.twin(
        data=data, bw=bw, save_name=save_name, twinning_method=spec["method"],
        parallelize=True, u2ss=u2ss, **twin_kwargs,
    )  # fmt: skip
    twin_s = time.perf_counter() - start

    start = time.perf_counter()
    replay = rbg.replay(data=data, bw=bw, save_name=save_name, twinning_method=spec["method"])
    replay_s = time.perf_counter() - start
    analysis = Analyzer.analyze_replay_results(replay, data=data)["median"]["twin"]

    # The same figures by hand: the median trace every yts minutes against each CGM reading.
    yts = replay["model"].yts
    fitted = np.asarray(replay["glucose"]["median"])[::yts]
    observed = data.glucose.to_numpy(dtype=float)
    seen = ~np.isnan(observed)
    error = fitted[: len(observed)][seen] - observed[seen]
    times = data.t[seen].dt.strftime("%Y-%m-%dT%H:%M:%S").tolist()

    saved = Path(spec["workdir"]) / "results" / spec["method"] / f"{spec['method']}_{save_name}.pkl"
    draws = pickle.loads(saved.read_bytes())["draws"]  # what twin() saved for replay
    if spec["method"] == "map":
        parameters = {name: float(value) for name, value in draws.items()}
    else:  # the median of the 1000 posterior draws ReplayBG keeps
        parameters = {name: float(np.median(d["samples_1000"])) for name, d in draws.items()}

    result = {
        "tool": "ReplayBG",
        "version": version("py-replay-bg"),
        "method": spec["method"],
        "seed": spec["seed"],
        "twin_s": twin_s,
        "replay_s": replay_s,
        "import_s": import_s,
        "rmse_mg_dl": float(analysis["rmse"]),
        "mard_percent": float(analysis["mard"]),
        "rmse_by_hand_mg_dl": float(np.sqrt(np.mean(error**2))),
        "mard_by_hand_percent": float(100 * np.mean(np.abs(error) / observed[seen])),
        "n_replays": int(np.asarray(replay["glucose"]["realizations"]).shape[0]),
        "cgm": [times, observed[seen].tolist()],
        "parameters": parameters,
        "bw_kg": bw,
        "u2ss": u2ss,
        "processes": os.cpu_count(),
    }
    if spec["method"] == "mcmc":
        sampler = samplers[-1]
        result["mcmc"] = {
            "n_steps": spec["n_steps"],
            "n_burn_in": spec["n_burn_in"],
            "default_n_burn_in": default_burn_in,
            "chain_s": sampler.chain_seconds,
            "steps_run": sampler.steps_run,
            **_convergence(sampler, spec["n_steps"]),
        }
    else:
        result["map"] = {"restarts": 128, "optimizer": "scipy Powell", "max_iter": 100_000}
    Path(spec["out"]).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------
# GlucoTwin side and the comparison (GlucoTwin's venv)
# --------------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished children (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def source_fingerprint() -> str:
    """Short SHA-256 of GlucoTwin's Python sources (``src/glucotwin``): tells whether the code
    changed while this benchmark ran (others may be editing the working tree)."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "glucotwin").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def glucotwin_cli() -> str:
    """The ``glucotwin`` command of the interpreter running this script (the repo's venv)."""
    beside = Path(sys.executable).parent / "glucotwin"
    return str(beside if beside.exists() else REPO / ".venv" / "bin" / "glucotwin")


def glucotwin_fit(csv: Path, method: str, seed: int, out: Path, cache: Path) -> dict | str:
    """``glucotwin twin fit`` in a subprocess: its JSON line plus ``wall_s``, or why it failed."""
    env = {**os.environ, "GLUCOTWIN_CACHE_DIR": str(cache)}
    command = [glucotwin_cli(), "twin", "fit", str(csv), "--out", str(out), "--seed", str(seed),
               "--method", method]  # fmt: skip
    cpu, start = children_cpu_s(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall_s = time.perf_counter() - start
    cpu_s = children_cpu_s() - cpu
    if done.returncode != 0:
        return (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}")[-500:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {**answer, "wall_s": wall_s, "cpu_s": cpu_s}


def glucotwin_readings(csv: Path) -> tuple[list[str], list[float]]:
    """The CGM readings GlucoTwin's fit uses (its importer and minute grid): times, mg/dL."""
    import numpy as np
    import pandas as pd

    from glucotwin.data.formats import read_file
    from glucotwin.twin.inputs import minute_grid

    grid = minute_grid(read_file(csv))
    times = grid.start_local + pd.to_timedelta(np.asarray(grid.cgm_minute), unit="min")
    return times.strftime("%Y-%m-%dT%H:%M:%S").tolist(), [float(v) for v in grid.cgm_mg_dl]


def replaybg_twin(
    csv: Path, method: str, seed: int, n_steps: int, n_burn_in: int, tmp: Path
) -> dict:
    """One ReplayBG twinning + replay in the peers venv, in a fresh working directory."""
    sys.path.insert(0, str(BENCHMARKS))
    from peers import run_peer

    workdir = Path(tempfile.mkdtemp(prefix=f"replaybg_{method}_", dir=tmp))
    spec = {
        "csv": str(csv), "patient_info": str(EXAMPLE / "patient_info.csv"), "method": method,
        "seed": seed, "n_steps": n_steps, "n_burn_in": n_burn_in, "workdir": str(workdir),
        "out": str(workdir / "result.json"),
    }  # fmt: skip
    (workdir / "spec.json").write_text(json.dumps(spec))
    cpu, start = children_cpu_s(), time.perf_counter()
    run_peer(
        Path(__file__).resolve(), "--peer", str(workdir / "spec.json"),
        packages=[REPLAYBG], timeout_s=PEER_TIMEOUT_S,
    )  # fmt: skip
    result = json.loads((workdir / "result.json").read_text())
    result["process_s"] = time.perf_counter() - start
    result["cpu_s"] = children_cpu_s() - cpu  # the whole process and its pool workers
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def run_dataset(name: str, args: argparse.Namespace, tmp: Path) -> dict:
    """Every run of one dataset: GlucoTwin methods, ReplayBG MAP (twice) and MCMC."""
    csv = EXAMPLE / DATASETS[name]
    record: dict = {"dataset": name, "file": DATASETS[name], "seed": args.seed}
    record.update(glucotwin={}, skipped={}, errors={})
    ours_times, ours_values = glucotwin_readings(csv)
    record["cgm_readings"] = len(ours_values)

    for method in args.methods:
        source = source_fingerprint()
        cache = Path(tempfile.mkdtemp(prefix="jax_cache_", dir=tmp))
        first = glucotwin_fit(csv, method, args.seed, tmp / f"{name}_{method}_a.json", cache)
        if isinstance(first, str):
            note = "not implemented" if "not implemented" in first else "failed"
            log(f"[{name}] GlucoTwin {method}: skipped ({note}): {first.splitlines()[-1]}")
            record["skipped"][method] = first
            continue
        log(f"[{name}] GlucoTwin {method}: {first['wall_s']:.1f} s (cold cache)")
        second = glucotwin_fit(csv, method, args.seed, tmp / f"{name}_{method}_b.json", cache)
        if isinstance(second, str):
            raise RuntimeError(f"GlucoTwin {method} failed on its second run: {second}")
        log(f"[{name}] GlucoTwin {method}: {second['wall_s']:.1f} s (warm cache)")
        a = (tmp / f"{name}_{method}_a.json").read_bytes()
        b = (tmp / f"{name}_{method}_b.json").read_bytes()
        record["glucotwin"][method] = {
            "cold": first, "warm": second, "identical": a == b, "source": source,
            "source_changed": source_fingerprint() != source,
        }  # fmt: skip

    runs = [] if args.no_map else ["map"] if args.no_repeat else ["map", "map_repeat"]
    if not args.no_mcmc:
        runs += ["mcmc", "mcmc_repeat"] if args.mcmc_repeat else ["mcmc"]
    for key in runs:
        method = key.removesuffix("_repeat")
        label = f"ReplayBG {method.upper()}{' again' if key.endswith('_repeat') else ''}"
        try:
            record[key] = replaybg_twin(
                csv, method, args.seed, args.mcmc_steps, args.mcmc_burn_in, tmp
            )
        except Exception as error:  # keep the other runs' figures; the error is reported
            record["errors"][key] = str(error)[-1500:]
            log(f"[{name}] {label}: failed: {str(error)[-300:]}")
            continue
        log(f"[{name}] {label}: {record[key]['twin_s']:.1f} s")

    for key in PEER_RUNS:
        if key in record:
            times, values = record[key].pop("cgm")
            record[key]["same_cgm_readings"] = (times, values) == (ours_times, ours_values)
    return record


def _ratios(record: dict, run: dict) -> str:
    """ReplayBG's twin() wall time over GlucoTwin's CLI wall time, and the same for the CPU
    seconds of the whole processes."""
    parts = []
    for key, label in (("mcmc", "MCMC"), ("map", "MAP")):
        if key in record:
            peer = record[key]
            parts.append(
                f"{label} {peer['twin_s'] / run['wall_s']:.1f}× "
                f"(CPU {peer['cpu_s'] / run['cpu_s']:.1f}×)"
            )
    return ", ".join(parts)


def format_dataset(record: dict) -> str:
    """Markdown table, checks and targets of one dataset."""
    lines = [
        f"### {record['dataset']}: `{record['file']}` ({record['cgm_readings']} CGM readings)",
        "",
        "| tool / method | wall s | CPU s | RMSE mg/dL | MARD % | ReplayBG / GlucoTwin time "
        "| settings |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for method, runs in record["glucotwin"].items():
        for kind in ("cold", "warm"):
            run = runs[kind]
            lines.append(
                f"| GlucoTwin {method} ({kind} JAX cache) | {run['wall_s']:.1f} "
                f"| {run['cpu_s']:.1f} | {run['rmse_mg_dl']:.2f} | {run['mard_percent']:.2f} "
                f"| {_ratios(record, run)} | `glucotwin twin fit --method {method} --seed "
                f"{record['seed']}`; fit alone {run['seconds']:.1f} s; converged "
                f"{run['converged']} |"
            )
    for key, label in (
        ("mcmc", "ReplayBG MCMC"),
        ("mcmc_repeat", "ReplayBG MCMC, same seed again"),
    ):
        if key in record:
            r, m = record[key], record[key]["mcmc"]
            default = (m["n_burn_in"], m["n_steps"]) == (
                REPLAYBG_DEFAULT_BURN_IN,
                REPLAYBG_DEFAULT_STEPS,
            )
            lines.append(
                f"| {label} | {r['twin_s']:.1f} | {r['cpu_s']:.1f} | {r['rmse_mg_dl']:.2f} "
                f"| {r['mard_percent']:.2f} | | {'default: ' if default else ''}burn-in "
                f"{m['n_burn_in']:,} + {m['n_steps']:,} steps, {m['walkers']} walkers "
                f"({m['dims']} parameters), parallelize=True ({r['processes']} processes), "
                f"seed {r['seed']}; median of {r['n_replays']} replays |"
            )
    for key, label in (("map", "ReplayBG MAP"), ("map_repeat", "ReplayBG MAP, same seed again")):
        if key in record:
            r = record[key]
            lines.append(
                f"| {label} | {r['twin_s']:.1f} | {r['cpu_s']:.1f} | {r['rmse_mg_dl']:.2f} "
                f"| {r['mard_percent']:.2f} | | 128 Powell restarts, parallelize=True "
                f"({r['processes']} processes), seed {r['seed']} |"
            )
    lines.append("")
    lines.extend(notes(record))
    return "\n".join(lines)


def notes(record: dict) -> list[str]:
    """Checks (same readings, reproducibility, convergence) and the targets, one per line."""
    out = []
    peers = [record[k] for k in PEER_RUNS if k in record]
    if peers:
        same = all(p["same_cgm_readings"] for p in peers)
        out.append(
            f"- same CGM readings (times and values) in both tools' RMSE: {same}; ReplayBG's "
            "RMSE/MARD recomputed by hand from its median trace: "
            + ", ".join(
                f"{p['method']} {p['rmse_by_hand_mg_dl']:.2f} / {p['mard_by_hand_percent']:.2f}"
                for p in peers
            )
        )
    for method, runs in record["glucotwin"].items():
        out.append(f"- GlucoTwin {method}, same seed twice: twin JSON byte-identical: "
                   f"{runs['identical']} (sources {runs['source']})")  # fmt: skip
        if runs["source_changed"]:
            out.append(f"- WARNING: GlucoTwin's sources changed during the {method} runs")
    for method, why in record["skipped"].items():
        out.append(f"- GlucoTwin {method}: skipped ({why.splitlines()[-1]})")
    for key, why in record["errors"].items():
        out.append(f"- ReplayBG {key}: failed: {why.strip().splitlines()[-1]}")
    for key, label in (("map", "MAP"), ("mcmc", "MCMC")):
        if key in record and f"{key}_repeat" in record:
            a, b = record[key], record[f"{key}_repeat"]
            same_params = a["parameters"] == b["parameters"]
            diff = max(abs(a["parameters"][k] / b["parameters"][k] - 1) for k in a["parameters"])
            out.append(
                f"- ReplayBG {label}, same seed twice: identical parameters {same_params} "
                f"(largest relative difference {diff:.2g}); RMSE {a['rmse_mg_dl']:.4f} vs "
                f"{b['rmse_mg_dl']:.4f}"
            )
    if "mcmc" in record:
        m, r = record["mcmc"]["mcmc"], record["mcmc"]
        per_step = m["chain_s"] / m["steps_run"]
        extrapolated = default_mcmc_s(r)
        out.append(
            f"- ReplayBG MCMC convergence: production chain {m['n_steps']:,} steps = "
            f"{m['steps_per_tau']:.0f} × the largest autocorrelation time ({m['tau_max']:.1f} "
            f"steps; emcee asks >= 50); split-half drift of the posterior medians "
            f"{m['split_drift_sd']:.3f} SD; mean log posterior by chain quarter "
            + ", ".join(f"{q:.1f}" for q in m["log_prob_quarters"])
            + f"; acceptance {m['acceptance']:.2f}"
        )
        out.append(
            f"- ReplayBG MCMC: {per_step:.3f} s per step of {m['walkers']} walkers; its default "
            f"({REPLAYBG_DEFAULT_BURN_IN:,} + {REPLAYBG_DEFAULT_STEPS:,} steps) would take about "
            f"{extrapolated / 60:.0f} min here (extrapolated)"
        )
    out.extend(targets(record))
    return out


def default_mcmc_s(run: dict) -> float:
    """ReplayBG's MCMC twin() time with its default chain (10,000 + 50,000 steps), from the
    measured time per step of ``run`` (the time outside the chain kept as measured)."""
    m = run["mcmc"]
    per_step = m["chain_s"] / m["steps_run"]
    steps = REPLAYBG_DEFAULT_BURN_IN + REPLAYBG_DEFAULT_STEPS
    return run["twin_s"] - m["chain_s"] + per_step * steps


def targets(record: dict) -> list[str]:
    """The issue's pass/fail lines, one per GlucoTwin method (cold-cache CLI wall time)."""
    out = []
    peers = {"MCMC": record.get("mcmc"), "MAP": record.get("map")}
    needs = {"MCMC": TARGET_MCMC_SPEEDUP, "MAP": TARGET_MAP_SPEEDUP}
    for method, runs in record["glucotwin"].items():
        ours = runs["cold"]
        checks = []
        for label, peer in peers.items():
            if peer is None:
                continue
            for metric, unit in (("rmse_mg_dl", "RMSE"), ("mard_percent", "MARD")):
                ok = ours[metric] <= peer[metric]
                checks.append(f"{unit} <= {label} {'PASS' if ok else 'FAIL'} "
                              f"({ours[metric]:.2f} vs {peer[metric]:.2f})")  # fmt: skip
            speedup = peer["twin_s"] / ours["wall_s"]
            ok = speedup >= needs[label]
            checks.append(
                f"time >= {needs[label]:.0f}× shorter than {label} {'PASS' if ok else 'FAIL'} "
                f"({speedup:.1f}×; CPU {peer['cpu_s'] / ours['cpu_s']:.1f}×)"
            )
        mcmc = record.get("mcmc")
        if mcmc and mcmc["mcmc"]["steps_run"] != REPLAYBG_DEFAULT_BURN_IN + REPLAYBG_DEFAULT_STEPS:
            speedup = default_mcmc_s(mcmc) / ours["wall_s"]
            ok = speedup >= TARGET_MCMC_SPEEDUP
            checks.append(
                f"time >= {TARGET_MCMC_SPEEDUP:.0f}× shorter than MCMC with its default chain "
                f"(extrapolated) {'PASS' if ok else 'FAIL'} ({speedup:.0f}×)"
            )
        out.append(f"- targets, GlucoTwin {method}: " + "; ".join(checks))
    return out


def environment_line() -> str:
    """Machine, versions and commit of this run."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = "?"
    import glucotwin

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return (
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; GlucoTwin {glucotwin.__version__} ({commit}, sources "
        f"{source_fingerprint()}); "
        f"ReplayBG {REPLAYBG}; load average at start {load:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="day1,day2", help="of: " + ", ".join(DATASETS))
    parser.add_argument("--methods", default="map,nuts,svi", help="GlucoTwin --method values")
    parser.add_argument("--seed", type=int, default=0, help="both tools' seed")
    parser.add_argument("--mcmc-steps", type=int, default=REPLAYBG_DEFAULT_STEPS)
    parser.add_argument("--mcmc-burn-in", type=int, default=REPLAYBG_DEFAULT_BURN_IN)
    parser.add_argument(
        "--quick", action="store_true",
        help=f"development: day1, MCMC {QUICK_BURN_IN} + {QUICK_STEPS} steps, MAP once",
    )  # fmt: skip
    parser.add_argument("--no-mcmc", action="store_true", help="skip ReplayBG's MCMC")
    parser.add_argument("--no-map", action="store_true", help="skip ReplayBG's MAP")
    parser.add_argument("--no-repeat", action="store_true", help="run ReplayBG's MAP once")
    parser.add_argument(
        "--mcmc-repeat", action="store_true", help="run ReplayBG's MCMC twice (same seed)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument("--peer", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer_main(args.peer)
        return
    if args.quick:
        args.datasets, args.mcmc_steps, args.mcmc_burn_in = "day1", QUICK_STEPS, QUICK_BURN_IN
        args.no_repeat = True
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; known: {', '.join(DATASETS)}")
    if not EXAMPLE.is_dir():
        sys.exit(f"ReplayBG example data not found at {EXAMPLE} (set GLUCOTWIN_SHARED_DATA)")
    sys.path.insert(0, str(REPO / "src"))

    started = time.perf_counter()
    header = environment_line()
    print(header)
    print(
        f"command: benchmarks/twin_vs_replaybg.py --datasets {','.join(names)} --methods "
        f"{','.join(args.methods)} --seed {args.seed} --mcmc-burn-in {args.mcmc_burn_in} "
        f"--mcmc-steps {args.mcmc_steps}"
        + "".join(
            f" --{flag.replace('_', '-')}"
            for flag in ("no_mcmc", "no_map", "no_repeat", "mcmc_repeat")
            if getattr(args, flag)
        )
    )
    print(LEGEND)
    print(flush=True)
    records = []
    with tempfile.TemporaryDirectory(prefix="twin_vs_replaybg_") as tmp:
        for name in names:
            records.append(run_dataset(name, args, Path(tmp)))
            if args.json:  # after each dataset, so that a long run keeps what it measured
                args.json.write_text(
                    json.dumps({"environment": header, "datasets": records}, indent=1)
                )
            print(format_dataset(records[-1]))
            print(flush=True)
    elapsed = time.perf_counter() - started
    print(f"total run time {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
