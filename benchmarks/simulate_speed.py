"""Simulation speed (issue 4): GlucoTwin's batched UVA/Padova engine against simglucose 0.2.11.

    .venv/bin/python benchmarks/simulate_speed.py [--quick] [--million] [--append-results]

simglucose (the peer) runs in ``benchmarks/.peers-venv`` (``peers.ensure_peers_venv``) with
its stock ``T1DPatient`` stepped minute by minute (scipy ``dopri5`` restarted every minute),
as ``shared/data/reference/simglucose/README.md`` describes, on scenario S1 for three
patients. GlucoTwin then runs the same scenario for the 30 reference patients tiled to
batches of 1 .. 10,000 patient-days, in this process, with its defaults (float64, RK4 with 1
step per minute and 8 in eating minutes, chunks of 512 patients on one thread per core);
then variants (float32, one thread, one call for the whole batch, 256-bit vectors, two XLA
host devices with sharding, finer schemes) and their accuracy against the reference files.
Throughput is the best of several runs (other processes share this machine; ``cpu/wall``
shows how many cores the run kept busy). ``--append-results`` appends the tables to
``benchmarks/RESULTS.md``; ``--million`` also streams 10^6 patient-days (summary only).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
REFERENCE = REPO.parent / "shared" / "data" / "reference" / "simglucose"
PEER = "simglucose==0.2.11"
PEER_PATIENTS = ("adolescent#001", "adult#001", "child#001")
MEALS_S1 = {420: 50.0, 720: 70.0, 1110: 80.0, 1320: 15.0}  # minute: carbs g (README, S1)
DAY = 1440

PEER_SCRIPT = r"""
import csv, json, math, sys, time
from simglucose.patient.t1dpatient import Action, T1DPatient

out = {}
for path in sys.argv[1:]:
    name = path.rsplit("S1_inputs_", 1)[1][:-4]
    rows = list(csv.DictReader(open(path)))
    patient = T1DPatient.withName(name)
    patient.EAT_RATE = math.inf  # each minute's CHO is eaten in that minute (README)
    glucose = []
    start = time.perf_counter()
    for row in rows:
        glucose.append(patient.observation.Gsub)
        patient.step(Action(CHO=float(row["carbs_g"]), insulin=float(row["insulin_u"])))
    out[name] = {"seconds": time.perf_counter() - start, "glucose": glucose}
