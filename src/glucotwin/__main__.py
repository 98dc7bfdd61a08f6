"""``python -m glucotwin`` runs the CLI."""

from glucotwin.cli import app

app()
