"""The ``glucotwin`` command line: thin views over the core (parse, call one function, render).

Every command exits 0 on success and non-zero with a one-line reason on bad input. Output
files are written atomically, so a failed command leaves nothing half-written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from glucotwin import DISCLAIMER, __version__
from glucotwin.data.errors import DataError

app = typer.Typer(
    name="glucotwin",
    help=f"GlucoTwin: a digital twin of glucose-insulin physiology. {DISCLAIMER}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

FormatOption = Annotated[
    str | None,
    typer.Option("--format", "-f", help="Force an input format (see `glucotwin formats`)."),
]
TimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        "--tz",
        help="IANA time zone of the device clock (e.g. Europe/Berlin) for files that write "
        "local time without a zone. Default: keep floating local time.",
    ),
]
SubjectOption = Annotated[
    str | None, typer.Option("--subject", "-s", help="Use only this subject's data.")
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line reason to stderr and return the exit to raise."""
    errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _options(timezone: str | None, subject: str | None = None, mapping: list[str] | None = None):
    from glucotwin.data.formats import ImportOptions

    column_map = {}
    for item in mapping or []:
        source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise fail(f"--map expects SOURCE=TARGET, got {item!r}")
        column_map[source] = target
    if timezone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise fail(f"unknown time zone {timezone!r} (use an IANA name such as UTC)") from None
    return ImportOptions(timezone=timezone, subject=subject, column_map=column_map)


def _load(files: list[Path], format: str | None, options):
    from glucotwin.data.formats import read_files

    try:
        return read_files(files, format=format, options=options)
    except DataError as exc:
        raise fail(exc.describe()) from None


def _one_subject(recording, subject: str | None):
    subjects = recording.subjects
    if subject is not None:
        if subject not in subjects:
            raise fail(f"subject {subject!r} not found (subjects: {', '.join(subjects)})")
        return recording.for_subject(subject)
    if len(subjects) > 1:
        shown = ", ".join(subjects[:10]) + (" …" if len(subjects) > 10 else "")
        raise fail(f"the data hold {len(subjects)} subjects ({shown}): choose one with --subject")
    return recording


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Files to import (any known format).")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output file: .parquet (canonical), .csv (generic CSV), .json (Nightscout) "
            "or .fhir.json (FHIR R4 CGM bundle).",
        ),
    ],
    format: FormatOption = None,
    timezone: TimezoneOption = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Subject id to assign to the imported rows.")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="Generic CSV: rename a column, SOURCE=TARGET (repeatable)."),
    ] = None,
) -> None:
    """Import device exports into one canonical file (all-or-nothing)."""
    recording = _load(files, format, _options(timezone, subject, mapping))
    from glucotwin.data.export import write_any

    try:
        written = write_any(recording, out)
    except DataError as exc:
        raise fail(exc.describe()) from None
    counts = recording.counts()
    console.print(
        f"Imported {len(files)} file(s), {len(recording.subjects)} subject(s): "
        + ", ".join(f"{n:,} {name}" for name, n in counts.items())
        + f" -> {written}"
    )


def _metrics_table(metrics: dict, title: str) -> Table:
    from glucotwin.metrics import CONSENSUS_TARGETS, check_targets
    from glucotwin.report.agp import format_value

    table = Table(title=title)
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    table.add_column("Consensus target")
    table.add_column("Met", justify="center")
    for label, value, target, met in check_targets(metrics):
        verdict = "[green]yes[/]" if met else "[red]no[/]"
        table.add_row(label, format_value(value, 2), target, verdict)
    for key, value in metrics.items():
        if key in CONSENSUS_TARGETS or isinstance(value, dict | list):
            continue
        table.add_row(key, format_value(value, 2), "", "")
    return table


