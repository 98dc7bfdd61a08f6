"""A private virtual environment for peer packages (iglu-python, simglucose, py-replay-bg, ...).

GlucoTwin's benchmarks and ``peers`` tests compare its numbers with other open-source tools.
Those tools bring their own (sometimes conflicting, sometimes old) dependencies, so they are
installed into ``benchmarks/.peers-venv`` (git-ignored), never into GlucoTwin's environment,
and run in a subprocess that reads files GlucoTwin wrote and prints its answer.

``ensure_peers_venv(["iglu-python==0.4.*"])`` creates the environment with ``python -m venv``
on first use and pip-installs whatever requirement it has not installed before; later calls
with the same requirements return at once. It records the requirements it installed in
``glucotwin-peers.json`` inside the environment and holds a file lock while it installs, so
parallel test workers do not install twice. Needs network access to PyPI the first time.

``run_peer(script, packages=...)`` runs a Python script in that environment (``TZ=UTC``, so
a peer that localises naive times to "the local zone" gets the same answer everywhere) and
returns its standard output. POSIX only (the lock uses ``fcntl``).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
DEFAULT_VENV = BENCHMARKS / ".peers-venv"
MARKER = "glucotwin-peers.json"


class PeerError(RuntimeError):
    """The peer environment could not be made, or a peer script failed."""


def venv_python(venv: Path) -> Path:
    """Path of the interpreter inside a virtual environment (POSIX layout)."""
    return venv / "bin" / "python"


def _installed(venv: Path) -> set[str]:
    try:
        return set(json.loads((venv / MARKER).read_text())["requirements"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def ensure_peers_venv(
    packages: Iterable[str],
    *,
    venv: Path = DEFAULT_VENV,
    python: str = sys.executable,
) -> Path:
    """Create ``venv`` if needed, install the requirements it lacks; return its interpreter.

    ``packages`` are pip requirement strings (``"iglu-python==0.4.*"``). A requirement
    counts as present when this function installed exactly that string before.
    """
    wanted = sorted(set(packages))
    interpreter = venv_python(venv)
    if interpreter.exists() and set(wanted) <= _installed(venv):
        return interpreter
    venv.mkdir(parents=True, exist_ok=True)
    with open(venv / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not interpreter.exists():
            _run([python, "-m", "venv", str(venv)], "create the peers venv")
        installed = _installed(venv)
        missing = [p for p in wanted if p not in installed]
        if missing:
            _run(
                [str(interpreter), "-m", "pip", "install", "--quiet",
                 "--disable-pip-version-check", *missing],
                f"pip install {' '.join(missing)}",
            )  # fmt: skip
            record = {"requirements": sorted(installed | set(missing))}
            (venv / MARKER).write_text(json.dumps(record, indent=1))
    return interpreter


def _run(command: Sequence[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PeerError(f"could not {what}:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")


def run_peer(
    script: str | Path,
    *args: str,
    packages: Iterable[str],
    venv: Path = DEFAULT_VENV,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> str:
    """Run ``script`` with the peers venv's Python (installing ``packages`` first); stdout.

    The child gets ``TZ=UTC`` unless ``env`` says otherwise; a non-zero exit raises
    :class:`PeerError` with the end of its standard error.
    """
    interpreter = ensure_peers_venv(packages, venv=venv)
    child_env = {**os.environ, "TZ": "UTC", **(env or {})}
    done = subprocess.run(
        [str(interpreter), str(script), *args],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise PeerError(f"peer script {script} failed:\n{done.stderr[-4000:]}")
    return done.stdout
