"""Shared test fixtures.

Real data is read from ``$XGAMMA_DATA``, defaulting to ``../shared/data``
beside the repository. Every test that needs it goes through `data_dir`.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Folder holding hess-dl3-dr1, cta-1dc, cta-caldb, magic, joint-crab ..."""
    path = Path(os.environ.get("XGAMMA_DATA", REPO.parent / "shared" / "data")).resolve()
    if not (path / "hess-dl3-dr1").is_dir():
        pytest.fail(f"test data not found at {path}: set XGAMMA_DATA to the shared data folder")
    return path


@pytest.fixture(scope="session")
def reference_dir(data_dir) -> Path:
    """Folder of reference figures (../shared/reference)."""
    return data_dir.parent / "reference"


@pytest.fixture(scope="session")
def hess_dir(data_dir) -> Path:
    return data_dir / "hess-dl3-dr1"