@app.command()
def metrics(
    file: Annotated[Path, typer.Argument(help="A CGM export or a GlucoTwin Parquet file.")],
    format: FormatOption = None,
    timezone: TimezoneOption = None,
    subject: SubjectOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Consensus CGM metrics (Battelino 2019/2023): time in ranges, variability, risk."""
    from glucotwin.metrics import compute_metrics

    recording = _one_subject(_load([file], format, _options(timezone)), subject)
    try:
        result = compute_metrics(recording)
    except (DataError, ValueError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, allow_nan=False) + "\n")
        return
    console.print(_metrics_table(result, title=f"CGM metrics — {file.name}"))
    console.print(f"[dim]{DISCLAIMER}[/]")


@app.command()
def report(
    file: Annotated[Path, typer.Argument(help="A CGM export or a GlucoTwin Parquet file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PDF file to write.")],
    format: FormatOption = None,
    timezone: TimezoneOption = None,
    subject: SubjectOption = None,
) -> None:
    """Write an AGP-style PDF report (percentile ribbon, daily views, metrics vs targets)."""
    from glucotwin.report import write_agp_report

    recording = _one_subject(_load([file], format, _options(timezone)), subject)
    try:
        path = write_agp_report(recording, out, title=file.name)
    except (DataError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"Wrote {path}")


@app.command("formats")
def list_formats() -> None:
    """List the input formats GlucoTwin reads (auto-detected; --format forces one)."""
    from glucotwin.data.formats import formats

    table = Table(title="Input formats")
    table.add_column("--format")
    table.add_column("Description")
    for name, fmt in formats().items():
        table.add_row(name, fmt.description)
    console.print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the demo's outputs.")] = Path(
        "demo-out"
    ),
) -> None:
    """Run the main job on the packaged demo recording: import, metrics, AGP report."""
    from glucotwin.data.export import write_any
    from glucotwin.data.formats import ImportOptions, read_file
    from glucotwin.demo_data import DEMO_ATTRIBUTION, DEMO_RECORDING
    from glucotwin.metrics import compute_metrics
    from glucotwin.report import write_agp_report

    console.rule("GlucoTwin demo")
    console.print(f"[dim]{DEMO_ATTRIBUTION}[/]")
    recording = read_file(DEMO_RECORDING, options=ImportOptions())
    out.mkdir(parents=True, exist_ok=True)
    parquet = write_any(recording, out / "demo.parquet")
    counts = recording.counts()
    console.print(
        f"Imported {DEMO_RECORDING.name}: "
        + ", ".join(f"{n:,} {name}" for name, n in counts.items())
        + f" -> {parquet}"
    )
    result = compute_metrics(recording)
    console.print(_metrics_table(result, title="CGM metrics of the demo recording"))
    pdf = write_agp_report(recording, out / "agp-report.pdf", title="Demo recording (AZT1D)")
    console.print(f"AGP report: {pdf}")
    console.print(f"[dim]{DISCLAIMER}[/]")


@app.command("simulate")
def simulate_(
    patient: Annotated[
        str | None,
        typer.Option("--patient", help="One reference patient (e.g. adult#001), from its x0."),
    ] = None,
    cohort: Annotated[
        str | None,
        typer.Option(
            "--cohort",
            help="'reference' (the 30 simglucose patients) or a cohort "
            ".parquet from `glucotwin cohort sample`.",
        ),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option("--inputs", help="--patient: CSV minute,carbs_g,insulin_u (sparse rows ok)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="--patient: trajectory CSV to write."),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="--cohort: days to simulate.")] = 1,
    scenario: Annotated[
        str, typer.Option("--scenario", help="--cohort: scenario (standard: the S1 day).")
    ] = "standard",
    summary: Annotated[
        Path | None,
        typer.Option("--summary", help="--cohort: per-patient metrics CSV to write."),
    ] = None,
) -> None:
    """Simulate one patient from an inputs file, or a whole cohort through a scenario."""
    _enable_compilation_cache()
    if (patient is None) == (cohort is None):
        raise fail("give exactly one of --patient (one trajectory) or --cohort (a summary)")
    if patient is not None:
        if summary is not None:
            raise fail("--summary belongs to --cohort; with --patient use --out")
        if inputs is None or out is None:
            raise fail("--patient needs --inputs FILE and --out FILE")
        _simulate_patient(patient, inputs, out)
    else:
        if inputs is not None or out is not None:
            raise fail("--inputs/--out belong to --patient; with --cohort use --summary")
        if summary is None:
            raise fail("--cohort needs --summary FILE")
        _simulate_cohort(cohort, days, scenario, summary)


def _simulate_patient(name: str, inputs: Path, out: Path) -> None:
    from glucotwin.data.sim_inputs import read_inputs_csv, write_trajectory_csv
    from glucotwin.physiology import PATIENT_NAMES, load_virtual_patients
    from glucotwin.simulate import simulate

    if name not in PATIENT_NAMES:
        raise fail(f"unknown patient {name!r}; known: {', '.join(PATIENT_NAMES)}")
    try:
        carbs, insulin = read_inputs_csv(inputs)
    except DataError as exc:
        raise fail(exc.describe()) from None
    if carbs.size == 0:
        raise fail(f"{inputs}: no input rows")
    patient = load_virtual_patients([name]).take([0])
    result = simulate(patient.params, carbs, insulin, patient.x0)
    written = write_trajectory_csv(out, result.glucose_mg_dl[0], result.plasma_glucose_mg_dl[0])
    console.print(f"Simulated {name} for {carbs.size:,} minutes -> {written}")


def _enable_compilation_cache() -> None:
    """Keep JAX's compiled simulations on disk so a repeated command skips the ~2 s compile.

    Folder: ``GLUCOTWIN_CACHE_DIR`` if set (empty: no cache), else
    ``$XDG_CACHE_HOME/glucotwin/jax`` or ``~/.cache/glucotwin/jax``.
    """
    import os

    import jax

    folder = os.environ.get("GLUCOTWIN_CACHE_DIR")
    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        folder = str(Path(base) / "glucotwin" / "jax")
    if folder:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _compile_seconds_counter():
    """Start adding up JAX's tracing and compilation time; returns a reader of the total."""
    import jax.monitoring

    total = [0.0]

    def listener(event: str, duration: float, **_: object) -> None:
        if event.startswith("/jax/core/compile/"):
            total[0] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    return lambda: total[0]


def _simulate_cohort(source: str, days: int, scenario: str, summary: Path) -> None:
    import time

    from glucotwin.data.sim_inputs import write_table_csv
    from glucotwin.simulate.scenario import SCENARIOS, simulate_standard_days, summary_columns

    if scenario not in SCENARIOS:
        raise fail(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    cohort, groups = _load_cohort(source)
    compile_seconds = _compile_seconds_counter()
    start = time.perf_counter()
    with console.status(f"Simulating {len(cohort):,} patients x {days} day(s)"):
        result = simulate_standard_days(cohort, days)
    seconds = time.perf_counter() - start
    compiling = min(compile_seconds(), seconds)
    columns = {"patient": list(cohort.names), "group": list(groups), **summary_columns(result)}
    written = write_table_csv(summary, columns)
    patient_days = len(cohort) * days
    running = max(seconds - compiling, 1e-9)
    console.print(
        f"Simulated {len(cohort):,} patients x {days} day(s) in {seconds:.2f} s "
        f"({compiling:.2f} s of it JIT compilation or loading it from the compile cache): "
        f"{patient_days / running:,.0f} patient-days/s simulating, "
        f"{patient_days / seconds:,.0f} including compilation -> {written}"
    )


def _load_cohort(source: str):
    from glucotwin.data.cohort import read_cohort
    from glucotwin.physiology import load_virtual_patients
    from glucotwin.simulate.population import reference_groups

    if source == "reference":
        cohort = load_virtual_patients()
        return cohort, reference_groups(cohort.names)
    try:
        return read_cohort(source)
    except DataError as exc:
        raise fail(exc.describe()) from None


cohort_app = typer.Typer(help="Virtual cohorts: sample new patients.", no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")


@cohort_app.command("sample")
def cohort_sample(
    n: Annotated[
        int, typer.Option("--n", min=1, help="Number of patients (split evenly by age group).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Cohort .parquet to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same cohort).")] = 0,
) -> None:
    """Sample plausible virtual patients from a fit to the reference cohort."""
    _enable_compilation_cache()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from glucotwin.data.cohort import write_cohort
    from glucotwin.physiology import load_virtual_patients
    from glucotwin.simulate.population import fit_population, reference_groups, sample_population

    reference = load_virtual_patients()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[drawn]:,} drawn"), console=console) as bar:  # fmt: skip
        task = bar.add_task("Sampling patients", total=n, drawn=0)
        fit = fit_population(reference, reference_groups(reference.names))

        def advance(kept: int, drawn: int) -> None:
            bar.update(task, completed=kept, drawn=drawn)

        try:
            result = sample_population(fit, n, seed, progress=advance)
        except RuntimeError as exc:
            raise fail(str(exc)) from None
    written = write_cohort(out, result.cohort, result.groups)
    console.print(
        f"Accepted {len(result.cohort):,} of {result.drawn:,} candidates "
        f"(acceptance rate {100 * result.acceptance_rate:.1f} %) -> {written}"
    )


twin_app = typer.Typer(
    help="Personal digital twins (ReplayBG model): fit one to data, replay other inputs.",
    no_args_is_help=True,
)
app.add_typer(twin_app, name="twin")

TWIN_METHODS = ("map", "nuts", "svi")


@twin_app.command("fit")
def twin_fit(
    data: Annotated[Path, typer.Argument(help="One subject's CGM, insulin and carbs export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Twin JSON file to write.")],
    format: FormatOption = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same twin).")] = 0,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="Posterior: map (MAP + Laplace approximation), nuts (NUTS draws started at "
            "the MAP) or svi (full-rank Gaussian variational fit).",
        ),
    ] = "map",
) -> None:
    """Fit a twin and print one JSON object of fit metrics."""
    if method not in TWIN_METHODS:
        raise fail(f"unknown --method {method!r}; known: {', '.join(TWIN_METHODS)}")
    _enable_compilation_cache()
    from glucotwin.twin.posterior import fit_posterior
    from glucotwin.twin.store import save_twin

    recording = _one_subject(_load([data], format, _options(None)), None)
    try:
        posterior, seconds = fit_posterior(recording, seed=seed, method=method)
    except ValueError as exc:
        raise fail(f"{data}: {exc}") from None
    written = save_twin(out, posterior, seed=seed)
    result = {
        "method": method,
        "rmse_mg_dl": posterior.metrics["rmse_mg_dl"],
        "mard_percent": posterior.metrics["mard_percent"],
        "noise_sd_mg_dl": posterior.noise_sd_mg_dl,
        "days": posterior.days,
        "converged": posterior.metrics["converged"],
        "seconds": seconds,
        "out": str(written),
    }
    sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")