print(json.dumps(out))
"""


def scenario_s1(cohort):
    """Per-patient carbs and insulin [n, 1440] of scenario S1 (meals, basal + carbs/CR)."""
    import numpy as np

    from glucotwin.physiology import basal_insulin_u_per_min

    n = len(cohort)
    carbs = np.zeros((n, DAY))
    insulin = np.tile(np.asarray(basal_insulin_u_per_min(cohort.params))[:, None], (1, DAY))
    ratio = np.asarray(cohort.therapy.carb_ratio_g_per_u)
    for minute, grams in MEALS_S1.items():
        carbs[:, minute] = grams
        insulin[:, minute] += grams / ratio
    return carbs, insulin


def load_reference(cohort):
    """S1 inputs (from the reference files when present) and expected glucose or None."""
    import numpy as np

    from glucotwin.data.sim_inputs import read_inputs_csv

    if not REFERENCE.is_dir():
        carbs, insulin = scenario_s1(cohort)
        return carbs, insulin, None
    inputs = [read_inputs_csv(REFERENCE / f"S1_inputs_{name}.csv") for name in cohort.names]
    expected = np.stack(
        [
            np.loadtxt(REFERENCE / f"S1_expected_{name}.csv", delimiter=",", skiprows=1)[:, 1:]
            for name in cohort.names
        ]
    )
    return np.stack([c for c, _ in inputs]), np.stack([i for _, i in inputs]), expected


def run_peer(carbs, insulin, names) -> dict:
    sys.path.insert(0, str(BENCHMARKS))
    from peers import run_peer as run_in_peers_venv

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name in PEER_PATIENTS:
            i = names.index(name)
            path = Path(tmp) / f"S1_inputs_{name}.csv"
            lines = ["minute,carbs_g,insulin_u"]
            lines += [f"{m},{float(carbs[i, m])!r},{float(insulin[i, m])!r}" for m in range(DAY)]
            path.write_text("\n".join(lines) + "\n")
            paths.append(str(path))
        script = Path(tmp) / "simglucose_day.py"
        script.write_text(PEER_SCRIPT)
        return json.loads(run_in_peers_venv(script, *paths, packages=[PEER], timeout_s=1800))


def timed(function, repeats: int) -> tuple[float, float, float]:
    """(first call s, best later call s, cpu/wall of the best) of ``function()``."""
    import jax

    start = time.perf_counter()
    jax.block_until_ready(function())
    first = time.perf_counter() - start
    best, ratio = float("inf"), 0.0
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(function())
        wall = time.perf_counter() - start
        if wall < best:
            best, ratio = wall, (time.process_time() - cpu) / wall
    return first, best, ratio


def ops_per_rk4_step() -> collections.Counter:
    """Elementwise primitives in one RK4 step of one patient (from the jaxpr, before XLA's CSE)."""
    import jax
    import jax.numpy as jnp
    from jax.extend.core import jaxprs_in_params

    from glucotwin.physiology import initial_meal_memory, inputs_from_doses, load_virtual_patients
    from glucotwin.simulate import engine

    cohort = load_virtual_patients(["adult#001"])
    params = jax.tree.map(lambda a: a[0], cohort.params)
    state = jax.tree.map(lambda a: a[0], cohort.x0)
    memory = initial_meal_memory(state)
    inputs = inputs_from_doses(jnp.array(0.0), jnp.array(0.01), params)
    jaxpr = jax.make_jaxpr(
        lambda y: engine._integrate_minute(y, jnp.array(0.0), inputs, params, memory, 1)
    )(state)
    counts: collections.Counter = collections.Counter()
    structural = {"jit", "pjit", "scan", "while", "convert_element_type", "broadcast_in_dim"}

    def walk(inner):
        for equation in inner.eqns:
            for sub in jaxprs_in_params(equation.params):
                walk(sub)
            if equation.primitive.name not in structural:
                counts[equation.primitive.name] += 1

    walk(jaxpr.jaxpr)
    return counts


def sharded_child(batch: int, repeats: int) -> None:
    """Run in a process with two XLA host devices: the batch sharded over both.

    The carbs are passed shared ([minutes], S1 is the same for every patient): with
    per-patient carbs the eating-minute test becomes a cross-device reduction every minute,
    and XLA's in-process collectives then serialise the two devices (and can time out).
    """
    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from glucotwin.physiology import initial_meal_memory, load_virtual_patients
    from glucotwin.simulate import engine

    cohort = load_virtual_patients()
    carbs, insulin, _ = load_reference(cohort)
    index = np.arange(batch) % len(cohort)
    tiled = cohort.take(index)
    mesh = Mesh(np.array(jax.devices()[:2]), ("patients",))
    rows = NamedSharding(mesh, PartitionSpec("patients"))
    put = lambda tree: jax.tree.map(lambda a: jax.device_put(a, rows), tree)  # noqa: E731
    args = (
        put(tiled.params), carbs[0], put(insulin[index]), put(tiled.x0),
        put(initial_meal_memory(tiled.x0)),
    )  # fmt: skip
    run = functools.partial(
        engine._compiled["cpu"], substeps=1, meal_substeps=8, record="glucose",
        shared_carbs=True, shared_insulin=False,
    )  # fmt: skip
    first, best, ratio = timed(lambda: run(*args), repeats)
    result = {"devices": len(jax.devices()), "whole": [first, best, ratio]}
    chunk = 2 * engine.DEFAULT_CPU_CHUNK  # one default chunk per device at a time

    def chunked():
        outs = []
        for start in range(0, batch, chunk):

            def take(a, s=start):
                return a[s : s + chunk] if a.ndim and a.shape[0] == batch else a

            outs.append(run(*(jax.tree.map(take, a) for a in args)))
        return outs

    result["chunked"] = list(timed(chunked, repeats))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no peer run")
    parser.add_argument("--million", action="store_true", help="also stream 10^6 patient-days")
    parser.add_argument("--append-results", action="store_true", help="append to RESULTS.md")
    parser.add_argument("--sharded-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sharded_child:
        sharded_child(args.sharded_child, repeats=3)
        return

    import jax
    import jax.numpy as jnp
    import numpy as np

    from glucotwin.physiology import load_virtual_patients
    from glucotwin.simulate import engine, simulate

    cohort = load_virtual_patients()
    carbs, insulin, expected = load_reference(cohort)
    lines: list[str] = []
    say = lambda text="": (print(text, flush=True), lines.append(text))  # noqa: E731
    command = "python benchmarks/simulate_speed.py " + " ".join(sys.argv[1:])
    cpus = engine._available_cpus()
    say(f"Command: `{command.strip()}` on {platform.processor() or platform.machine()}, "
        f"{cpus} CPUs, jax {jax.__version__}, Python {platform.python_version()}. "
        f"Cores the VM delivered to two busy C threads at the start: "
        f"{_delivered_cores():.2f} (this VM shares its host; 2.00 = both).")  # fmt: skip
    say()

    peer_rate = None
    if not args.quick:
        peer = run_peer(carbs, insulin, list(cohort.names))
        seconds = [peer[name]["seconds"] for name in PEER_PATIENTS]
        peer_rate = len(seconds) / sum(seconds)
        ours = simulate(cohort.params, carbs, insulin, cohort.x0)
        agree = max(
            np.abs(np.asarray(peer[name]["glucose"]) - np.asarray(ours.glucose_mg_dl[i])).max()
            for i, name in ((cohort.names.index(n), n) for n in PEER_PATIENTS)
        )
        say(f"simglucose 0.2.11, stock T1DPatient, 1 patient-day each for "
            f"{', '.join(PEER_PATIENTS)}: {np.mean(seconds):.2f} s per patient-day = "
            f"**{peer_rate:.3f} patient-days/s**; "
            f"its glucose agrees with GlucoTwin's to {agree:.1e} mg/dL.")  # fmt: skip
        say()

    def compile_seconds(batch: int) -> float:
        from glucotwin.physiology import initial_meal_memory

        params, batch_carbs, batch_insulin, x0 = batch_args(batch)
        # A day one minute short: a shape no earlier call compiled, so nothing is cached.
        batch_carbs, batch_insulin = batch_carbs[:, 1:], batch_insulin[:, 1:]
        start = time.perf_counter()
        engine._compiled["cpu"].lower(
            params, batch_carbs, batch_insulin, x0, initial_meal_memory(x0),
            substeps=1, meal_substeps=8, record="glucose", shared_carbs=False,
            shared_insulin=False,
        ).compile()  # fmt: skip
        return time.perf_counter() - start

    def batch_args(batch: int):
        index = np.arange(batch) % len(cohort)
        tiled = cohort.take(index)
        return tiled.params, carbs[index], insulin[index], tiled.x0

    repeats = 2 if args.quick else 5
    say("| patient-days (batch) | first call s | steady s | patient-days/s "
        "| x simglucose | cpu/wall |")  # fmt: skip
    say("|---:|---:|---:|---:|---:|---:|")
    default_rate = {}
    for batch in (1, 10, 100, 1000, 10000):
        call_args = batch_args(batch)
        first, best, ratio = timed(lambda a=call_args: simulate(*a), repeats)
        default_rate[batch] = batch / best
        times = f"{batch / best / peer_rate:,.0f}" if peer_rate else "-"
        rate = f"{batch / best:,.0f}"
        say(f"| {batch:,} | {first:.2f} | {best:.4f} | {rate} | {times} | {ratio:.2f} |")
    say()
    chunk = engine.DEFAULT_CPU_CHUNK
    one, many = compile_seconds(1), compile_seconds(chunk)
    say(f"JIT compile time (trace + lower + XLA compile, measured apart): {one:.2f} s for one "
        f"patient, {many:.2f} s for a {chunk}-patient chunk.")  # fmt: skip
    say()
    say("Defaults: float64, 1 RK4 step per minute and 8 in eating minutes, record='glucose' "
        "(both glucose columns returned), chunks of 512 patients, one thread per CPU. "
        "The first call includes tracing and XLA compilation where its shape is new (one "
        "compilation per chunk shape; batches above 512 reuse the 512-patient one).")  # fmt: skip
    say()

    big = 10000
    call_args = batch_args(big)
    say(f"Variants at {big:,} patient-days (same scenario):")
    say()
    say("| variant | patient-days/s | cpu/wall | max error vs reference, mg/dL |")
    say("|---|---:|---:|---:|")

    def error_of(run) -> str:
        if expected is None:
            return "-"
        glucose = np.stack(
            [np.asarray(run.glucose_mg_dl), np.asarray(run.plasma_glucose_mg_dl)], -1
        )
        return f"{np.abs(glucose[: len(cohort)] - expected).max():.1e}"

    def variant(label: str, **kwargs) -> None:
        _, best, ratio = timed(lambda: simulate(*call_args, **kwargs), repeats)
        check = simulate(*batch_args(len(cohort)), **{**kwargs, "record": "glucose"})
        say(f"| {label} | {big / best:,.0f} | {ratio:.2f} | {error_of(check)} |")

    variant("defaults")
    shared = (call_args[0], carbs[0], call_args[2], call_args[3])
    _, best, ratio = timed(lambda: simulate(*shared), repeats)
    say(f"| carbs shared by all patients ([minutes] array) | {big / best:,.0f} | {ratio:.2f} "
        f"| same scheme |")  # fmt: skip
    variant("record='none' (summary only)", record="none")
    variant("float32", dtype=jnp.float32)
    variant("float32, record='none'", dtype=jnp.float32, record="none")
    variant("one thread (workers=1)", workers=1)
    variant("one call, no chunks (chunk_size=10000)", chunk_size=big)
    variant("chunk_size=256", chunk_size=256)
    variant("chunk_size=4096", chunk_size=4096)
    saved = engine._compiled["cpu"]
    engine._compiled["cpu"] = engine._compiled["other"]  # XLA's default 256-bit vectors
    variant("256-bit vectors (XLA default)")
    engine._compiled["cpu"] = saved
    variant("RK4 1 step/min everywhere (meal_substeps=1)", meal_substeps=1)
    variant("RK4 2 steps/min, 16 when eating", substeps=2, meal_substeps=16)
    variant("RK4 4 steps/min, 32 when eating", substeps=4, meal_substeps=32)
    variant("RK4 4 steps/min everywhere", substeps=4, meal_substeps=4)
    variant("RK4 8 steps/min everywhere", substeps=8, meal_substeps=8)

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    child = subprocess.run(
        [sys.executable, __file__, "--sharded-child", str(big)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    sharded = json.loads(child.stdout.strip().splitlines()[-1])
    for key, label in (("whole", "one call"), ("chunked", "chunks of 2x512")):
        _, best, ratio = sharded[key]
        say(f"| 2 XLA host devices, batch sharded, {label} | {big / best:,.0f} | {ratio:.2f} | "
            f"same code |")  # fmt: skip
    say()

    # Memory: what stays allocated per 1000 patient-days, by what is recorded.
    per = 1000
    mem_args = batch_args(per)
    say(f"Memory per {per:,} patient-days (arrays kept: results; inputs are the caller's):")
    say()
    inputs_mb = (mem_args[1].nbytes + mem_args[2].nbytes) / 1e6
    for record in ("states", "glucose", "none"):
        result = simulate(*mem_args, record=record)
        mb = sum(leaf.nbytes for leaf in jax.tree.leaves(result)) / 1e6
        say(f"- record='{record}': {mb:.2f} MB of results")
    say(f"- per-patient inputs (carbs + insulin, 1440 float64 each): {inputs_mb:.1f} MB; "
        "inputs shared by all patients ([minutes]) cost 23 kB in total. Working memory of a "
        "running chunk: ~100 arrays of 512 patients (0.4 MB) per thread.")  # fmt: skip
    if args.million:
        n = 1_000_000
        index = np.arange(n) % len(cohort)
        tiled = cohort.take(index)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
        start = time.perf_counter()
        result = jax.block_until_ready(
            simulate(tiled.params, carbs[0], insulin[0], tiled.x0, record="none")
        )
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
        say(f"- 10^6 patient-days streamed (record='none', one shared input day): {wall:.1f} s "
            f"= {n / wall:,.0f} patient-days/s; process peak RSS {peak:,.0f} MB (before: "
            f"{before:,.0f} MB); mean glucose {float(result.summary.mean_mg_dl.mean()):.1f} "
            "mg/dL.")  # fmt: skip
    say()

    counts = ops_per_rk4_step()
    ops = sum(counts.values())
    per_day = ops * DAY + ops * 7 * len(MEALS_S1)  # 7 extra steps in each eating minute
    ghz = _cpu_ghz()
    peak = cpus * ghz * 1e9 * 16  # 8 float64 lanes (AVX-512) x 2 vector pipes per core
    achieved = per_day * default_rate[big]
    say(f"Hardware: one RK4 step of one patient is {ops} elementwise operations in the jaxpr "
        f"({counts['tanh']} tanh, {counts['div']} div; XLA's CSE removes some), so a patient-day "
        f"is ~{per_day / 1e6:.2f} M operations. At the default {default_rate[big]:,.0f} "
        f"patient-days/s that is {achieved / 1e9:.1f} G op/s against a peak of ~{peak / 1e9:.0f} "
        f"G op/s ({cpus} cores x {ghz:.2f} GHz x 8 float64 lanes x 2 pipes, counting a tanh as "
        f"one operation though it costs ~20): ~{100 * achieved / peak:.0f}% of peak.")  # fmt: skip
    say(f"Cores delivered to two busy C threads at the end: {_delivered_cores():.2f}.")
    if args.append_results:
        results = BENCHMARKS / "RESULTS.md"
        with results.open("a", encoding="utf-8") as handle:
            handle.write("\n## Simulation speed (issue 4)\n\n" + "\n".join(lines) + "\n")
        print(f"appended to {results}")


def _delivered_cores(threads: int = 2) -> float:
    """CPU time / wall time of ``threads`` threads hashing (hashlib releases the GIL): how
    many cores this virtual machine actually gave the process just now."""
    import hashlib
    import threading

    def work() -> None:
        digest, data = hashlib.sha256(), b"x" * (1 << 20)
        for _ in range(300):
            digest.update(data)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.process_time() - cpu) / (time.perf_counter() - start)


def _cpu_ghz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    return 2.5


if __name__ == "__main__":
    main()
