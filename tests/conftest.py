"""Shared fixtures: the real datasets in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GLUCOTWIN_SHARED_DATA", REPO.parent / "shared" / "data"))


def require_services() -> bool:
    """Under CI (GLUCOTWIN_REQUIRE_SERVICES=1) a missing service fails a test, never skips it."""
    return os.environ.get("GLUCOTWIN_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of ../shared/data; tests that need it skip where it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (set GLUCOTWIN_SHARED_DATA)")
    return SHARED_DATA


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, skipping the calling test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data file not found: {path}")
    return path