@twin_app.command("replay")
def twin_replay(
    twin: Annotated[Path, typer.Argument(help="Twin JSON from `glucotwin twin fit`.")],
    inputs: Annotated[
        Path,
        typer.Option(
            "--inputs",
            help="CSV minute,carbs_g,insulin_u[,meal_type] (basal included; sparse rows ok; "
            "meal_type breakfast/lunch/dinner/snack routes the carbs as in the fit). Minute 0 is "
            "the first minute of the fitted data (the twin's start_local), where the twin "
            "starts from its fitted initial glucose with insulin at the basal steady state.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the posterior draws.")] = 0,
    draws: Annotated[int, typer.Option("--draws", min=10, help="Posterior draws.")] = 200,
) -> None:
    """Replay inputs through a fitted twin: median and 95 % predictive band per minute."""
    _enable_compilation_cache()
    import numpy as np
    import pandas as pd

    from glucotwin.data.sim_inputs import read_inputs_csv, write_table_csv
    from glucotwin.twin.inputs import meal_labels
    from glucotwin.twin.model import meal_code
    from glucotwin.twin.posterior import predictive_band, replay_windows
    from glucotwin.twin.store import load_twin

    meal_types: dict[int, str] = {}
    try:
        posterior = load_twin(twin)
        carbs, insulin = read_inputs_csv(inputs, meal_types=meal_types)
    except DataError as exc:
        raise fail(exc.describe()) from None
    if carbs.size == 0:
        raise fail(f"{inputs}: no input rows")
    codes = replay_windows(posterior, carbs.size)
    if meal_types:
        minutes = np.fromiter(meal_types, int)
        labels = meal_labels(pd.Series(list(meal_types.values()), dtype="string"))
        codes[minutes] = meal_code(codes[minutes], labels)
    band = predictive_band(posterior, carbs, insulin, codes, n=draws, seed=seed, level=0.95)
    columns = {
        "minute": list(range(carbs.size)),
        "glucose_mg_dl": band.median,
        "lower_mg_dl": band.lower,
        "upper_mg_dl": band.upper,
    }
    written = write_table_csv(out, columns)
    console.print(f"Replayed {carbs.size:,} minutes ({draws} posterior draws) -> {written}")


@app.callback(invoke_without_command=True)
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        console.print(f"glucotwin {__version__}")
        raise typer.Exit()
