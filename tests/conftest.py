"""Shared fixtures. Tests that need ../shared skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared"
SHARED = Path(os.environ.get("FACESR_SHARED", _DEFAULT))


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder beside the project (data and third-party weights)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data folder at {SHARED.resolve()} (absent here)")
    return SHARED.resolve()
